package bustest

import (
	"time"

	"github.com/patbus/patbus/bus"
)

var deadLetterTests = []subtest{
	{"Rejected", testDeadLetterRejected},
	{"MessageExpiration", testDeadLetterExpiration},
	{"QueueTTL", testDeadLetterQueueTTL},
	{"RetryThroughDefaultExchange", testRetryLoop},
}

// deathReason returns the reason of the newest x-death entry.
func deathReason(d *bus.Delivery) (reason, queue string) {
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) == 0 {
		return "", ""
	}
	entry, _ := deaths[0].(map[string]any)
	reason, _ = entry["reason"].(string)
	queue, _ = entry["queue"].(string)
	return reason, queue
}

// deadLetterSetup makes an exchange "dlx" with a queue bound to "dead",
// consumed, and returns them.
func (e *env) deadLetterSetup() (dlx string, dlq string, sub bus.Subscription) {
	dlx = e.exchange("dlx", bus.Direct)
	dlq = e.queue(bus.Queue{Name: "dlq"})
	e.bind(dlx, dlq, "dead")
	return dlx, dlq, e.consume(dlq, 10)
}

func testDeadLetterRejected(e *env) {
	dlx, _, dead := e.deadLetterSetup()
	work := e.queue(bus.Queue{Name: "work", DeadLetterExchange: dlx, DeadLetterKey: "dead"})
	sub := e.consume(work, 10)
	e.publish("", work, bus.Message{MessageID: "m1", Headers: map[string]any{"app": "kept"}, Body: []byte("poison")})
	d := e.recv(sub)
	if err := d.Nack(false); err != nil {
		e.t.Fatalf("Nack: %v", err)
	}
	dd := e.recv(dead)
	e.ack(dd)
	if string(dd.Body) != "poison" || dd.MessageID != "m1" || dd.Headers["app"] != "kept" {
		e.t.Errorf("dead letter: body %q, id %q, headers %v", dd.Body, dd.MessageID, dd.Headers)
	}
	if dd.Exchange != dlx || dd.RoutingKey != "dead" {
		e.t.Errorf("dead letter arrived via exchange %q key %q, want %q dead", dd.Exchange, dd.RoutingKey, dlx)
	}
	if reason, queue := deathReason(dd); reason != "rejected" || queue != work {
		e.t.Errorf("x-death reason %q queue %q, want rejected %q (headers %v)", reason, queue, work, dd.Headers)
	}
}

func testDeadLetterExpiration(e *env) {
	dlx, _, dead := e.deadLetterSetup()
	// No consumer on work: the message must expire by the clock.
	work := e.queue(bus.Queue{Name: "work", DeadLetterExchange: dlx, DeadLetterKey: "dead"})
	e.publish("", work, bus.Message{MessageID: "short", Expiration: 100 * time.Millisecond, Body: []byte("short")})
	e.publish("", work, bus.Message{MessageID: "long", Expiration: time.Hour, Body: []byte("long")})
	start := time.Now()
	dd := e.recv(dead)
	e.ack(dd)
	if string(dd.Body) != "short" {
		e.t.Fatalf("dead-lettered %q, want short", dd.Body)
	}
	if took := time.Since(start); took > 3*time.Second {
		e.t.Errorf("expired message took %v to dead-letter", took)
	}
	if dd.Expiration != 0 {
		e.t.Errorf("dead letter keeps Expiration %v, want 0", dd.Expiration)
	}
	if reason, queue := deathReason(dd); reason != "expired" || queue != work {
		e.t.Errorf("x-death reason %q queue %q, want expired %q", reason, queue, work)
	}
	// The long-lived one is still in work.
	sub := e.consume(work, 10)
	e.marker(work)
	if got := e.drain(sub); len(got) != 1 || got[0] != "long" {
		e.t.Errorf("work queue holds %q, want long", got)
	}
}

func testDeadLetterQueueTTL(e *env) {
	dlx, _, dead := e.deadLetterSetup()
	work := e.queue(bus.Queue{Name: "work", MessageTTL: 100 * time.Millisecond, DeadLetterExchange: dlx, DeadLetterKey: "dead"})
	e.text("", work, "a")
	e.text("", work, "b")
	for _, want := range []string{"a", "b"} {
		dd := e.recv(dead)
		e.ack(dd)
		if string(dd.Body) != want {
			e.t.Errorf("dead-lettered %q, want %q", dd.Body, want)
		}
		if reason, _ := deathReason(dd); reason != "expired" {
			e.t.Errorf("x-death reason %q, want expired", reason)
		}
	}
}

// testRetryLoop is the workers' retry pattern: a rejected message goes to
// a retry queue whose TTL dead-letters it back to the work queue through
// the default exchange.
func testRetryLoop(e *env) {
	workName := e.name("work")
	retry := e.queue(bus.Queue{Name: "retry", MessageTTL: 100 * time.Millisecond, DeadLetterExchange: "", DeadLetterKey: workName})
	work := e.queue(bus.Queue{Name: "work", DeadLetterExchange: "", DeadLetterKey: retry})
	if work != workName {
		e.t.Fatalf("work queue named %q, want %q", work, workName)
	}
	sub := e.consume(work, 10)
	e.text("", work, "job")
	d := e.recv(sub)
	if err := d.Nack(false); err != nil {
		e.t.Fatal(err)
	}
	again := e.recv(sub)
	e.ack(again)
	if string(again.Body) != "job" || again.RoutingKey != work {
		e.t.Errorf("retried message %q via key %q", again.Body, again.RoutingKey)
	}
	deaths, _ := again.Headers["x-death"].([]any)
	if len(deaths) != 2 {
		e.t.Errorf("x-death has %d entries, want 2 (rejected from work, expired from retry): %v", len(deaths), again.Headers["x-death"])
	}
}
