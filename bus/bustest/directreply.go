package bustest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
)

// directReplyTests run only against brokers that implement
// bus.DirectReplier; the others skip them.
var directReplyTests = []subtest{
	{"RoundTrip", testDirectReplyRoundTrip},
	{"MandatoryReturns", testDirectReplyReturns},
	{"Close", testDirectReplyClose},
	{"BrokerClose", testDirectReplyBrokerClose},
}

// directReply opens a DirectReply, skipping the test when the broker has
// none; it is closed at the end.
func (e *env) directReply() bus.DirectReply {
	e.t.Helper()
	dr, ok := e.b.(bus.DirectReplier)
	if !ok {
		e.t.Skip("broker does not implement bus.DirectReplier")
	}
	d, err := dr.DirectReply(e.waitCtx())
	if err != nil {
		e.t.Fatalf("DirectReply: %v", err)
	}
	e.t.Cleanup(func() { _ = d.Close() })
	return d
}

// recvReply waits for the next reply of d.
func (e *env) recvReply(d bus.DirectReply) *bus.Delivery {
	e.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case r, ok := <-d.Deliveries():
		if !ok {
			e.t.Fatalf("direct reply deliveries closed while waiting (Err: %v)", d.Err())
		}
		return r
	case <-timer.C:
		e.t.Fatalf("no reply within %v", waitTimeout)
	}
	return nil
}

func testDirectReplyRoundTrip(e *env) {
	d := e.directReply()
	q := e.queue(bus.Queue{Name: "direct-reply"})
	sub := e.consume(q, 100)

	const n = 10
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("req-%d", i)
		c, err := d.Publish(e.waitCtx(), "", q, bus.Message{MessageID: id, CorrelationID: id, ReplyTo: "ignored", Mandatory: true, Body: []byte(id)})
		if err != nil {
			e.t.Fatalf("DirectReply.Publish: %v", err)
		}
		if err := c.Wait(e.waitCtx()); err != nil {
			e.t.Fatalf("request confirm: %v", err)
		}
	}
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		req := e.recv(sub)
		if !strings.HasPrefix(req.ReplyTo, bus.DirectReplyTo+".") {
			e.t.Fatalf("request ReplyTo = %q, want prefix %q", req.ReplyTo, bus.DirectReplyTo+".")
		}
		if err := req.Ack(); err != nil {
			e.t.Fatalf("Ack: %v", err)
		}
		// The reply: default exchange, key = ReplyTo, not mandatory.
		e.publish("", req.ReplyTo, bus.Message{CorrelationID: req.CorrelationID, Body: []byte("re:" + string(req.Body))})
		want[req.CorrelationID] = true
	}
	for i := 0; i < n; i++ {
		r := e.recvReply(d)
		if !want[r.CorrelationID] || string(r.Body) != "re:"+r.CorrelationID {
			e.t.Fatalf("unexpected reply %q %q", r.CorrelationID, r.Body)
		}
		delete(want, r.CorrelationID)
		if err := r.Ack(); err != nil {
			e.t.Errorf("Ack of a reply: %v, want nil (automatic ack)", err)
		}
	}
}

func testDirectReplyReturns(e *env) {
	d := e.directReply()
	ex := e.exchange("direct-reply-none", bus.Direct)
	c, err := d.Publish(e.waitCtx(), ex, "nowhere", bus.Message{MessageID: "lost", Mandatory: true, Body: []byte("x")})
	if err != nil {
		e.t.Fatalf("DirectReply.Publish: %v", err)
	}
	err = c.Wait(e.waitCtx())
	var re *bus.ReturnError
	if !errors.As(err, &re) || !errors.Is(err, bus.ErrUnroutable) {
		e.t.Fatalf("unroutable mandatory request: %v, want *ReturnError", err)
	}
	// The DirectReply still works.
	q := e.queue(bus.Queue{Name: "direct-reply-after"})
	c, err = d.Publish(e.waitCtx(), "", q, bus.Message{MessageID: "ok", Mandatory: true, Body: []byte("y")})
	if err != nil {
		e.t.Fatalf("DirectReply.Publish after a return: %v", err)
	}
	if err := c.Wait(e.waitCtx()); err != nil {
		e.t.Fatalf("confirm after a return: %v", err)
	}
}

func testDirectReplyClose(e *env) {
	d := e.directReply()
	if err := d.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	select {
	case _, ok := <-d.Deliveries():
		if ok {
			e.t.Fatal("a delivery after Close")
		}
	default:
		e.t.Fatal("Deliveries not closed when Close returned")
	}
	if err := d.Err(); err != nil {
		e.t.Errorf("Err after Close: %v, want nil", err)
	}
	if _, err := d.Publish(e.waitCtx(), "", "x", bus.Message{Body: []byte("z")}); !errors.Is(err, bus.ErrClosed) {
		e.t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		e.t.Errorf("second Close: %v", err)
	}
}

func testDirectReplyBrokerClose(e *env) {
	d := e.directReply()
	if err := e.b.Close(); err != nil {
		e.t.Fatalf("broker Close: %v", err)
	}
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case _, ok := <-d.Deliveries():
		if ok {
			e.t.Fatal("a delivery after the broker closed")
		}
	case <-timer.C:
		e.t.Fatal("Deliveries not closed after the broker closed")
	}
	if err := d.Err(); !errors.Is(err, bus.ErrClosed) {
		e.t.Errorf("Err after the broker closed: %v, want ErrClosed", err)
	}
	dr := e.b.(bus.DirectReplier)
	if _, err := dr.DirectReply(e.waitCtx()); !errors.Is(err, bus.ErrClosed) {
		e.t.Errorf("DirectReply after the broker closed: %v, want ErrClosed", err)
	}
}
