package bustest

import (
	"errors"

	"github.com/patbus/patbus/bus"
)

// inspectTests run only against brokers that implement
// bus.QueueInspector; the others skip them.
var inspectTests = []subtest{
	{"Counts", testInspectCounts},
	{"Missing", testInspectMissing},
}

func (e *env) inspector() bus.QueueInspector {
	e.t.Helper()
	qi, ok := e.b.(bus.QueueInspector)
	if !ok {
		e.t.Skip("broker does not implement bus.QueueInspector")
	}
	return qi
}

// InspectQueue counts ready messages (not those delivered and unacked)
// and consumers, and changes nothing.
func testInspectCounts(e *env) {
	qi := e.inspector()
	q := e.queue(bus.Queue{Name: "inspect"})
	for i := 0; i < 3; i++ {
		e.text("", q, "m")
	}
	info, err := qi.InspectQueue(e.waitCtx(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	if info.Name != q || info.Messages != 3 || info.Consumers != 0 {
		e.t.Errorf("InspectQueue = %+v, want 3 messages and no consumer", info)
	}
	sub := e.consume(q, 1)
	d := e.recv(sub) // one delivered, unacked; two ready
	info, err = qi.InspectQueue(e.waitCtx(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	if info.Messages != 2 || info.Consumers != 1 {
		e.t.Errorf("with one message delivered: %+v, want 2 ready and 1 consumer", info)
	}
	e.ack(d)
}

// A missing queue is ErrNotFound, and inspecting does not declare it.
func testInspectMissing(e *env) {
	qi := e.inspector()
	q := e.name("never-declared")
	for i := 0; i < 2; i++ {
		if _, err := qi.InspectQueue(e.waitCtx(), q); !errors.Is(err, bus.ErrNotFound) {
			e.t.Fatalf("InspectQueue of a missing queue = %v, want ErrNotFound", err)
		}
	}
}
