package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `cmd:hello $$target:alpha -> alpha@1.0.0
cmd:hello $$target:beta -> beta@2.0.0
cmd:hello $$version:1.0.0 -> alpha@1.0.0
cmd:hello (no pin) -> beta@2.0.0
`

func TestRun(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		// The act queues are durable, shared by instances: remove them.
		testenv.DeleteQueues(t, b,
			services.DefaultActExchange+".alpha@1.0.0",
			services.DefaultActExchange+".beta@2.0.0",
			services.DefaultActExchange+".targets-caller@1.0.0",
		)
		if got := testenv.Output(t, b, run); got != want {
			t.Errorf("output\n%s\nwant\n%s", got, want)
		}
	})
}
