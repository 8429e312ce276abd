package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
)

// Timeouts of the suite. waitTimeout bounds every single wait; quietWindow
// is how long a delivery that must not come is waited for.
const (
	testTimeout = 30 * time.Second
	waitTimeout = 5 * time.Second
	quietWindow = 150 * time.Millisecond
)

// markerID is the message id of the markers that close a sequence.
const markerID = "bustest-marker"

// env is one subtest's broker, context and names.
type env struct {
	t   *testing.T
	b   bus.Broker
	ctx context.Context
	id  string
}

// setup starts a parallel subtest with a fresh broker that is closed when
// the subtest ends.
func setup(t *testing.T, newBroker func(t *testing.T) bus.Broker) *env {
	t.Helper()
	t.Parallel()
	b := newBroker(t)
	if b == nil {
		t.Fatal("bustest: newBroker returned nil")
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	return &env{t: t, b: b, ctx: ctx, id: hex.EncodeToString(raw[:])}
}

// name returns a name unique to this subtest.
func (e *env) name(s string) string { return "bustest." + s + "." + e.id }

// waitCtx returns a context that ends after waitTimeout.
func (e *env) waitCtx() context.Context {
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	e.t.Cleanup(cancel)
	return ctx
}

// exchange declares an auto-delete exchange.
func (e *env) exchange(s string, kind bus.ExchangeKind) string {
	e.t.Helper()
	n := e.name(s)
	if err := e.b.DeclareExchange(e.ctx, bus.Exchange{Name: n, Kind: kind, AutoDelete: true}); err != nil {
		e.t.Fatalf("DeclareExchange(%s): %v", n, err)
	}
	return n
}

// queue declares q (its Name made unique unless empty) and deletes it at
// the end.
func (e *env) queue(q bus.Queue) string {
	e.t.Helper()
	if q.Name != "" {
		q.Name = e.name(q.Name)
	}
	n, err := e.b.DeclareQueue(e.ctx, q)
	if err != nil {
		e.t.Fatalf("DeclareQueue(%+v): %v", q, err)
	}
	if n == "" {
		e.t.Fatalf("DeclareQueue(%+v) returned an empty name", q)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := e.b.DeleteQueue(ctx, n); err != nil && !errors.Is(err, bus.ErrClosed) {
			e.t.Errorf("cleanup: DeleteQueue(%s): %v", n, err)
		}
	})
	return n
}

func (e *env) bind(exchange, queue, key string) {
	e.t.Helper()
	if err := e.b.Bind(e.ctx, bus.Binding{Exchange: exchange, Queue: queue, Key: key}); err != nil {
		e.t.Fatalf("Bind(%s, %s, %q): %v", exchange, queue, key, err)
	}
}

// consume starts a consumer that is cancelled (without waiting for acks)
// at the end.
func (e *env) consume(queue string, prefetch int) bus.Subscription {
	e.t.Helper()
	return e.consumeWith(queue, bus.ConsumeOptions{Prefetch: prefetch})
}

// consumeWith is consume with the given options.
func (e *env) consumeWith(queue string, opts bus.ConsumeOptions) bus.Subscription {
	e.t.Helper()
	s, err := e.b.Consume(e.ctx, queue, opts)
	if err != nil {
		e.t.Fatalf("Consume(%s): %v", queue, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Cancel(ctx)
	})
	return s
}

// settledForGood cancels sub, waits for it to close, and checks that none
// of queue's messages comes back to a new consumer: what sub received was
// acked.
func (e *env) settledForGood(sub bus.Subscription, queue string) {
	e.t.Helper()
	if err := sub.Cancel(e.waitCtx()); err != nil {
		e.t.Fatalf("Cancel: %v", err)
	}
	e.closedWithin(sub)
	again := e.consume(queue, 10)
	e.marker(queue)
	if got := e.drain(again); len(got) != 0 {
		e.t.Errorf("acked messages came back: %q", got)
	}
}

// publish publishes and waits for the broker's confirm.
func (e *env) publish(exchange, key string, msg bus.Message) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	if err := bus.PublishAndWait(ctx, e.b, exchange, key, msg); err != nil {
		e.t.Fatalf("PublishAndWait(%q, %q): %v", exchange, key, err)
	}
}

// text publishes a message whose body and id are body.
func (e *env) text(exchange, key, body string) {
	e.t.Helper()
	e.publish(exchange, key, bus.Message{MessageID: body, Body: []byte(body)})
}

// marker publishes the marker straight to queue through the default
// exchange.
func (e *env) marker(queue string) {
	e.t.Helper()
	e.publish("", queue, bus.Message{MessageID: markerID, Body: []byte(markerID)})
}

// recv waits for the next delivery.
func (e *env) recv(s bus.Subscription) *bus.Delivery {
	e.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case d, ok := <-s.Deliveries():
		if !ok {
			e.t.Fatalf("deliveries closed while waiting (Err: %v)", s.Err())
		}
		return d
	case <-timer.C:
		e.t.Fatalf("no delivery within %v", waitTimeout)
	case <-e.ctx.Done():
		e.t.Fatalf("no delivery: %v", e.ctx.Err())
	}
	return nil
}

// quiet checks that no delivery arrives within quietWindow.
func (e *env) quiet(s bus.Subscription) {
	e.t.Helper()
	timer := time.NewTimer(quietWindow)
	defer timer.Stop()
	select {
	case d, ok := <-s.Deliveries():
		if ok {
			e.t.Fatalf("unexpected delivery %q (key %q)", d.Body, d.RoutingKey)
		}
		e.t.Fatalf("deliveries closed unexpectedly (Err: %v)", s.Err())
	case <-timer.C:
	}
}

// ack acks d and fails on error.
func (e *env) ack(d *bus.Delivery) {
	e.t.Helper()
	if err := d.Ack(); err != nil {
		e.t.Fatalf("Ack(%q): %v", d.Body, err)
	}
}

// drain receives and acks until the marker and returns the bodies before
// it, in order.
func (e *env) drain(s bus.Subscription) []string {
	e.t.Helper()
	var got []string
	for i := 0; i < 10000; i++ {
		d := e.recv(s)
		e.ack(d)
		if d.MessageID == markerID {
			return got
		}
		got = append(got, string(d.Body))
	}
	e.t.Fatal("no marker after 10000 deliveries")
	return nil
}

// closedWithin waits for the Deliveries channel to close, acking anything
// still delivered.
func (e *env) closedWithin(s bus.Subscription) {
	e.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case d, ok := <-s.Deliveries():
			if !ok {
				return
			}
			_ = d.Ack()
		case <-timer.C:
			e.t.Fatalf("deliveries not closed within %v", waitTimeout)
		}
	}
}
