package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/pubsub"
)

type payload struct {
	ID string `json:"id"`
}

// record returns a handler that adds each event's id to l.
func record(l *ledger) pubsub.Handler {
	return pubsub.Typed(func(ctx context.Context, v payload) error {
		l.add(v.ID)
		return nil
	})
}

func TestEmitDeliversPatternBodyAndTx(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		run := uniq()
		got := make(chan *pubsub.Event, 1)
		txs := make(chan string, 1)
		sub, err := p.Subscribe(ctx, "run:"+run+",role:user", pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			txs <- wire.Tx(ctx)
			got <- ev
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Emit(wire.WithTx(ctx, "tx-1"), "role:user,evt:login,run:"+run, map[string]any{"uid": 2, "evt": "login"}); err != nil {
			t.Fatal(err)
		}
		ev := recv(t, got)
		if tx := recv(t, txs); tx != "tx-1" || ev.Tx != "tx-1" {
			t.Errorf("tx %q / %q", tx, ev.Tx)
		}
		if want := "evt:login,role:user,run:" + run; ev.Pattern != want {
			t.Errorf("pattern %q, want %q", ev.Pattern, want)
		}
		if want := "evt:login.role:user.run:" + run; ev.RoutingKey != want || ev.Exchange != pubsub.EventsExchange {
			t.Errorf("routed %s %q, want %q", ev.Exchange, ev.RoutingKey, want)
		}
		var body map[string]any
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["uid"] != float64(2) || body["evt"] != "login" || body["role"] != "user" || body["run"] != run {
			t.Errorf("body %v", body)
		}
		if err := sub.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEmitRejectsBadInput(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		cases := []struct {
			pattern string
			data    any
			want    error
		}{
			{"role:user,cmd:", nil, patterns.ErrInvalidPattern},
			{"role:us*", nil, patterns.ErrInvalidPattern},
			{"role:user", map[string]any{"role": "admin"}, pubsub.ErrInvalidInput},
			{"role:user", "a string", pubsub.ErrInvalidInput},
			{"role:user", []byte("{broken"), pubsub.ErrInvalidInput},
			{"role:user", make(chan int), pubsub.ErrInvalidInput},
		}
		for _, c := range cases {
			if err := p.Emit(ctx, c.pattern, c.data); !errors.Is(err, c.want) {
				t.Errorf("Emit(%q, %v): %v, want %v", c.pattern, c.data, err, c.want)
			}
		}
		// Same value in another type is no conflict: values compare as strings.
		if err := p.Emit(ctx, "n:1,run:"+uniq(), map[string]any{"n": 1}); err != nil {
			t.Errorf("Emit with n:1 and {n:1}: %v", err)
		}
	})
}

// TestBindingRuleAndGlobs: exact pairs route through the binding; glob pairs
// are checked by the subscriber; events that do not match are skipped.
func TestBindingRuleAndGlobs(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		run := uniq()
		wide, narrow, glob := newLedger(), newLedger(), newLedger()
		for _, s := range []struct {
			pattern string
			l       *ledger
		}{
			{"run:" + run + ",role:user", wide},
			{"run:" + run + ",role:user,evt:login", narrow},
			{"run:" + run + ",role:user,evt:log*", glob},
		} {
			sub, err := p.Subscribe(ctx, s.pattern, record(s.l))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
		}
		emit := func(pattern, id string) {
			t.Helper()
			if err := p.Emit(ctx, pattern+",run:"+run, payload{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		emit("role:admin,evt:login", "admin-login")
		emit("role:user,evt:signup", "signup")
		emit("role:user,evt:logout,extra:1", "logout")
		emit("role:user,evt:login", "login")
		emit("role:user,evt:login,z:last", "end")
		waitFor(t, "every subscriber to see the end", func() bool {
			return wide.get("end") == 1 && narrow.get("end") == 1 && glob.get("end") == 1
		}, wide, narrow, glob)
		want := map[*ledger]map[string]int{
			wide:   {"signup": 1, "logout": 1, "login": 1, "end": 1},
			narrow: {"login": 1, "end": 1},
			glob:   {"logout": 1, "login": 1, "end": 1},
		}
		for l, w := range want {
			if got := l.ids(); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("got %v, want %v", got, w)
			}
		}
	})
}

