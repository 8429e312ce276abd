package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `login asd/123: code 1000
login asd/wrong: code 2100
login bob/123: code 2100
`

func TestRun(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		// The act queues are durable, shared by instances: remove them.
		testenv.DeleteQueues(t, b,
			services.DefaultActExchange+".login@1.0.0",
		)
		if got := testenv.Output(t, b, run); got != want {
			t.Errorf("output\n%s\nwant\n%s", got, want)
		}
	})
}
