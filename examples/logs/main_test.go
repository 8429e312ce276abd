package main

import (
	"context"
	"fmt"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLogs(t *testing.T) { testenv.EachBroker(t, check) }

func check(t *testing.T, b bus.Broker) {
	out := testenv.Output(t, b, func(ctx context.Context, b bus.Broker, out io.Writer) error {
		return run(ctx, b, out, DefaultMessages, 3)
	})
	var want []string
	for _, m := range DefaultMessages {
		want = append(want, " [x] Sent "+m)
		for i := 1; i <= 3; i++ {
			want = append(want, fmt.Sprintf("subscriber %d: [x] %s", i, m))
		}
	}
	testenv.SameLines(t, out, want)
}
