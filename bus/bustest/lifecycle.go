package bustest

import (
	"context"
	"errors"
	"time"

	"github.com/patbus/patbus/bus"
)

var lifecycleTests = []subtest{
	{"DeclareIdempotent", testDeclareIdempotent},
	{"DeclareConflict", testDeclareConflict},
	{"ServerNamedExclusive", testServerNamed},
	{"DeleteQueueEndsSubscription", testDeleteQueue},
	{"DeleteExchange", testDeleteExchange},
	{"ConsumeMissingQueue", testConsumeMissing},
	{"Close", testClose},
	{"InterruptedAtEnd", testInterruptedAtEnd},
}

func testDeclareIdempotent(e *env) {
	ex := e.exchange("idem", bus.Topic)
	if err := e.b.DeclareExchange(e.ctx, bus.Exchange{Name: ex, Kind: bus.Topic, AutoDelete: true}); err != nil {
		e.t.Errorf("declaring an exchange again: %v", err)
	}
	spec := bus.Queue{Name: e.name("idem"), MessageTTL: time.Minute, MaxLength: 10}
	q := e.queue(bus.Queue{Name: "idem", MessageTTL: time.Minute, MaxLength: 10})
	if n, err := e.b.DeclareQueue(e.ctx, spec); err != nil || n != q {
		e.t.Errorf("declaring a queue again: %q, %v", n, err)
	}
	e.bind(ex, q, "k")
}

func testDeclareConflict(e *env) {
	ex := e.exchange("conflict", bus.Topic)
	err := e.b.DeclareExchange(e.ctx, bus.Exchange{Name: ex, Kind: bus.Direct, AutoDelete: true})
	if !errors.Is(err, bus.ErrPrecondition) {
		e.t.Errorf("redeclaring a topic exchange as direct: %v, want ErrPrecondition", err)
	}
	q := e.queue(bus.Queue{Name: "conflict", MessageTTL: time.Minute})
	e.bind(ex, q, "k")
	_, err = e.b.DeclareQueue(e.ctx, bus.Queue{Name: q, MessageTTL: 2 * time.Minute})
	if !errors.Is(err, bus.ErrPrecondition) {
		e.t.Errorf("redeclaring a queue with another TTL: %v, want ErrPrecondition", err)
	}
	// The broker still works, and the first declarations stand.
	sub := e.consume(q, 10)
	e.text(ex, "k", "after")
	e.marker(q)
	if got := e.drain(sub); len(got) != 1 || got[0] != "after" {
		e.t.Errorf("got %q after the conflicts", got)
	}
}

func testServerNamed(e *env) {
	q1 := e.queue(bus.Queue{Exclusive: true})
	q2 := e.queue(bus.Queue{Exclusive: true})
	if q1 == q2 {
		e.t.Fatalf("two server-named queues share the name %q", q1)
	}
	sub := e.consume(q1, 10)
	e.text("", q1, "hello")
	e.marker(q1)
	if got := e.drain(sub); len(got) != 1 || got[0] != "hello" {
		e.t.Errorf("got %q", got)
	}
}

func testDeleteQueue(e *env) {
	q := e.queue(bus.Queue{Name: "delete"})
	sub := e.consume(q, 10)
	e.text("", q, "one")
	d := e.recv(sub)
	if err := e.b.DeleteQueue(e.ctx, q); err != nil {
		e.t.Fatalf("DeleteQueue: %v", err)
	}
	e.closedWithin(sub)
	if err := sub.Err(); !errors.Is(err, bus.ErrNotFound) {
		e.t.Errorf("Err after the queue was deleted: %v, want ErrNotFound", err)
	}
	_ = d.Ack() // whatever it returns, it must not panic or hang
	if err := e.b.DeleteQueue(e.ctx, q); err != nil {
		e.t.Errorf("deleting a deleted queue: %v", err)
	}
	if err := sub.Cancel(e.waitCtx()); err != nil {
		e.t.Errorf("Cancel after the queue was deleted: %v", err)
	}
	// Gone: mandatory publishes to it come back.
	c, err := e.b.Publish(e.ctx, "", q, bus.Message{Mandatory: true, Body: []byte("x")})
	if err == nil {
		err = c.Wait(e.ctx)
	}
	if !errors.Is(err, bus.ErrUnroutable) {
		e.t.Errorf("mandatory publish to the deleted queue: %v, want ErrUnroutable", err)
	}
}

func testConsumeMissing(e *env) {
	_, err := e.b.Consume(e.ctx, e.name("no-such-queue"), bus.ConsumeOptions{})
	if !errors.Is(err, bus.ErrNotFound) {
		e.t.Errorf("Consume of a missing queue: %v, want ErrNotFound", err)
	}
	q := e.queue(bus.Queue{Name: "after-missing"})
	sub := e.consume(q, 10)
	e.text("", q, "after")
	e.marker(q)
	if got := e.drain(sub); len(got) != 1 {
		e.t.Errorf("got %q", got)
	}
}

