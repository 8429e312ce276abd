package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `config: database mongodb://127.0.0.1:27017/app, port 8080
feature flags (default$): {"beta":false}
without default$: services: no service for pattern cmd:flags,role:feature: patbus: no route
`

func TestRun(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		// The act queues are durable, shared by instances: remove them.
		testenv.DeleteQueues(t, b,
			services.DefaultActExchange+".config-server@1.0.0",
			services.DefaultActExchange+".app@1.0.0",
		)
		if got := testenv.Output(t, b, run); got != want {
			t.Errorf("output\n%s\nwant\n%s", got, want)
		}
	})
}
