package workers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/workers"
)

// wait bounds every wait in these tests.
const wait = 30 * time.Second

// connName names the tests' RabbitMQ connections.
const connName = "patbus-workers-test"

// eachBroker runs f on the in-memory broker and on RabbitMQ.
func eachBroker(t *testing.T, f func(t *testing.T, b bus.Broker)) {
	t.Helper()
	testenv.EachBroker(t, f, bus.WithConnectionName(connName))
}

// dialRabbit opens a RabbitMQ broker of its own, closed at the end of the test.
func dialRabbit(t testing.TB) bus.Broker {
	t.Helper()
	return testenv.Rabbit(t, bus.WithConnectionName(connName))
}

// queueName returns a queue name no other test uses.
func queueName(t testing.TB) string {
	n := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	if len(n) > 60 {
		n = n[len(n)-60:]
	}
	return "patbus.test." + n + "." + wire.NewID()[:8]
}

// newQueue makes a queue that is deleted at the end of the test, after its
// worker stopped.
func newQueue(t testing.TB, b bus.Broker, opts ...workers.Option) *workers.Queue {
	t.Helper()
	q, err := workers.New(context.Background(), b, queueName(t), opts...)
	if err != nil {
		t.Fatalf("workers.New: %v", err)
	}
	t.Cleanup(func() {
		_ = q.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := q.Delete(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
			t.Errorf("delete queues: %v", err)
		}
	})
	return q
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// drain consumes n messages from queue with the broker directly, acking
// them, and fails the test if they do not arrive in time.
func drain(t testing.TB, b bus.Broker, queue string, n int) []*bus.Delivery {
	t.Helper()
	ctx := testCtx(t)
	sub, err := b.Consume(ctx, queue, bus.ConsumeOptions{Prefetch: 50})
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	defer func() { _ = sub.Cancel(ctx) }()
	var out []*bus.Delivery
	for len(out) < n {
		select {
		case d, ok := <-sub.Deliveries():
			if !ok {
				t.Fatalf("consumer of %s ended: %v", queue, sub.Err())
			}
			if err := d.Ack(); err != nil {
				t.Fatalf("ack: %v", err)
			}
			out = append(out, d)
		case <-ctx.Done():
			t.Fatalf("drain %s: got %d of %d messages", queue, len(out), n)
		}
	}
	return out
}

// ledger counts calls per id.
type ledger struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
	change chan struct{}
}

func newLedger() *ledger {
	return &ledger{counts: map[string]int{}, change: make(chan struct{}, 1)}
}

func (l *ledger) add(id string) int {
	l.mu.Lock()
	l.counts[id]++
	n := l.counts[id]
	l.total++
	l.mu.Unlock()
	select {
	case l.change <- struct{}{}:
	default:
	}
	return n
}

func (l *ledger) get(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[id]
}

func (l *ledger) snapshot() (distinct, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.counts), l.total
}

// waitFor waits until cond holds, re-checking whenever the ledger changes.
func (l *ledger) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !cond() {
		select {
		case <-l.change:
		case <-timer.C:
			d, n := l.snapshot()
			t.Fatalf("timed out waiting for %s (%d distinct ids, %d calls)", what, d, n)
		}
	}
}

func header(d *bus.Delivery, k string) any { return d.Headers[k] }

func asInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case int32:
		return int(x)
	case int:
		return int(x)
	}
	return -1
}
