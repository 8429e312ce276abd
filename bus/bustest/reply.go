package bustest

import (
	"bytes"
	"errors"

	"github.com/patbus/patbus/bus"
)

var replyTests = []subtest{
	{"OnChannel", func(e *env) { testReply(e, true, []byte("answer")) }},
	{"Confirmed", func(e *env) { testReply(e, false, []byte("answer")) }},
	{"LargeOnChannel", func(e *env) { testReply(e, true, bytes.Repeat([]byte("a"), 64<<10)) }},
	{"NoReplyTo", testReplyNoReplyTo},
	{"Refused", testReplyRefused},
}

// request publishes a request to queue that asks for its reply in replyTo.
func (e *env) request(queue, replyTo, id string) {
	e.t.Helper()
	e.publish("", queue, bus.Message{CorrelationID: id, ReplyTo: replyTo, Body: []byte("question " + id)})
}

// testReply answers a request with Reply: the reply reaches the reply
// queue with what it was given, the request is acked (it never comes back)
// and settling it again says so.
func testReply(e *env, onChannel bool, body []byte) {
	q := e.queue(bus.Queue{Name: "reply.requests"})
	rq := e.queue(bus.Queue{Name: "reply.replies"})
	sub := e.consumeWith(q, bus.ConsumeOptions{Prefetch: 10, Replies: onChannel})
	replies := e.consume(rq, 10)
	e.request(q, rq, "c1")
	d := e.recv(sub)
	err := bus.Reply(e.waitCtx(), e.b, d, bus.Message{
		CorrelationID: "c1", ContentType: "text/plain", AppID: "svc@1.0.0",
		Headers: map[string]any{"x-status": "ok"}, Mandatory: true, Body: body,
	})
	if err != nil {
		e.t.Fatalf("Reply: %v", err)
	}
	if err := d.Ack(); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("Ack after Reply: %v, want ErrAcknowledged", err)
	}
	if err := bus.Reply(e.waitCtx(), e.b, d, bus.Message{Body: body}); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("second Reply: %v, want ErrAcknowledged", err)
	}
	r := e.recv(replies)
	e.ack(r)
	if r.CorrelationID != "c1" || r.ContentType != "text/plain" || r.AppID != "svc@1.0.0" ||
		r.Headers["x-status"] != "ok" || !bytes.Equal(r.Body, body) {
		e.t.Errorf("reply: id %q, type %q, app %q, headers %v, %d bytes", r.CorrelationID,
			r.ContentType, r.AppID, r.Headers, len(r.Body))
	}
	e.marker(rq)
	if got := e.drain(replies); len(got) != 0 {
		e.t.Errorf("the reply came %d more times", len(got))
	}
	e.settledForGood(sub, q)
}

// A delivery without reply-to cannot be answered, and stays unsettled.
func testReplyNoReplyTo(e *env) {
	q := e.queue(bus.Queue{Name: "reply.none"})
	sub := e.consumeWith(q, bus.ConsumeOptions{Prefetch: 10, Replies: true})
	e.text("", q, "one")
	d := e.recv(sub)
	if err := bus.Reply(e.waitCtx(), e.b, d, bus.Message{Body: []byte("x")}); !errors.Is(err, bus.ErrInvalidConfig) {
		e.t.Errorf("Reply without reply-to: %v, want ErrInvalidConfig", err)
	}
	e.ack(d)
}

// A confirmed reply the broker refuses (its queue is full and rejects
// publishes) fails with ErrNacked and leaves the request to be given back.
func testReplyRefused(e *env) {
	q := e.queue(bus.Queue{Name: "reply.refused"})
	full := e.queue(bus.Queue{Name: "reply.full", MaxLength: 1})
	e.text("", full, "filler")
	sub := e.consumeWith(q, bus.ConsumeOptions{Prefetch: 10})
	e.request(q, full, "c1")
	d := e.recv(sub)
	if err := bus.Reply(e.waitCtx(), e.b, d, bus.Message{Body: []byte("x")}); !errors.Is(err, bus.ErrNacked) {
		e.t.Fatalf("Reply to a full queue: %v, want ErrNacked", err)
	}
	if err := d.Nack(true); err != nil {
		e.t.Fatalf("Nack after a refused Reply: %v", err)
	}
	if d2 := e.recv(sub); d2.CorrelationID != "c1" || !d2.Redelivered {
		e.t.Errorf("after the refused reply got %q (redelivered %v)", d2.CorrelationID, d2.Redelivered)
	} else {
		e.ack(d2)
	}
}