func testClose(e *env) {
	// Exclusive, so that it goes with the connection.
	q, err := e.b.DeclareQueue(e.ctx, bus.Queue{Exclusive: true})
	if err != nil {
		e.t.Fatal(err)
	}
	sub, err := e.b.Consume(e.ctx, q, bus.ConsumeOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.text("", q, "one")
	d := e.recv(sub)
	if err := e.b.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.closedWithin(sub)
	if err := sub.Err(); !errors.Is(err, bus.ErrClosed) {
		e.t.Errorf("subscription Err after Close: %v, want ErrClosed", err)
	}
	_ = d.Ack() // must not panic or hang
	if err := e.b.Close(); err != nil {
		e.t.Errorf("second Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	_, pubErr := e.b.Publish(ctx, "", q, bus.Message{Body: []byte("x")})
	_, declErr := e.b.DeclareQueue(ctx, bus.Queue{Name: e.name("closed")})
	_, consErr := e.b.Consume(ctx, q, bus.ConsumeOptions{})
	for name, err := range map[string]error{
		"DeclareExchange": e.b.DeclareExchange(ctx, bus.Exchange{Name: e.name("closed"), Kind: bus.Topic}),
		"DeclareQueue":    declErr,
		"DeleteQueue":     e.b.DeleteQueue(ctx, q),
		"Bind":            e.b.Bind(ctx, bus.Binding{Exchange: "amq.topic", Queue: q, Key: "k"}),
		"Unbind":          e.b.Unbind(ctx, bus.Binding{Exchange: "amq.topic", Queue: q, Key: "k"}),
		"Publish":         pubErr,
		"Consume":         consErr,
	} {
		if !errors.Is(err, bus.ErrClosed) {
			e.t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := sub.Cancel(ctx); err != nil {
		e.t.Errorf("Cancel after Close: %v", err)
	}
}

func testDeleteExchange(e *env) {
	ex := e.name("gone")
	if err := e.b.DeclareExchange(e.ctx, bus.Exchange{Name: ex, Kind: bus.Direct}); err != nil {
		e.t.Fatalf("DeclareExchange: %v", err)
	}
	q := e.queue(bus.Queue{Name: "gone"})
	e.bind(ex, q, "k")
	e.text(ex, "k", "before")
	if err := e.b.DeleteExchange(e.ctx, ex); err != nil {
		e.t.Fatalf("DeleteExchange: %v", err)
	}
	if err := e.b.DeleteExchange(e.ctx, ex); err != nil {
		e.t.Errorf("deleting a missing exchange: %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	if err := bus.PublishAndWait(ctx, e.b, ex, "k", bus.Message{Body: []byte("after")}); !errors.Is(err, bus.ErrNotFound) {
		e.t.Errorf("publishing to a deleted exchange: %v, want ErrNotFound", err)
	}
	for _, name := range []string{"", "amq.direct"} {
		if err := e.b.DeleteExchange(e.ctx, name); !errors.Is(err, bus.ErrInvalidConfig) {
			e.t.Errorf("DeleteExchange(%q): %v, want ErrInvalidConfig", name, err)
		}
	}
	// The queue keeps what arrived before and still works.
	sub := e.consume(q, 10)
	e.marker(q)
	if got := e.drain(sub); len(got) != 1 || got[0] != "before" {
		e.t.Errorf("queue holds %q, want [before]", got)
	}
}

// isClosed reports whether ch is closed (it never carries values).
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// testInterruptedAtEnd: without a fault, the channel of Interrupted stays
// open while the consumer works, and closes when the subscription ends,
// by Cancel or by the deletion of its queue; afterwards Interrupted
// returns a closed channel.
func testInterruptedAtEnd(e *env) {
	q := e.queue(bus.Queue{Name: "interrupted"})
	sub := e.consume(q, 10)
	intr := sub.Interrupted()
	if intr == nil {
		e.t.Fatal("Interrupted returned nil")
	}
	e.text("", q, "one")
	e.ack(e.recv(sub))
	if isClosed(intr) || isClosed(sub.Interrupted()) {
		e.t.Fatal("Interrupted closed while the consumer works")
	}
	if err := sub.Cancel(e.waitCtx()); err != nil {
		e.t.Fatalf("Cancel: %v", err)
	}
	e.closedWithin(sub)
	if !isClosed(intr) || !isClosed(sub.Interrupted()) {
		e.t.Error("Interrupted not closed after Cancel")
	}

	other := e.consume(q, 10)
	intr = other.Interrupted()
	if err := e.b.DeleteQueue(e.ctx, q); err != nil {
		e.t.Fatalf("DeleteQueue: %v", err)
	}
	e.closedWithin(other)
	if !isClosed(intr) {
		e.t.Error("Interrupted not closed when the queue was deleted")
	}
}
