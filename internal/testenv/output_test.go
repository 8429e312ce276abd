package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestOutput(t *testing.T) {
	b := testenv.Memory(t)
	got := testenv.Output(t, b, func(ctx context.Context, rb bus.Broker, out io.Writer) error {
		if rb != b {
			return errors.New("not the broker given")
		}
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		_, err := fmt.Fprint(out, "a\nb\n")
		return err
	})
	if got != "a\nb\n" {
		t.Errorf("Output = %q", got)
	}
}