// TestGroupsAndBroadcasts: every group gets each event once (shared by its
// instances), every broadcast subscriber gets each event once.
func TestGroupsAndBroadcasts(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		pattern := "run:" + run + ",evt:tick"
		groups := map[string][]*ledger{"billing-" + run: {newLedger(), newLedger()}, "audit-" + run: {newLedger(), newLedger()}}
		var all []*ledger
		var subs []*pubsub.Subscription
		for g, ls := range groups {
			e.deleteQueues(pubsub.EventsExchange+"."+g, pubsub.EventsExchange+"."+g+".dead")
			for _, l := range ls {
				s, err := e.pubsub().Subscribe(ctx, pattern, record(l), pubsub.Group(g), pubsub.WithConcurrency(2))
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, s)
				all = append(all, l)
			}
		}
		bcast := []*ledger{newLedger(), newLedger(), newLedger()}
		for _, l := range bcast {
			s, err := e.pubsub().Subscribe(ctx, pattern, record(l), pubsub.Broadcast())
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
			all = append(all, l)
		}
		const n = 300
		emitter := e.pubsub()
		for i := 0; i < n; i++ {
			if err := emitter.Emit(ctx, pattern, payload{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		sum := func(ls []*ledger) map[string]int {
			out := map[string]int{}
			for _, l := range ls {
				for id, c := range l.ids() {
					out[id] += c
				}
			}
			return out
		}
		waitFor(t, "every group and broadcast subscriber to see every event", func() bool {
			for _, ls := range groups {
				if len(sum(ls)) != n {
					return false
				}
			}
			for _, l := range bcast {
				if len(l.ids()) != n {
					return false
				}
			}
			return true
		}, all...)
		for _, s := range subs {
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for g, ls := range groups {
			for id, c := range sum(ls) {
				if c != 1 {
					t.Errorf("group %s saw %s %d times", g, id, c)
				}
			}
			t.Logf("group %s: instances saw %d and %d events", g, len(ls[0].ids()), len(ls[1].ids()))
		}
		for i, l := range bcast {
			for id, c := range l.ids() {
				if c != 1 {
					t.Errorf("broadcast subscriber %d saw %s %d times", i, id, c)
				}
			}
		}
	})
}

// TestGroupKeepsEventsWhileNoInstanceRuns: a group's queue outlives its
// instances; one that falls over holding events hands them to the next.
func TestGroupKeepsEventsWhileNoInstanceRuns(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		pattern := "run:" + run + ",evt:order"
		group := "shipping-" + run
		e.deleteQueues(pubsub.EventsExchange+"."+group, pubsub.EventsExchange+"."+group+".dead")
		emitter := e.pubsub()

		// The first instance takes one event and falls over holding it.
		b1 := e.broker()
		p1, err := pubsub.New(ctx, b1)
		if err != nil {
			t.Fatal(err)
		}
		holding := make(chan struct{})
		s1, err := p1.Subscribe(ctx, pattern, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			close(holding)
			<-ctx.Done() // holds the event until the instance goes away
			return ctx.Err()
		}), pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		if err := emitter.Emit(ctx, pattern, payload{ID: "held"}); err != nil {
			t.Fatal(err)
		}
		recv(t, holding)
		if e.shared == nil {
			// RabbitMQ: the instance's connection goes away under it.
			if err := b1.Close(); err != nil {
				t.Fatal(err)
			}
		}
		_ = s1.Close()
		_ = p1.Close()

		// Events emitted while no instance runs wait in the group's queue.
		for i := 0; i < 5; i++ {
			if err := emitter.Emit(ctx, pattern, payload{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		l := newLedger()
		redelivered := make(chan bool, 10)
		s2, err := e.pubsub().Subscribe(ctx, pattern, typed(func(ctx context.Context, ev *pubsub.Event, v payload) error {
			if v.ID == "held" {
				redelivered <- ev.Redelivered
			}
			l.add(v.ID)
			return nil
		}), pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the group's events", func() bool { return len(l.ids()) == 6 }, l)
		if !recv(t, redelivered) {
			t.Error("the held event was not marked redelivered")
		}
		if err := s2.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFailedEventsAreRequeuedOnceThenRejected: a group dead-letters, a
// broadcast drops; either way the subscriber goes on.
func TestFailedEventsAreRequeuedOnceThenRejected(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		group := "fail-" + run
		dead := pubsub.EventsExchange + "." + group + ".dead"
		e.deleteQueues(pubsub.EventsExchange+"."+group, dead)
		p := e.pubsub()
		l := newLedger()
		h := typed(func(ctx context.Context, ev *pubsub.Event, v payload) error {
			l.add(fmt.Sprintf("%s/%v", v.ID, ev.Redelivered))
			if v.ID == "bad" {
				if ev.Redelivered {
					panic("still bad")
				}
				return errors.New("bad event")
			}
			return nil
		})
		sub, err := p.Subscribe(ctx, "run:"+run, h, pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		for _, id := range []string{"bad", "good"} {
			if err := p.Emit(ctx, "run:"+run, payload{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "two tries of the bad event and the good one", func() bool {
			return l.get("bad/false") == 1 && l.get("bad/true") == 1 && l.get("good/false") == 1
		}, l)
		// The rejected event is in the group's dead-letter queue.
		dl := newLedger()
		ds, err := p.SubscribeDirect(ctx, "amq.direct", []string{"unused-" + run}, nil)
		if err == nil {
			_ = ds.Close()
			t.Fatal("SubscribeDirect with a nil handler succeeded")
		}
		dsub, err := e.broker().Consume(ctx, dead, busConsume())
		if err != nil {
			t.Fatal(err)
		}
		d := recv(t, dsub.Deliveries())
		var v payload
		_ = json.Unmarshal(d.Body, &v)
		dl.add(v.ID)
		_ = d.Ack()
		_ = dsub.Cancel(ctx)
		if dl.get("bad") != 1 {
			t.Errorf("dead letter %s", d.Body)
		}
		if err := sub.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGroupConflictAndClose(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		group := "conflict-" + run
		e.deleteQueues(pubsub.EventsExchange+"."+group, pubsub.EventsExchange+"."+group+".dead")
		p := e.pubsub(pubsub.WithTransient())
		nop := pubsub.HandlerFunc(func(context.Context, *pubsub.Event) error { return nil })
		s1, err := p.Subscribe(ctx, "run:"+run+",a:1", nop, pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		s2, err := p.Subscribe(ctx, "a:1,run:"+run, nop, pubsub.Group(group))
		if err != nil {
			t.Fatalf("second instance with the same pattern: %v", err)
		}
		if _, err := p.Subscribe(ctx, "run:"+run+",a:2", nop, pubsub.Group(group)); !errors.Is(err, pubsub.ErrInvalidConfig) {
			t.Errorf("other pattern in the same group: %v, want ErrInvalidConfig", err)
		}
		for _, bad := range [][]pubsub.Option{{pubsub.Group("")}, {pubsub.WithConcurrency(0)}} {
			if _, err := p.Subscribe(ctx, "run:"+run, nop, bad...); !errors.Is(err, pubsub.ErrInvalidConfig) {
				t.Errorf("bad options: %v, want ErrInvalidConfig", err)
			}
		}
		if s1.Queue() != pubsub.EventsExchange+"."+group || s2.Queue() != s1.Queue() {
			t.Errorf("queues %s %s", s1.Queue(), s2.Queue())
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s1.Close(); err != nil {
			t.Errorf("Close after PubSub.Close: %v", err)
		}
		if err := p.Emit(ctx, "run:"+run, nil); !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("Emit after Close: %v", err)
		}
		if _, err := p.Subscribe(ctx, "run:"+run, nop); !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("Subscribe after Close: %v", err)
		}
	})
}

func TestShutdownWaitsForHandlers(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		run := uniq()
		started := make(chan struct{})
		release := make(chan struct{})
		finished := make(chan struct{})
		sub, err := p.Subscribe(ctx, "run:"+run, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			close(started)
			<-release
			close(finished)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Emit(ctx, "run:"+run, nil); err != nil {
			t.Fatal(err)
		}
		recv(t, started)
		done := make(chan error, 1)
		go func() { done <- p.Shutdown(ctx) }()
		close(release)
		if err := recv(t, done); err != nil {
			t.Fatal(err)
		}
		select {
		case <-finished:
		default:
			t.Error("Shutdown returned before the handler finished")
		}
		_ = sub
	})
}

// Pattern values enter the body typed as Seneca's jsonic types them, so a
// typed handler takes "id:5" as a number.
func TestEmitTypesPatternValues(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		run := uniq()
		type order struct {
			ID   int    `json:"id"`
			Paid bool   `json:"paid"`
			Run  string `json:"run"`
		}
		got := make(chan order, 1)
		sub, err := p.Subscribe(ctx, "role:order,run:"+run, pubsub.Typed(func(ctx context.Context, o order) error {
			got <- o
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Emit(ctx, "role:order,run:"+run+",id:5,paid:true", nil); err != nil {
			t.Fatal(err)
		}
		if o := recv(t, got); o.ID != 5 || !o.Paid || o.Run != run {
			t.Errorf("handler got %+v", o)
		}
		if err := sub.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A subscription whose queue is deleted under it says so: Done closes and
// Err wraps bus.ErrNotFound. One that is closed has no such error.
func TestSubscriptionReportsItsEnd(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		group := "end-" + run
		e.deleteQueues(pubsub.EventsExchange+"."+group, pubsub.EventsExchange+"."+group+".dead")
		b := e.broker()
		p, err := pubsub.New(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		nop := pubsub.HandlerFunc(func(context.Context, *pubsub.Event) error { return nil })
		sub, err := p.Subscribe(ctx, "run:"+run, nop, pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if err := sub.Err(); err != nil {
			t.Fatalf("Err while running: %v", err)
		}
		// Deleted through its own broker: the program meant it, and the
		// subscription ends. (A queue deleted by someone else is declared
		// again by the bus and the subscription resumes:
		// TestSubscriptionSurvivesItsQueueDeletedByOthers.)
		if err := b.DeleteQueue(ctx, sub.Queue()); err != nil {
			t.Fatal(err)
		}
		recv(t, sub.Done())
		if err := sub.Err(); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("Err after the queue was deleted: %v, want bus.ErrNotFound", err)
		}
		other, err := p.Subscribe(ctx, "run:"+run, nop)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		recv(t, other.Done())
		if err := other.Err(); err != nil {
			t.Errorf("Err after Close: %v", err)
		}
	})
}

// A group queue deleted by someone else (an operator, another program) is
// declared again, with its bindings, and the subscription goes on.
func TestSubscriptionSurvivesItsQueueDeletedByOthers(t *testing.T) {
	testenv.AMQPURL(t)
	e := &env{t: t, name: "rabbitmq"}
	ctx := testCtx(t)
	run := uniq()
	group := "survive-" + run
	e.deleteQueues(pubsub.EventsExchange+"."+group, pubsub.EventsExchange+"."+group+".dead")
	p := e.pubsub()
	got := make(chan string, 10)
	sub, err := p.Subscribe(ctx, "run:"+run, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
		got <- ev.ID
		return nil
	}), pubsub.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := e.broker().DeleteQueue(ctx, sub.Queue()); err != nil { // another connection
		t.Fatal(err)
	}
	// Emit until an event arrives: the queue is back and bound.
	deadline := time.Now().Add(wait)
	for {
		if err := p.Emit(ctx, "run:"+run, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			if err := sub.Err(); err != nil {
				t.Errorf("Err after the queue came back: %v", err)
			}
			return
		case <-sub.Done():
			t.Fatalf("the subscription ended: %v", sub.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no event arrived after the queue was deleted by someone else")
		}
	}
}
