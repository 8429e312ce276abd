package bustest

import (
	"testing"

	"github.com/patbus/patbus/bus"
)

// Run runs the conformance suite against the brokers newBroker makes, one
// per subtest; see the package documentation. Subtests run in parallel and
// are named for the behaviour they check, so one can be run alone with
// -run 'TestX/Routing/Topic'.
func Run(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	t.Helper()
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"Routing", routingTests},
		{"Publish", publishTests},
		{"Consume", consumeTests},
		{"DeadLetter", deadLetterTests},
		{"Lifecycle", lifecycleTests},
		{"DirectReply", directReplyTests},
		{"Reply", replyTests},
		{"Inspect", inspectTests},
	}
	for _, g := range groups {
		g := g
		t.Run(g.name, func(t *testing.T) {
			for _, st := range g.tests {
				st := st
				t.Run(st.name, func(t *testing.T) { st.fn(setup(t, newBroker)) })
			}
		})
	}
}

// subtest is one check of the suite.
type subtest struct {
	name string
	fn   func(e *env)
}
