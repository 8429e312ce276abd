package bustest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
)

var publishTests = []subtest{
	{"Confirm", testConfirm},
	{"MandatoryReturns", testMandatoryReturns},
	{"RoundTrip", testRoundTrip},
	{"MaxLengthNacks", testMaxLength},
	{"TooLarge", testTooLarge},
	{"MissingExchange", testMissingExchange},
}

func testConfirm(e *env) {
	q := e.queue(bus.Queue{Name: "confirm"})
	c, err := e.b.Publish(e.ctx, "", q, bus.Message{Body: []byte("x")})
	if err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
	if err := c.Wait(e.ctx); err != nil {
		e.t.Fatalf("Wait: %v", err)
	}
	select {
	case <-c.Done():
	default:
		e.t.Fatal("Done not closed after Wait returned")
	}
	if err := c.Err(); err != nil {
		e.t.Errorf("Err after confirm: %v", err)
	}
	// Not mandatory and unroutable: confirmed all the same.
	ex := e.exchange("confirm", bus.Direct)
	e.bind(ex, q, "routed")
	if err := bus.PublishAndWait(e.ctx, e.b, ex, "nowhere", bus.Message{Body: []byte("y")}); err != nil {
		e.t.Errorf("unroutable publish without Mandatory: %v, want nil", err)
	}
}

func testMandatoryReturns(e *env) {
	ex := e.exchange("mandatory", bus.Direct)
	q := e.queue(bus.Queue{Name: "mandatory"})
	e.bind(ex, q, "yes")
	sub := e.consume(q, 100)

	const n = 40
	type result struct {
		key string
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		i := i
		key := "yes"
		if i%2 == 1 {
			key = fmt.Sprintf("no-%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.b.Publish(e.ctx, ex, key, bus.Message{Mandatory: true, MessageID: fmt.Sprint(i), Body: []byte(fmt.Sprint(i))})
			if err == nil {
				err = c.Wait(e.ctx)
			}
			results[i] = result{key, err}
		}()
	}
	wg.Wait()
	var want []string
	for i, r := range results {
		if r.key == "yes" {
			want = append(want, fmt.Sprint(i))
			if r.err != nil {
				e.t.Errorf("publish %d (routable): %v", i, r.err)
			}
			continue
		}
		var re *bus.ReturnError
		if !errors.As(r.err, &re) || !errors.Is(r.err, bus.ErrUnroutable) {
			e.t.Errorf("publish %d (unroutable): %v, want a *ReturnError", i, r.err)
			continue
		}
		if re.Key != r.key || re.Exchange != ex {
			e.t.Errorf("publish %d returned as exchange %q key %q, want %q %q", i, re.Exchange, re.Key, ex, r.key)
		}
	}
	e.marker(q)
	got := e.drain(sub)
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		e.t.Errorf("queue got %q, want %q", got, want)
	}
}

