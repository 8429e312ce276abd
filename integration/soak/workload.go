package soak

import (
	"context"
	"fmt"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/pubsub"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/workers"
)

// This file is the only one that uses patbus's services, pubsub and
// workers: the traffic of a run through their public API. Every message
// carries its ledger sequence number as {"n": seq}.

// body is every message's JSON.
type body struct {
	N int `json:"n"`
}

// Prefetch and concurrency of the consumers: with the consumers' count,
// the deliveries a fault may hand out again.
const (
	ActPrefetch      = services.DefaultPrefetch
	WorkPrefetch     = workers.DefaultPrefetch
	WorkConcurrency  = 4
	EventPrefetch    = pubsub.DefaultPrefetch
	EventConcurrency = 4
)

// ActPatterns returns the two patterns of a soak service named name: the
// first plain, the second declared idempotent (a caller whose act was
// interrupted sends it again instead of failing).
func ActPatterns(name string) (plain, idempotent string) {
	return "role:" + name + ",cmd:echo", "role:" + name + ",cmd:get"
}

// ActQueue returns the act queue of the soak service named name.
func ActQueue(name string) string { return "patbus.act." + name + "@1.0.0" }

// ActServer is one instance of a soak service: version 1.0.0, whose two
// actions answer {"n": seq} and record the act in a ledger.
type ActServer struct {
	svc *services.Service
}

// StartActServer starts an instance of the service name on c and waits
// until it serves.
func StartActServer(ctx context.Context, c *Client, name string, led *Ledger) (*ActServer, error) {
	svc, err := services.New(name, "1.0.0", services.WithBroker(c.Broker), services.WithLogger(c.Logger))
	if err != nil {
		return nil, err
	}
	h := services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
		var b body
		if err := m.Decode(&b); err != nil {
			return nil, err
		}
		led.Received(b.N)
		return b, nil
	})
	plain, idem := ActPatterns(name)
	if err := svc.Add(plain, h); err != nil {
		_ = svc.Close()
		return nil, err
	}
	if err := svc.Add(idem, h, services.Idempotent()); err != nil {
		_ = svc.Close()
		return nil, err
	}
	if err := svc.Ready(ctx); err != nil {
		_ = svc.Close()
		return nil, err
	}
	return &ActServer{svc: svc}, nil
}

// Shutdown leaves the catalog and finishes the requests in flight.
func (s *ActServer) Shutdown(ctx context.Context) error { return s.svc.Shutdown(ctx) }

// ActCaller is a client program that acts on a soak service.
type ActCaller struct {
	svc               *services.Service
	plain, idempotent string
}

// NewActCaller makes a caller on c and waits until it can route both
// patterns of the service name.
func NewActCaller(ctx context.Context, c *Client, name string) (*ActCaller, error) {
	svc, err := services.NewClient(services.WithBroker(c.Broker), services.WithLogger(c.Logger))
	if err != nil {
		return nil, err
	}
	plain, idem := ActPatterns(name)
	for _, p := range []string{plain, idem} {
		if err := svc.WaitFor(ctx, p); err != nil {
			_ = svc.Close()
			return nil, err
		}
	}
	return &ActCaller{svc: svc, plain: plain, idempotent: idem}, nil
}

// Act acts on the plain or the idempotent pattern with sequence number
// seq and checks that the reply is its own.
func (a *ActCaller) Act(ctx context.Context, seq int, idempotent bool) error {
	p := a.plain
	if idempotent {
		p = a.idempotent
	}
	r, err := a.svc.Act(ctx, p, body{N: seq})
	if err != nil {
		return err
	}
	var b body
	if err := r.Decode(&b); err != nil {
		return err
	}
	if b.N != seq {
		return fmt.Errorf("%w: act %d answered with %d", errWrongReply, seq, b.N)
	}
	return nil
}

// Close closes the caller.
func (a *ActCaller) Close() error { return a.svc.Close() }

// WorkQueue is a work queue on one client: it enqueues items, and runs a
// worker that records them.
type WorkQueue struct {
	q *workers.Queue
}

// NewWorkQueue declares (or finds) the work queue name and its retry and
// dead-letter queues on c, within ctx.
func NewWorkQueue(ctx context.Context, c *Client, name string) (*WorkQueue, error) {
	q, err := workers.New(ctx, c.Broker, name,
		workers.WithLogger(c.Logger),
		workers.WithPrefetch(WorkPrefetch),
		workers.WithConcurrency(WorkConcurrency),
		workers.WithBackoff(100*time.Millisecond, time.Second))
	if err != nil {
		return nil, err
	}
	return &WorkQueue{q: q}, nil
}

// Enqueue enqueues the item seq and waits for the broker's confirm.
func (w *WorkQueue) Enqueue(ctx context.Context, seq int) error {
	return w.q.Enqueue(ctx, body{N: seq})
}

// Work starts a worker that records every item in led.
func (w *WorkQueue) Work(ctx context.Context, led *Ledger) error {
	return w.q.Start(ctx, patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		var b body
		if err := m.Decode(&b); err != nil {
			return err
		}
		led.Received(b.N)
		return nil
	}))
}

// Dead returns the number of items in the dead-letter queue.
func (w *WorkQueue) Dead(ctx context.Context) (int, error) {
	st, err := w.q.Stats(ctx)
	return st.Dead, err
}

// Err reports why the worker ended by itself, if it did.
func (w *WorkQueue) Err() error { return w.q.Err() }

// Shutdown stops the worker gracefully.
func (w *WorkQueue) Shutdown(ctx context.Context) error { return w.q.Shutdown(ctx) }

// Events emits and subscribes events on one client.
type Events struct {
	ps   *pubsub.PubSub
	subs []*pubsub.Subscription
}

// EventPattern returns the pattern of the soak events of a run named name.
func EventPattern(name string) string { return "role:" + name + ",evt:tick" }

// GroupQueue returns the queue of the subscriber group name.
func GroupQueue(group string) string { return pubsub.EventsExchange + "." + group }

// NewEvents makes the events of c.
func NewEvents(ctx context.Context, c *Client) (*Events, error) {
	ps, err := pubsub.New(ctx, c.Broker, pubsub.WithLogger(c.Logger))
	if err != nil {
		return nil, err
	}
	return &Events{ps: ps}, nil
}

// Emit emits event seq on pattern and waits for the broker's confirm.
func (e *Events) Emit(ctx context.Context, pattern string, seq int) error {
	return e.ps.Emit(ctx, pattern, body{N: seq})
}

// Subscribe subscribes an instance of group to pattern that records every
// event in led.
func (e *Events) Subscribe(ctx context.Context, pattern, group string, led *Ledger) error {
	s, err := e.ps.Subscribe(ctx, pattern, patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		var b body
		if err := m.Decode(&b); err != nil {
			return err
		}
		led.Received(b.N)
		return nil
	}), pubsub.Group(group), pubsub.WithPrefetch(EventPrefetch), pubsub.WithConcurrency(EventConcurrency))
	if err != nil {
		return err
	}
	e.subs = append(e.subs, s)
	return nil
}

// Err reports why a subscription ended by itself, if one did.
func (e *Events) Err() error {
	for _, s := range e.subs {
		if err := s.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops the subscriptions gracefully.
func (e *Events) Shutdown(ctx context.Context) error { return e.ps.Shutdown(ctx) }
