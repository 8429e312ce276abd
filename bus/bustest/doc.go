// Package bustest is the conformance suite for bus.Broker implementations,
// in the manner of testing/slogtest: both the in-memory broker and the
// RabbitMQ broker run it, so that rpc, pubsub and workers can rely on the
// same semantics from either.
//
// # Use
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) bus.Broker {
//			b, err := bus.NewMemory()
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// Run calls newBroker once per subtest (subtests run in parallel) and closes
// each broker when its subtest ends. Every subtest declares its own
// exchanges and queues with a random suffix (prefix "bustest.") and deletes
// the queues it made; its exchanges are auto-delete, so they go with their
// last binding. newBroker must give a broker with default options (the
// suite relies on bus.DefaultMaxMessageSize). The group "DirectReply" runs
// only against brokers that implement bus.DirectReplier; the others skip
// it.
//
// # Timing
//
// The suite waits on channels and confirms with deadlines; it never sleeps
// to synchronise. To show that a message did not arrive it publishes a
// marker straight to the queue (through the default exchange) after the
// message was confirmed, and checks that the marker comes first. One
// check, that prefetch bounds what a consumer holds, waits a short window
// for a delivery that must not come. Message expiry tests use TTLs of
// about 100 ms. The whole suite takes well under a second in memory and a
// few seconds against a local RabbitMQ.
package bustest