func testRoundTrip(e *env) {
	q := e.queue(bus.Queue{Name: "roundtrip"})
	sub := e.consume(q, 10)
	ts := time.Unix(1700000000, 0)
	headers := map[string]any{
		"string":  "text",
		"bytes":   []byte{0, 1, 2},
		"bool":    true,
		"int":     42,
		"int32":   int32(-7),
		"int64":   int64(1) << 40,
		"float64": 3.5,
		"time":    ts,
		"map":     map[string]any{"k": "v", "n": 1},
		"list":    []any{"x", int64(2), true},
	}
	body := []byte(`{"hello":"world"}`)
	msg := bus.Message{
		Headers:       headers,
		ContentType:   "application/json",
		MessageID:     "id-1",
		CorrelationID: "corr-1",
		ReplyTo:       "reply.queue",
		Type:          "cmd:get,role:user",
		AppID:         "users@1.2.0",
		Expiration:    time.Minute,
		Persistent:    true,
		Timestamp:     ts,
		Body:          body,
	}
	c, err := e.b.Publish(e.ctx, "", q, msg)
	if err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
	// The broker must have copied what it keeps: changing the caller's
	// message now changes nothing.
	body[0] = 'X'
	headers["string"] = "changed"
	headers["map"].(map[string]any)["k"] = "changed"
	if err := c.Wait(e.ctx); err != nil {
		e.t.Fatalf("Wait: %v", err)
	}
	d := e.recv(sub)
	e.ack(d)

	if string(d.Body) != `{"hello":"world"}` {
		e.t.Errorf("Body = %q", d.Body)
	}
	if d.ContentType != "application/json" || d.MessageID != "id-1" || d.CorrelationID != "corr-1" || d.ReplyTo != "reply.queue" {
		e.t.Errorf("properties: content type %q, message id %q, correlation id %q, reply-to %q", d.ContentType, d.MessageID, d.CorrelationID, d.ReplyTo)
	}
	if d.Type != "cmd:get,role:user" || d.AppID != "users@1.2.0" {
		e.t.Errorf("properties: type %q, app id %q", d.Type, d.AppID)
	}
	if !d.Persistent {
		e.t.Error("Persistent = false")
	}
	if !d.Timestamp.Equal(ts) {
		e.t.Errorf("Timestamp = %v, want %v", d.Timestamp, ts)
	}
	if d.Expiration != time.Minute {
		e.t.Errorf("Expiration = %v, want 1m", d.Expiration)
	}
	if d.Exchange != "" || d.RoutingKey != q || d.Redelivered {
		e.t.Errorf("exchange %q, routing key %q, redelivered %v", d.Exchange, d.RoutingKey, d.Redelivered)
	}
	want := map[string]any{
		"string":  "text",
		"bytes":   []byte{0, 1, 2},
		"bool":    true,
		"int":     int64(42),
		"int32":   int64(-7),
		"int64":   int64(1) << 40,
		"float64": 3.5,
		"map":     map[string]any{"k": "v", "n": int64(1)},
		"list":    []any{"x", int64(2), true},
	}
	for k, w := range want {
		if g := d.Headers[k]; !reflect.DeepEqual(g, w) {
			e.t.Errorf("header %q = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
	if g, ok := d.Headers["time"].(time.Time); !ok || !g.Equal(ts) {
		e.t.Errorf("header time = %#v, want %v", d.Headers["time"], ts)
	}
	if len(d.Headers) != len(want)+1 {
		e.t.Errorf("headers %v: want exactly %d", d.Headers, len(want)+1)
	}
	if bytes.Equal(d.Body, body) {
		e.t.Error("delivery shares the publisher's body")
	}
}

func testMaxLength(e *env) {
	q := e.queue(bus.Queue{Name: "maxlen", MaxLength: 2})
	e.text("", q, "1")
	e.text("", q, "2")
	err := bus.PublishAndWait(e.ctx, e.b, "", q, bus.Message{Body: []byte("3")})
	slipped := false
	if err == nil && overflowsLate(e.b) {
		// The queue tells the publishing channels it is full after the
		// fact: one publish may get in first, the next is refused.
		slipped = true
		err = bus.PublishAndWait(e.ctx, e.b, "", q, bus.Message{Body: []byte("3b")})
	}
	if !errors.Is(err, bus.ErrNacked) {
		e.t.Fatalf("publish to a full queue: %v, want ErrNacked", err)
	}
	sub := e.consume(q, 10)
	d := e.recv(sub)
	e.ack(d)
	d2 := e.recv(sub)
	e.ack(d2)
	if string(d.Body) != "1" || string(d2.Body) != "2" {
		e.t.Errorf("got %q, %q", d.Body, d2.Body)
	}
	if slipped {
		if d3 := e.recv(sub); string(d3.Body) != "3" {
			e.t.Errorf("got %q, want the 3 that got in", d3.Body)
		} else {
			e.ack(d3)
		}
	}
	// There is room again.
	e.text("", q, "4")
	if d := e.recv(sub); string(d.Body) != "4" {
		e.t.Errorf("got %q, want 4", d.Body)
	} else {
		e.ack(d)
	}
}

// LateOverflow is implemented by a broker under test whose queues tell
// publishers they are full asynchronously (RabbitMQ's quorum queues), so
// that one publish past MaxLength may still be accepted.
type LateOverflow interface{ OverflowsLate() bool }

func overflowsLate(b bus.Broker) bool {
	l, ok := b.(LateOverflow)
	return ok && l.OverflowsLate()
}

func testTooLarge(e *env) {
	q := e.queue(bus.Queue{Name: "toolarge"})
	_, err := e.b.Publish(e.ctx, "", q, bus.Message{Body: make([]byte, bus.DefaultMaxMessageSize+1)})
	if !errors.Is(err, bus.ErrTooLarge) {
		e.t.Fatalf("Publish of a body over the limit: %v, want ErrTooLarge", err)
	}
	sub := e.consume(q, 10)
	e.marker(q)
	if got := e.drain(sub); len(got) != 0 {
		e.t.Errorf("queue got %d messages", len(got))
	}
}

func testMissingExchange(e *env) {
	c, err := e.b.Publish(e.ctx, e.name("no-such-exchange"), "k", bus.Message{Body: []byte("x")})
	if err == nil {
		// RabbitMQ reports a missing exchange after the publish.
		err = c.Wait(e.ctx)
	}
	if !errors.Is(err, bus.ErrNotFound) {
		e.t.Fatalf("publish to a missing exchange: %v, want ErrNotFound", err)
	}
	// The broker still works.
	q := e.queue(bus.Queue{Name: "after-missing"})
	sub := e.consume(q, 10)
	e.text("", q, "after")
	e.marker(q)
	if got := e.drain(sub); len(got) != 1 || got[0] != "after" {
		e.t.Errorf("got %q after the failed publish", got)
	}
}
