package rpc

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testWait bounds every wait in the tests.
const testWait = 20 * time.Second

// env is one broker world a test runs in.
type env struct {
	name string
	b    bus.Broker
	// dial opens another, independent connection to the same broker
	// (RabbitMQ only; nil on the in-memory broker, which has one).
	dial func(t *testing.T) bus.Broker
}

// eachBroker runs f on the in-memory broker and on RabbitMQ.
func eachBroker(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		m, err := bus.NewMemory()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		f(t, &env{name: "memory", b: m})
	})
	t.Run("rabbitmq", func(t *testing.T) {
		url := testenv.AMQPURL(t)
		dial := func(t *testing.T) bus.Broker {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			r, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-rpc-test"))
			if err != nil {
				t.Fatalf("dial rabbitmq: %v", err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		}
		f(t, &env{name: "rabbitmq", b: dial(t), dial: dial})
	})
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// service declares a durable queue bound on actExchange with a fresh key,
// deleted at cleanup. It returns the queue and the routing key.
func service(t *testing.T, b bus.Broker) (queue, key string) {
	t.Helper()
	ctx := testCtx(t)
	if err := declareActExchange(ctx, b); err != nil {
		t.Fatal(err)
	}
	id := wire.NewID()[:12]
	queue = "patbus.test.rpc." + id
	key = "cmd:test.id:" + id
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: queue, Durable: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		_ = b.DeleteQueue(ctx, queue)
	})
	if err := b.Bind(ctx, bus.Binding{Exchange: actExchange, Queue: queue, Key: key}); err != nil {
		t.Fatal(err)
	}
	return queue, key
}

func newClient(t *testing.T, b bus.Broker, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(testCtx(t), b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func startServer(t *testing.T, b bus.Broker, queue string, h HandlerFunc, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(b, queue, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func echo(_ context.Context, req *ServerRequest) ([]byte, error) { return req.Body, nil }

// recv waits for a value on ch, failing the test after testWait.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// logCapture is a slog.Handler that remembers messages and tells waiters.
type logCapture struct {
	mu      sync.Mutex
	records []string
	waiters map[string]chan struct{}
}

func newLogCapture() *logCapture { return &logCapture{waiters: map[string]chan struct{}{}} }

func (l *logCapture) logger() *slog.Logger { return slog.New(l) }

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Message)
	for sub, ch := range l.waiters {
		if strings.Contains(r.Message, sub) {
			close(ch)
			delete(l.waiters, sub)
		}
	}
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

// seen returns a channel closed once a message containing sub is logged.
func (l *logCapture) seen(sub string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	for _, m := range l.records {
		if strings.Contains(m, sub) {
			close(ch)
			return ch
		}
	}
	if old, ok := l.waiters[sub]; ok {
		return old
	}
	l.waiters[sub] = ch
	return ch
}

// actExchange is the topic exchange the tests' services are bound on, as
// package services binds its act queues.
const actExchange = "patbus.act"

func declareActExchange(ctx context.Context, b bus.Broker) error {
	return b.DeclareExchange(ctx, bus.Exchange{Name: actExchange, Kind: bus.Topic, Durable: true})
}
