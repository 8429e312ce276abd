package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// outcome is what Settle saw for one message.
type outcome struct {
	m       *patbus.Message
	err     error
	closing bool
	tx      string
	dl      time.Time
}

// rig is a queue with a consumer whose Settle acks everything and reports
// what it saw.
type rig struct {
	b     bus.Broker
	queue string
	out   chan outcome
}

func newRig(t *testing.T, b bus.Broker) *rig {
	t.Helper()
	ctx := context.Background()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.engine." + wire.NewID()[:8], AutoDelete: false})
	if err != nil {
		t.Fatal(err)
	}
	testenv.DeleteQueues(t, b, q)
	return &rig{b: b, queue: q, out: make(chan outcome, 100)}
}

func (r *rig) settle(ctx context.Context, d *bus.Delivery, m *patbus.Message, err error) {
	dl, _ := ctx.Deadline()
	r.out <- outcome{m: m, err: err, closing: Closing(ctx), tx: patbus.Tx(ctx), dl: dl}
	if Closing(ctx) {
		_ = d.Nack(true)
		return
	}
	_ = d.Ack()
}

func (r *rig) start(t *testing.T, cfg Config) *Consumer {
	t.Helper()
	cfg.Queue = r.queue
	if cfg.Settle == nil {
		cfg.Settle = r.settle
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 4
	}
	c, err := Start(context.Background(), r.b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (r *rig) publish(t *testing.T, msg bus.Message) {
	t.Helper()
	if msg.Body == nil {
		msg.Body = []byte(`{}`)
	}
	if err := bus.PublishAndWait(context.Background(), r.b, "", r.queue, msg); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) next(t *testing.T) outcome {
	t.Helper()
	select {
	case o := <-r.out:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no message settled within 10s")
		return outcome{}
	}
}

func TestHeadersReadOnceIntoTheContext(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		r := newRig(t, b)
		var seen atomic.Pointer[patbus.Message]
		r.start(t, Config{Kind: patbus.KindEvent, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
			seen.Store(m)
			if patbus.Tx(ctx) != m.Tx {
				return fmt.Errorf("context tx %q, message tx %q", patbus.Tx(ctx), m.Tx)
			}
			return nil
		})})
		tx := wire.NewID()
		dl := time.Now().Add(time.Minute).Truncate(time.Millisecond)
		// A foreign producer: byte-valued headers, the tx only in traceparent.
		r.publish(t, bus.Message{MessageID: "m1", Headers: map[string]any{
			wire.HeaderTraceparent: []byte(wire.Traceparent(tx)),
			wire.HeaderPattern:     []byte("cmd:x"),
			wire.HeaderDeadline:    dl.UnixMilli(),
		}})
		o := r.next(t)
		if o.err != nil {
			t.Fatal(o.err)
		}
		m := seen.Load()
		if m.Tx != tx || o.tx != tx || m.Pattern != "cmd:x" || m.ID != "m1" || m.Kind != patbus.KindEvent || m.Queue != r.queue {
			t.Errorf("message %+v, context tx %q; want tx %q", m, o.tx, tx)
		}
		if !m.Deadline.Equal(dl) || !o.dl.Equal(dl) {
			t.Errorf("deadline %v, context deadline %v; want %v", m.Deadline, o.dl, dl)
		}
		// No tx at all: a fresh one, so that what the handler sends is one chain.
		r.publish(t, bus.Message{})
		if o := r.next(t); len(o.m.Tx) != 32 || o.tx != o.m.Tx {
			t.Errorf("a message without tx got %q (context %q)", o.m.Tx, o.tx)
		}
	})
}

func TestPanicBecomesAnError(t *testing.T) {
	b := testenv.Memory(t)
	r := newRig(t, b)
	r.start(t, Config{Kind: patbus.KindWork, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		panic("boom")
	})})
	r.publish(t, bus.Message{})
	if o := r.next(t); !errors.Is(o.err, patbus.ErrPanic) || patbus.Code(o.err) != patbus.CodePanic {
		t.Errorf("a panic settled as %v", o.err)
	}
	// The consumer goes on.
	r.publish(t, bus.Message{})
	r.next(t)
}

func TestExpiredRequestsDoNotRun(t *testing.T) {
	b := testenv.Memory(t)
	r := newRig(t, b)
	var ran atomic.Int32
	r.start(t, Config{Kind: patbus.KindAct, Expire: true, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		ran.Add(1)
		return nil
	})})
	r.publish(t, bus.Message{Headers: map[string]any{wire.HeaderDeadline: time.Now().Add(-time.Second).UnixMilli()}})
	if o := r.next(t); !errors.Is(o.err, patbus.ErrExpired) {
		t.Errorf("a late request settled as %v", o.err)
	}
	r.publish(t, bus.Message{Headers: map[string]any{wire.HeaderDeadline: time.Now().Add(time.Minute).UnixMilli()}})
	if o := r.next(t); o.err != nil {
		t.Errorf("a request in time settled as %v", o.err)
	}
	if ran.Load() != 1 {
		t.Errorf("the handler ran %d times, want 1", ran.Load())
	}
}

