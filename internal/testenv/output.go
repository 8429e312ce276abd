package testenv

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
)

// runTimeout bounds one run of an example in Output.
const runTimeout = 30 * time.Second

// Output calls run, an example's run function (each example has one),
// with b, a buffer and a context that ends after 30 seconds, logs what run
// printed and returns it. If run fails, Output stops the test with the
// error and the output so far.
func Output(t testing.TB, b bus.Broker, run func(ctx context.Context, b bus.Broker, out io.Writer) error) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, b, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	return out.String()
}
