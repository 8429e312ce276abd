package services_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/services"
)

// The tests' exchanges: kept apart from the default ones, so that services
// of other test runs on the same RabbitMQ (the examples', other packages')
// never enter these tests' catalogs.
const (
	testAct      = "patbus.test.services.act"
	testRegistry = "patbus.test.services.registry"
)

func TestMain(m *testing.M) {
	if name := os.Getenv("PATBUS_TEST_CHILD"); name != "" {
		os.Exit(runChild(name)) // the service process of TestRunProcessSIGTERM
	}
	goleak.VerifyTestMain(m)
}

// env is one broker setting a test runs on: the in-memory broker (every
// service on one shared Memory) or RabbitMQ (every service on its own
// connection).
type env struct {
	t      *testing.T
	rabbit bool
	url    string
	mem    *bus.Memory

	mu     sync.Mutex
	queues []string
}

// brokers runs f on the in-memory broker and on RabbitMQ.
func brokers(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("memory", func(t *testing.T) {
		f(t, newMemEnv(t))
	})
	t.Run("rabbitmq", func(t *testing.T) {
		f(t, newRabbitEnv(t))
	})
}

func newMemEnv(t *testing.T) *env {
	m, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return &env{t: t, mem: m}
}

func newRabbitEnv(t *testing.T) *env {
	url := testenv.AMQPURL(t)
	e := &env{t: t, rabbit: true, url: url}
	t.Cleanup(e.cleanup)
	return e
}

// cleanup deletes the durable act queues the test created.
func (e *env) cleanup() {
	e.mu.Lock()
	qs := e.queues
	e.mu.Unlock()
	if len(qs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Dial(ctx, []string{e.url})
	if err != nil {
		e.t.Logf("cleanup: %v", err)
		return
	}
	defer b.Close()
	for _, q := range qs {
		if err := b.DeleteQueue(ctx, q); err != nil {
			e.t.Logf("cleanup: delete %s: %v", q, err)
		}
	}
}

// broker returns a broker for one service: the shared Memory, or a fresh
// RabbitMQ connection closed at the end of the test.
func (e *env) broker() bus.Broker {
	e.t.Helper()
	if !e.rabbit {
		return e.mem
	}
	return testenv.Rabbit(e.t, bus.WithConnectionName("patbus-services-test"))
}

// name returns a service name unique to this test run.
func (e *env) name(base string) string { return base + "-" + wire.NewID()[:8] }

// svc returns a started service on its own broker, closed at the end of
// the test. setup runs before Ready (to Add patterns).
func (e *env) svc(name, version string, setup func(s *services.Service), opts ...services.Option) *services.Service {
	e.t.Helper()
	return e.svcOn(e.broker(), name, version, setup, opts...)
}

func (e *env) svcOn(b bus.Broker, name, version string, setup func(s *services.Service), opts ...services.Option) *services.Service {
	e.t.Helper()
	s, err := services.New(name, version, append([]services.Option{services.WithBroker(b), services.WithLogger(testLogger(e.t)), services.WithExchanges(testAct, testRegistry)}, opts...)...)
	if err != nil {
		e.t.Fatalf("new %s@%s: %v", name, version, err)
	}
	e.mu.Lock()
	e.queues = append(e.queues, testAct+"."+name+"@"+version)
	e.mu.Unlock()
	e.t.Cleanup(func() {
		start := time.Now()
		_ = s.Close()
		if d := time.Since(start); d > 200*time.Millisecond {
			e.t.Logf("close of %s@%s took %v", name, version, d)
		}
	})
	if setup != nil {
		setup(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		e.t.Fatalf("ready %s@%s: %v", name, version, err)
	}
	return s
}

// waitFor waits until s can route pattern.
func waitFor(t *testing.T, s *services.Service, pattern string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, pattern); err != nil {
		t.Fatalf("wait for %s: %v", pattern, err)
	}
}

// eventually polls cond until it holds, for at most 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, what, cond)
}

// eventuallyWithin polls cond until it holds or the time is up.
func eventuallyWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting (%v): %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hasEnv reports whether an environment variable is set (for verbose logs).
func hasEnv(k string) bool { return os.Getenv(k) != "" }
