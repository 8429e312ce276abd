package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/pubsub"
)

// An event from a producer in another language keeps its tx in the
// handler's context, whether it sent patbus-tx as bytes or only a W3C
// traceparent.
func TestForeignProducersTxReachesTheHandler(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		run := uniq()
		type seen struct{ ctxTx, evTx string }
		got := make(chan seen, 2)
		ids := make(chan string, 2)
		sub, err := p.Subscribe(ctx, "run:"+run, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			ids <- ev.ID
			got <- seen{patbus.Tx(ctx), ev.Tx}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		trace := patbus.NewTx()
		cases := []struct {
			name    string
			headers map[string]any
			want    string
		}{
			{"bytes", map[string]any{"patbus-tx": []byte("foreign-tx-as-bytes")}, "foreign-tx-as-bytes"},
			{"traceparent", map[string]any{"traceparent": "00-" + trace + "-0123456789abcdef-01"}, trace},
		}
		for _, c := range cases {
			msg := bus.Message{Headers: c.headers, ContentType: "application/json", MessageID: c.name, Body: []byte(`{"run":"` + run + `"}`)}
			if err := bus.PublishAndWait(ctx, e.broker(), pubsub.EventsExchange, "run:"+run, msg); err != nil {
				t.Fatal(err)
			}
			if id := recv(t, ids); id != c.name {
				t.Fatalf("got event %q, want %q", id, c.name)
			}
			if s := recv(t, got); s.ctxTx != c.want || s.evTx != c.want {
				t.Errorf("%s: context tx %q, event tx %q, want %q", c.name, s.ctxTx, s.evTx, c.want)
			}
		}
	})
}

// The program's middleware runs, New's outside the subscription's, sees
// each event the handler gets, and never an event the pattern's globs
// skip.
func TestMiddlewareSeesTheEvents(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		var mu sync.Mutex
		var trail []string
		note := func(s string) { mu.Lock(); trail = append(trail, s); mu.Unlock() }
		mw := func(name string) patbus.Middleware {
			return func(next patbus.Handler) patbus.Handler {
				return pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
					var v payload
					if err := ev.Decode(&v); err != nil {
						return err
					}
					note(fmt.Sprintf("%s %s %s", name, v.ID, ev.Pattern))
					return next.Handle(ctx, ev)
				})
			}
		}
		p := e.pubsub(pubsub.WithMiddleware(mw("outer")))
		done := make(chan struct{})
		sub, err := p.Subscribe(ctx, "run:"+run+",evt:log*", pubsub.Typed(func(ctx context.Context, v payload) error {
			note("handler " + v.ID)
			close(done)
			return nil
		}), pubsub.WithMiddleware(mw("inner")))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		// A subscription without middleware of its own runs only New's.
		l := newLedger()
		other, err := p.Subscribe(ctx, "run:"+run+",evt:signup", record(l))
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if err := p.Emit(ctx, "run:"+run+",evt:signup", payload{ID: "skipped"}); err != nil {
			t.Fatal(err)
		}
		if err := p.Emit(ctx, "run:"+run+",evt:login", payload{ID: "in"}); err != nil {
			t.Fatal(err)
		}
		recv(t, done)
		waitFor(t, "the other subscription", func() bool { return l.get("skipped") == 1 }, l)
		mu.Lock()
		defer mu.Unlock()
		got := strings.Join(trail, "; ")
		// The two subscriptions run at once: each event's own steps are
		// in order, whatever the other's are doing meanwhile.
		var in []string
		for _, step := range trail {
			if strings.Contains(step, " in") {
				in = append(in, step)
			}
		}
		if want := "outer in evt:login,run:" + run + "; inner in evt:login,run:" + run + "; handler in"; strings.Join(in, "; ") != want {
			t.Errorf("the event's steps %q, want %q", strings.Join(in, "; "), want)
		}
		if want := "outer skipped evt:signup,run:" + run; !strings.Contains(got, want) {
			t.Errorf("trail %q lacks %q", got, want)
		}
		if n := strings.Count(got, "skipped"); n != 1 {
			t.Errorf("trail %q: the skipped event was seen %d times, want once (by the other subscription)", got, n)
		}
	})
}

// An event whose body the handler cannot decode, or that is no JSON
// object, is dead-lettered at once: it cannot succeed on a retry.
func TestUndecodableEventsAreRejectedAtOnce(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		group := "decode-" + run
		dead := pubsub.EventsExchange + "." + group + ".dead"
		e.deleteQueues(pubsub.EventsExchange+"."+group, dead)
		b := e.broker()
		p, err := pubsub.New(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var calls atomic.Int32
		count := func(next patbus.Handler) patbus.Handler {
			return pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
				calls.Add(1)
				return next.Handle(ctx, ev)
			})
		}
		type strict struct {
			N int `json:"n"`
		}
		errs := make(chan error, 1)
		sub, err := p.Subscribe(ctx, "run:"+run, pubsub.Typed(func(ctx context.Context, v strict) error {
			errs <- fmt.Errorf("the handler ran with %+v", v)
			return nil
		}), pubsub.Group(group), pubsub.WithMiddleware(count))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if err := p.Emit(ctx, "run:"+run, map[string]any{"n": "not a number"}); err != nil {
			t.Fatal(err)
		}
		raw := bus.Message{ContentType: "application/json", MessageID: "not-json", Body: []byte("not json")}
		if err := bus.PublishAndWait(ctx, b, pubsub.EventsExchange, "run:"+run, raw); err != nil {
			t.Fatal(err)
		}
		dsub, err := b.Consume(ctx, dead, busConsume())
		if err != nil {
			t.Fatal(err)
		}
		defer dsub.Cancel(ctx)
		var bodies []string
		for i := 0; i < 2; i++ {
			d := recv(t, dsub.Deliveries())
			bodies = append(bodies, string(d.Body))
			_ = d.Ack()
		}
		if !strings.Contains(bodies[0], `"n":"not a number"`) || bodies[1] != "not json" {
			t.Errorf("dead letters %q", bodies)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("the middleware saw %d deliveries, want 1 (no retry; the non-object skipped before it)", n)
		}
		select {
		case err := <-errs:
			t.Error(err)
		default:
		}
	})
}

