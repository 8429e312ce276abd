package bus

import (
	"sync/atomic"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestReturnIDs(t *testing.T) {
	var r returnIDs
	var seq atomic.Uint64
	msg := func(id string, mandatory bool) *pubMsg {
		return &pubMsg{mandatory: mandatory, pub: amqp.Publishing{MessageId: id, Headers: amqp.Table{"a": "b"}}}
	}

	// Not mandatory: as built, nothing to match.
	pub, match := r.take(msg("x", false), &seq)
	if match != "" || len(pub.Headers) != 1 {
		t.Fatalf("non-mandatory: match %q, headers %v", match, pub.Headers)
	}
	// A unique id is matched by itself, without the header.
	first := msg("x", true)
	pub, m1 := r.take(first, &seq)
	if m1 != "x" || pub.Headers[publishIDHeader] != nil {
		t.Fatalf("unique id: match %q, headers %v", m1, pub.Headers)
	}
	// The same id in flight: an internal id, in a copy of the headers.
	pub, m2 := r.take(msg("x", true), &seq)
	if m2 == "x" || m2 == "" || pub.Headers[publishIDHeader] != m2 || pub.Headers["a"] != "b" {
		t.Fatalf("shared id: match %q, headers %v", m2, pub.Headers)
	}
	if first.pub.Headers[publishIDHeader] != nil {
		t.Fatal("the message's own headers were changed")
	}
	// No id: an internal one, never the same twice.
	_, m3 := r.take(msg("", true), &seq)
	if m3 == "" || m3 == m2 {
		t.Fatalf("no id: match %q (previous internal %q)", m3, m2)
	}
	// A message id shaped like an internal one is never its own match.
	_, m4 := r.take(msg(internalIDPrefix+"1", true), &seq)
	if m4 == internalIDPrefix+"1" {
		t.Fatalf("message id %q used as its own match", m4)
	}
	r.release(m4)
	// Once the first copy is settled, its id is free again.
	r.release(m1)
	if _, m := r.take(msg("x", true), &seq); m != "x" {
		t.Fatalf("after release: match %q, want x", m)
	}
	r.release("x")
	r.release(m2)
	r.release(m3)
	if len(r.inFlight) != 0 {
		t.Fatalf("in flight after releasing all: %v", r.inFlight)
	}
}
