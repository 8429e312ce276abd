package pubsub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/pubsub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait in these tests.
const wait = 30 * time.Second

// env gives a test its brokers: on memory one shared broker, on RabbitMQ a
// connection of its own for every call of broker().
type env struct {
	t      *testing.T
	name   string
	shared bus.Broker
}

func (e *env) broker() bus.Broker {
	if e.shared != nil {
		return e.shared
	}
	return testenv.Rabbit(e.t, bus.WithConnectionName("patbus-pubsub-test"))
}

// pubsubOn makes a PubSub on a broker of its own (RabbitMQ) or the shared
// one (memory), closed at the end of the test.
func (e *env) pubsub(opts ...pubsub.Option) *pubsub.PubSub {
	e.t.Helper()
	p, err := pubsub.New(context.Background(), e.broker(), opts...)
	if err != nil {
		e.t.Fatalf("pubsub.New: %v", err)
	}
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

// deleteQueues deletes durable queues at the end of the test.
func (e *env) deleteQueues(names ...string) {
	testenv.DeleteQueues(e.t, e.broker(), names...)
}

func eachBroker(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		f(t, &env{t: t, name: "memory", shared: testenv.Memory(t)})
	})
	t.Run("rabbitmq", func(t *testing.T) {
		testenv.AMQPURL(t)
		f(t, &env{t: t, name: "rabbitmq"})
	})
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// uniq returns a value no other test run uses: a word that never reads as a
// number (pattern values that do are typed as numbers in event bodies).
func uniq() string { return "u" + wire.NewID()[:12] }

// ledger counts events per id for one subscriber.
type ledger struct {
	mu     sync.Mutex
	counts map[string]int
	change chan struct{}
}

func newLedger() *ledger { return &ledger{counts: map[string]int{}, change: make(chan struct{}, 1)} }

func (l *ledger) add(id string) {
	l.mu.Lock()
	l.counts[id]++
	l.mu.Unlock()
	select {
	case l.change <- struct{}{}:
	default:
	}
}

func (l *ledger) get(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[id]
}

func (l *ledger) ids() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

// waitFor waits until cond holds, re-checking when any of the ledgers changes.
func waitFor(t testing.TB, what string, cond func() bool, ls ...*ledger) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(50 * time.Millisecond) // several ledgers: poll as well
	defer tick.Stop()
	for !cond() {
		var ch chan struct{}
		if len(ls) == 1 {
			ch = ls[0].change
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// typed is a handler that decodes each event into a T and calls fn with
// the event and the value, for tests that look at both.
func typed[T any](fn func(ctx context.Context, ev *pubsub.Event, v T) error) pubsub.Handler {
	return pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
		var v T
		if err := ev.Decode(&v); err != nil {
			return err
		}
		return fn(ctx, ev, v)
	})
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatal("timed out")
		var zero T
		return zero
	}
}
