package main

import (
	"context"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRouting(t *testing.T) { testenv.EachBroker(t, check) }

func check(t *testing.T, b bus.Broker) {
	out := testenv.Output(t, b, func(ctx context.Context, b bus.Broker, out io.Writer) error {
		return run(ctx, b, out, DefaultLines)
	})
	want := []string{
		" [x] Sent info:service started",
		" [x] Sent warning:disk 80% full",
		" [x] Sent error:cannot reach the database",
		" [x] Sent info:request served in 12ms",
		" [x] Sent severity:high",
		" [x] Sent error:request failed",
		"[info subscriber] [x] info:service started",
		"[info subscriber] [x] info:request served in 12ms",
		"[warning subscriber] [x] warning:disk 80% full",
		"[error subscriber] [x] error:cannot reach the database",
		"[error subscriber] [x] error:request failed",
		"[severity subscriber] [x] severity:high",
	}
	testenv.SameLines(t, out, want)
}
