package bustest

import (
	"errors"
	"slices"
	"sort"

	"github.com/patbus/patbus/bus"
)

var routingTests = []subtest{
	{"Topic", testTopic},
	{"Direct", testDirect},
	{"Fanout", testFanout},
	{"DefaultExchange", testDefaultExchange},
	{"BindUnbind", testBindUnbind},
	{"BindMissing", testBindMissing},
}

// expectRouted publishes each key (body = key) to exchange, then a marker to
// every queue, and checks that each queue got exactly its expected keys.
func (e *env) expectRouted(exchange string, keys []string, queues []string, want map[string][]string) {
	e.t.Helper()
	subs := make([]bus.Subscription, len(queues))
	for i, q := range queues {
		subs[i] = e.consume(q, 50)
	}
	for _, k := range keys {
		e.text(exchange, k, k)
	}
	for _, q := range queues {
		e.marker(q)
	}
	for i, q := range queues {
		got := e.drain(subs[i])
		sort.Strings(got)
		w := slices.Clone(want[q])
		sort.Strings(w)
		if !slices.Equal(got, w) {
			e.t.Errorf("queue %s got %q, want %q", q, got, w)
		}
	}
}

func testTopic(e *env) {
	ex := e.exchange("topic", bus.Topic)
	patterns := []string{"a.*", "a.#", "#", "*.b.*", "a.b.c", "#.c", "*", "a.#.c"}
	want := map[string][]string{}
	expected := [][]string{
		{"a.b", "a.c"},
		{"a", "a.b", "a.b.c", "a.b.c.d", "a.c"},
		{"a", "a.b", "a.b.c", "x.b.y", "a.b.c.d", "c", "a.c"},
		{"a.b.c", "x.b.y"},
		{"a.b.c"},
		{"a.b.c", "c", "a.c"},
		{"a", "c"},
		{"a.b.c", "a.c"},
	}
	var queues []string
	for i, p := range patterns {
		q := e.queue(bus.Queue{Name: "topic" + string(rune('0'+i))})
		e.bind(ex, q, p)
		queues = append(queues, q)
		want[q] = expected[i]
	}
	// A queue bound twice gets a matching message once.
	both := e.queue(bus.Queue{Name: "topic-both"})
	e.bind(ex, both, "a.#")
	e.bind(ex, both, "#.c")
	queues = append(queues, both)
	want[both] = []string{"a", "a.b", "a.b.c", "a.b.c.d", "a.c", "c"}

	e.expectRouted(ex, []string{"a", "a.b", "a.b.c", "x.b.y", "a.b.c.d", "c", "a.c"}, queues, want)
}

func testDirect(e *env) {
	ex := e.exchange("direct", bus.Direct)
	red := e.queue(bus.Queue{Name: "red"})
	redGreen := e.queue(bus.Queue{Name: "redgreen"})
	e.bind(ex, red, "red")
	e.bind(ex, redGreen, "red")
	e.bind(ex, redGreen, "green")
	// Direct keys are not patterns.
	star := e.queue(bus.Queue{Name: "star"})
	e.bind(ex, star, "*")
	e.expectRouted(ex, []string{"red", "green", "blue", "red.x"}, []string{red, redGreen, star}, map[string][]string{
		red:      {"red"},
		redGreen: {"red", "green"},
		star:     nil,
	})
}

func testFanout(e *env) {
	ex := e.exchange("fanout", bus.Fanout)
	q1 := e.queue(bus.Queue{Name: "f1"})
	q2 := e.queue(bus.Queue{Name: "f2"})
	e.bind(ex, q1, "")
	e.bind(ex, q2, "ignored")
	e.expectRouted(ex, []string{"x", "y.z", ""}, []string{q1, q2}, map[string][]string{
		q1: {"x", "y.z", ""},
		q2: {"x", "y.z", ""},
	})
}

func testDefaultExchange(e *env) {
	q := e.queue(bus.Queue{Name: "default"})
	other := e.queue(bus.Queue{Name: "default-other"})
	e.expectRouted("", []string{q, q, other}, []string{q, other}, map[string][]string{
		q:     {q, q},
		other: {other},
	})
	c, err := e.b.Publish(e.ctx, "", e.name("no-such-queue"), bus.Message{Mandatory: true, Body: []byte("x")})
	if err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
	var re *bus.ReturnError
	if err := c.Wait(e.ctx); !errors.As(err, &re) || !errors.Is(err, bus.ErrUnroutable) {
		e.t.Fatalf("mandatory publish to a missing queue: %v, want a *ReturnError", err)
	}
	if re.Exchange != "" || re.Key != e.name("no-such-queue") {
		e.t.Errorf("ReturnError names exchange %q key %q", re.Exchange, re.Key)
	}
}

func testBindUnbind(e *env) {
	ex := e.exchange("bind", bus.Topic)
	q := e.queue(bus.Queue{Name: "bind"})
	keep := e.queue(bus.Queue{Name: "bind-keep"}) // keeps the auto-delete exchange alive
	e.bind(ex, keep, "#")
	e.bind(ex, q, "k1")
	e.bind(ex, q, "k1") // twice is once
	e.bind(ex, q, "k2")
	sub := e.consume(q, 10)
	e.text(ex, "k1", "one")
	e.text(ex, "k2", "two")
	if err := e.b.Unbind(e.ctx, bus.Binding{Exchange: ex, Queue: q, Key: "k1"}); err != nil {
		e.t.Fatalf("Unbind: %v", err)
	}
	if err := e.b.Unbind(e.ctx, bus.Binding{Exchange: ex, Queue: q, Key: "never-bound"}); err != nil {
		e.t.Fatalf("Unbind of a binding that does not exist: %v", err)
	}
	e.text(ex, "k1", "three")
	e.text(ex, "k2", "four")
	e.marker(q)
	if got, want := e.drain(sub), []string{"one", "two", "four"}; !slices.Equal(got, want) {
		e.t.Errorf("got %q, want %q", got, want)
	}
}

func testBindMissing(e *env) {
	ex := e.exchange("bindmissing", bus.Direct)
	q := e.queue(bus.Queue{Name: "bindmissing"})
	e.bind(ex, q, "k") // so the auto-delete exchange goes with the queue
	err := e.b.Bind(e.ctx, bus.Binding{Exchange: ex, Queue: e.name("no-such-queue"), Key: "k"})
	if !errors.Is(err, bus.ErrNotFound) {
		e.t.Errorf("Bind to a missing queue: %v, want ErrNotFound", err)
	}
	err = e.b.Bind(e.ctx, bus.Binding{Exchange: e.name("no-such-exchange"), Queue: q, Key: "k"})
	if !errors.Is(err, bus.ErrNotFound) {
		e.t.Errorf("Bind to a missing exchange: %v, want ErrNotFound", err)
	}
	// The broker still works.
	sub := e.consume(q, 10)
	e.text(ex, "k", "after")
	e.marker(q)
	if got := e.drain(sub); !slices.Equal(got, []string{"after"}) {
		e.t.Errorf("got %q after the failed binds", got)
	}
}