func TestMiddlewareRunsInsideRecovery(t *testing.T) {
	b := testenv.Memory(t)
	r := newRig(t, b)
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	mw := func(name string) patbus.Middleware {
		return func(next patbus.Handler) patbus.Handler {
			return patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
				note(name)
				if name == "b" {
					panic("in middleware")
				}
				return next.Handle(ctx, m)
			})
		}
	}
	r.start(t, Config{Kind: patbus.KindEvent, Middleware: []patbus.Middleware{mw("a"), mw("b")},
		Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error { note("h"); return nil })})
	r.publish(t, bus.Message{})
	if o := r.next(t); !errors.Is(o.err, patbus.ErrPanic) {
		t.Errorf("a panic in middleware settled as %v", o.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[a b]" {
		t.Errorf("ran %v, want [a b]", order)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		r := newRig(t, b)
		const n, limit = 24, 3
		var running, peak atomic.Int32
		release := make(chan struct{})
		r.start(t, Config{Kind: patbus.KindWork, Prefetch: 6, Concurrency: limit, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
			now := running.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil
		})})
		for i := 0; i < n; i++ {
			r.publish(t, bus.Message{})
		}
		deadline := time.Now().Add(10 * time.Second)
		for running.Load() < limit && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(release)
		for i := 0; i < n; i++ {
			r.next(t)
		}
		if peak.Load() != limit {
			t.Errorf("at most %d handlers ran at once, want %d", peak.Load(), limit)
		}
	})
}

func TestShutdownWaitsForHandlers(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		r := newRig(t, b)
		started, release := make(chan struct{}), make(chan struct{})
		c := r.start(t, Config{Kind: patbus.KindWork, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
			close(started)
			<-release
			return nil
		})})
		r.publish(t, bus.Message{})
		<-started
		done := make(chan error, 1)
		go func() { done <- c.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a handler running", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if o := r.next(t); o.err != nil || o.closing {
			t.Errorf("the running message settled as %v (closing %v)", o.err, o.closing)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done is open after Shutdown")
		}
		if c.Err() != nil {
			t.Errorf("Err after Shutdown = %v", c.Err())
		}
	})
}

func TestShutdownOutOfTimeCancelsHandlers(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		r := newRig(t, b)
		started := make(chan struct{})
		var once sync.Once
		c := r.start(t, Config{Kind: patbus.KindWork, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
			once.Do(func() { close(started) })
			<-ctx.Done()
			return ctx.Err()
		})})
		r.publish(t, bus.Message{MessageID: "slow"})
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := c.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want the context's error", err)
		}
		if o := r.next(t); !o.closing {
			t.Errorf("the handler's context did not say closing (err %v)", o.err)
		}
		// The message went back to the queue: a new consumer gets it.
		r2 := &rig{b: b, queue: r.queue, out: make(chan outcome, 10)}
		r2.start(t, Config{Kind: patbus.KindWork, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error { return nil })})
		if o := r2.next(t); o.m.ID != "slow" || !o.m.Redelivered {
			t.Errorf("got %q (redelivered %v), want the given-back message", o.m.ID, o.m.Redelivered)
		}
	})
}

func TestEndsWhenItsQueueIsDeleted(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		r := newRig(t, b)
		c := r.start(t, Config{Kind: patbus.KindEvent, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error { return nil })})
		if err := b.DeleteQueue(context.Background(), r.queue); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the consumer did not end")
		}
		if err := c.Err(); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("Err = %v, want bus.ErrNotFound", err)
		}
	})
}

func TestStartChecksItsConfig(t *testing.T) {
	b := testenv.Memory(t)
	h := patbus.HandlerFunc(func(context.Context, *patbus.Message) error { return nil })
	settle := func(context.Context, *bus.Delivery, *patbus.Message, error) {}
	for _, cfg := range []Config{
		{Queue: "q", Prefetch: 1, Settle: settle},
		{Queue: "q", Prefetch: 1, Handler: h},
		{Queue: "q", Prefetch: 0, Handler: h, Settle: settle},
		{Queue: "q", Prefetch: 2, Concurrency: 3, Handler: h, Settle: settle},
	} {
		if _, err := Start(context.Background(), b, cfg); !errors.Is(err, patbus.ErrInvalidConfig) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
