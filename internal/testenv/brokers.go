package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
)

// dialTimeout bounds the dial of the shared RabbitMQ broker.
const dialTimeout = 30 * time.Second

// Memory returns a new in-memory broker built with opts, closed in
// t.Cleanup. It fails the test if the options are invalid.
func Memory(t testing.TB, opts ...bus.Option) bus.Broker {
	t.Helper()
	b, err := bus.NewMemory(opts...)
	if err != nil {
		t.Fatalf("testenv: in-memory broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Rabbit dials the shared RabbitMQ broker at AMQPURL with opts and closes
// the connection in t.Cleanup. Without PATBUS_AMQP_URL it skips the test,
// or fails it where Required() is true (see AMQPURL); a failed dial, which
// waits at most 30 seconds, fails the test. The URL may hold several
// addresses separated by commas, as bus.Open accepts.
func Rabbit(t testing.TB, opts ...bus.Option) bus.Broker {
	t.Helper()
	return RabbitAt(t, AMQPURL(t), opts...)
}

// RabbitAt dials the RabbitMQ broker at url (a private node's, say) with
// opts and closes the connection in t.Cleanup; a failed dial, which waits
// at most 30 seconds, fails the test.
func RabbitAt(t testing.TB, url string, opts ...bus.Option) bus.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	b, err := bus.Dial(ctx, strings.Split(strings.TrimSpace(url), ","), opts...)
	if err != nil {
		t.Fatalf("testenv: dial RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// EachBroker runs fn twice, as the subtests "memory", on a new in-memory
// broker (Memory), and "rabbitmq", on a new connection to the shared
// RabbitMQ broker (Rabbit: skipped without PATBUS_AMQP_URL, failed instead
// in CI). Both brokers are built with opts, belong to their subtest and are
// closed in its t.Cleanup, after fn returns and after any cleanup fn
// registers itself, so fn may defer or register the deletion of what it
// declared.
func EachBroker(t *testing.T, fn func(t *testing.T, b bus.Broker), opts ...bus.Option) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { fn(t, Memory(t, opts...)) })
	t.Run("rabbitmq", func(t *testing.T) { fn(t, Rabbit(t, opts...)) })
}

// DeleteQueues deletes the named queues from b in t.Cleanup, each within 30
// seconds, for tests that declare durable queues: it runs before the
// broker's own cleanup closes b when b came from Memory, Rabbit or
// EachBroker. A queue that does not exist is no error; a failed deletion is
// logged and does not fail the test.
func DeleteQueues(t testing.TB, b bus.Broker, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		defer cancel()
		for _, n := range names {
			if err := b.DeleteQueue(ctx, n); err != nil {
				t.Logf("testenv: delete queue %s: %v", n, err)
			}
		}
	})
}