// Shutdown whose context has ended cancels the running handler and
// returns the context's error; the event goes back to the group's queue
// and reaches the next instance.
func TestShutdownOutOfTimeRequeuesTheRunningEvent(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		pattern := "run:" + run
		group := "slow-" + run
		e.deleteQueues(pubsub.EventsExchange+"."+group, pubsub.EventsExchange+"."+group+".dead")
		started := make(chan struct{})
		canceled := make(chan error, 1)
		s1, err := e.pubsub().Subscribe(ctx, pattern, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			close(started)
			<-ctx.Done()
			canceled <- ctx.Err()
			return ctx.Err()
		}), pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.pubsub().Emit(ctx, pattern, payload{ID: "held"}); err != nil {
			t.Fatal(err)
		}
		recv(t, started)
		sctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s1.Shutdown(sctx); err != sctx.Err() {
			t.Fatalf("Shutdown = %v, want the context's error", err)
		}
		if err := recv(t, canceled); err == nil {
			t.Error("the handler's context was not canceled")
		}
		recv(t, s1.Done())
		redelivered := make(chan bool, 1)
		s2, err := e.pubsub().Subscribe(ctx, pattern, typed(func(ctx context.Context, ev *pubsub.Event, v payload) error {
			if v.ID == "held" {
				redelivered <- ev.Redelivered
			}
			return nil
		}), pubsub.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if !recv(t, redelivered) {
			t.Error("the event given back was not marked redelivered")
		}
	})
}

// WithConcurrency bounds the handlers that run at once, even when the
// prefetch has handed the subscription more events.
func TestConcurrencyIsBounded(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		group := "conc-" + run
		e.deleteQueues(pubsub.EventsExchange+"."+group, pubsub.EventsExchange+"."+group+".dead")
		b := e.broker()
		insp, ok := b.(bus.QueueInspector)
		if !ok {
			t.Fatalf("%T cannot inspect queues", b)
		}
		p, err := pubsub.New(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		const n, limit = 10, 3
		var running, peak, handled atomic.Int32
		release := make(chan struct{})
		sub, err := p.Subscribe(ctx, "run:"+run, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			now := running.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			<-release
			running.Add(-1)
			handled.Add(1)
			return nil
		}), pubsub.Group(group), pubsub.WithConcurrency(limit), pubsub.WithPrefetch(n))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		for i := 0; i < n; i++ {
			if err := p.Emit(ctx, "run:"+run, payload{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		// Every event has left the queue for the subscriber, and the
		// limit of handlers runs.
		waitFor(t, "the handlers to fill up and the queue to empty", func() bool {
			info, err := insp.InspectQueue(ctx, sub.Queue())
			return err == nil && info.Messages == 0 && running.Load() == limit
		})
		close(release)
		waitFor(t, "every event", func() bool { return handled.Load() == n })
		if peak.Load() != limit {
			t.Errorf("at most %d handlers ran at once, want %d", peak.Load(), limit)
		}
	})
}

// Options are validated at once, every problem in one error; New ignores
// the options that only subscriptions take.
func TestOptionsAreValidatedAtOnce(t *testing.T) {
	b := testenv.Memory(t)
	_, err := pubsub.New(context.Background(), b, pubsub.WithPrefetch(0), pubsub.WithConcurrency(-1))
	if !errors.Is(err, pubsub.ErrInvalidConfig) || !strings.Contains(err.Error(), "prefetch 0") || !strings.Contains(err.Error(), "concurrency -1") {
		t.Errorf("New with two bad options: %v", err)
	}
	p, err := pubsub.New(context.Background(), b, pubsub.Group(""), pubsub.WithConcurrency(4), pubsub.WithPrefetch(2))
	if err != nil {
		t.Fatalf("New with Group(\"\") and a prefetch below the concurrency: %v", err)
	}
	defer p.Close()
	ctx := testCtx(t)
	_, err = p.Subscribe(ctx, "run:"+uniq(), nil, pubsub.Group(""), pubsub.WithPrefetch(0))
	for _, want := range []string{"nil handler", "empty group name", "prefetch 0"} {
		if !errors.Is(err, pubsub.ErrInvalidConfig) || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("Subscribe with bad arguments: %v, want it to say %q", err, want)
		}
	}
	nop := pubsub.HandlerFunc(func(context.Context, *pubsub.Event) error { return nil })
	sub, err := p.Subscribe(ctx, "run:"+uniq(), nop)
	if err != nil {
		t.Fatalf("Subscribe with New's defaults: %v", err)
	}
	_ = sub.Close()
}
