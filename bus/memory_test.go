package bus_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/bus/bustest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMemory(t *testing.T) *bus.Memory {
	t.Helper()
	b, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestMemoryConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Broker { return newMemory(t) })
}

// memCtx is a test context that ends after 10 s.
func memCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func recv(t *testing.T, s bus.Subscription) *bus.Delivery {
	t.Helper()
	select {
	case d, ok := <-s.Deliveries():
		if !ok {
			t.Fatalf("deliveries closed (Err %v)", s.Err())
		}
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
	}
	return nil
}

func mustQueue(t *testing.T, b bus.Broker, q bus.Queue) string {
	t.Helper()
	n, err := b.DeclareQueue(memCtx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustConsume(t *testing.T, b bus.Broker, q string, prefetch int) bus.Subscription {
	t.Helper()
	s, err := b.Consume(memCtx(t), q, bus.ConsumeOptions{Prefetch: prefetch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Cancel(ctx)
	})
	return s
}

func mustPublish(t *testing.T, b bus.Broker, ex, key string, msg bus.Message) {
	t.Helper()
	if err := bus.PublishAndWait(memCtx(t), b, ex, key, msg); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryOptions(t *testing.T) {
	if _, err := bus.NewMemory(bus.WithMaxMessageSize(0)); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("WithMaxMessageSize(0): %v, want ErrInvalidConfig", err)
	}
	b, err := bus.NewMemory(bus.WithMaxMessageSize(10), bus.WithLogger(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := mustQueue(t, b, bus.Queue{Name: "q"})
	if _, err := b.Publish(memCtx(t), "", q, bus.Message{Body: make([]byte, 11)}); !errors.Is(err, bus.ErrTooLarge) {
		t.Errorf("11 bytes over a limit of 10: %v, want ErrTooLarge", err)
	}
	mustPublish(t, b, "", q, bus.Message{Body: make([]byte, 10)})
}

func TestMemoryInvalidArguments(t *testing.T) {
	b := newMemory(t)
	ctx := memCtx(t)
	for name, err := range map[string]error{
		"kind":         b.DeclareExchange(ctx, bus.Exchange{Name: "x", Kind: "headers"}),
		"default":      b.DeclareExchange(ctx, bus.Exchange{Kind: bus.Topic}),
		"amq. prefix":  b.DeclareExchange(ctx, bus.Exchange{Name: "amq.mine", Kind: bus.Topic}),
		"bind default": b.Bind(ctx, bus.Binding{Exchange: "", Queue: "q", Key: "q"}),
	} {
		if !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	for _, q := range []bus.Queue{{Name: "amq.q"}, {Name: "q", MessageTTL: -1}, {Name: "q", MaxLength: -1}, {Name: "q", Expires: -1}, {Name: "q", Args: map[string]any{"x": struct{}{}}}} {
		if _, err := b.DeclareQueue(ctx, q); !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("DeclareQueue(%+v): %v, want ErrInvalidConfig", q, err)
		}
	}
	q := mustQueue(t, b, bus.Queue{Name: "q"})
	if _, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: -1}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("negative prefetch: %v", err)
	}
	if _, err := b.Publish(ctx, "", q, bus.Message{Expiration: -1}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("negative expiration: %v", err)
	}
	if _, err := b.Publish(ctx, "", q, bus.Message{Headers: map[string]any{"bad": struct{}{}}}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("bad header: %v", err)
	}
	// The predeclared exchanges exist and may be declared identically.
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: "amq.topic", Kind: bus.Topic, Durable: true}); err != nil {
		t.Errorf("amq.topic: %v", err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Publish(ended, "", q, bus.Message{}); !errors.Is(err, context.Canceled) {
		t.Errorf("publish with an ended context: %v", err)
	}
}

func TestMemoryRoundRobin(t *testing.T) {
	b := newMemory(t)
	q := mustQueue(t, b, bus.Queue{Name: "rr"})
	subs := []bus.Subscription{mustConsume(t, b, q, 100), mustConsume(t, b, q, 100), mustConsume(t, b, q, 100)}
	for i := 0; i < 30; i++ {
		mustPublish(t, b, "", q, bus.Message{Body: []byte(fmt.Sprint(i))})
	}
	for i, s := range subs {
		for k := 0; k < 10; k++ {
			d := recv(t, s)
			if want := fmt.Sprint(3*k + i); string(d.Body) != want {
				t.Errorf("consumer %d delivery %d: %q, want %s", i, k, d.Body, want)
			}
			_ = d.Ack()
		}
	}
}

func TestMemorySlowConsumerDoesNotBlock(t *testing.T) {
	b := newMemory(t)
	slow := mustQueue(t, b, bus.Queue{Name: "slow"})
	fast := mustQueue(t, b, bus.Queue{Name: "fast"})
	if err := b.DeclareExchange(memCtx(t), bus.Exchange{Name: "fan", Kind: bus.Fanout}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{slow, fast} {
		if err := b.Bind(memCtx(t), bus.Binding{Exchange: "fan", Queue: q}); err != nil {
			t.Fatal(err)
		}
	}
	_ = mustConsume(t, b, slow, 1) // never reads
	fs := mustConsume(t, b, fast, 10)
	for i := 0; i < 5000; i++ {
		mustPublish(t, b, "fan", "", bus.Message{Body: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < 5000; i++ {
		d := recv(t, fs)
		if string(d.Body) != fmt.Sprint(i) {
			t.Fatalf("fast consumer: %q, want %d", d.Body, i)
		}
		_ = d.Ack()
	}
}

func TestMemoryExclusiveConsumer(t *testing.T) {
	b := newMemory(t)
	ctx := memCtx(t)
	q := mustQueue(t, b, bus.Queue{Name: "ex"})
	s, err := b.Consume(ctx, q, bus.ConsumeOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Consume(ctx, q, bus.ConsumeOptions{}); !errors.Is(err, bus.ErrPrecondition) {
		t.Errorf("second consumer beside an exclusive one: %v, want ErrPrecondition", err)
	}
	if err := s.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := mustConsume(t, b, q, 1)
	if _, err := b.Consume(ctx, q, bus.ConsumeOptions{Exclusive: true}); !errors.Is(err, bus.ErrPrecondition) {
		t.Errorf("exclusive consumer beside another: %v, want ErrPrecondition", err)
	}
	_ = s2
}

func TestMemoryAckAfterCancelIsStale(t *testing.T) {
	b := newMemory(t)
	q := mustQueue(t, b, bus.Queue{Name: "stale"})
	s := mustConsume(t, b, q, 10)
	mustPublish(t, b, "", q, bus.Message{Body: []byte("x")})
	d := recv(t, s)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Cancel(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Cancel: %v", err)
	}
	if err := d.Ack(); !errors.Is(err, bus.ErrStaleDelivery) {
		t.Errorf("Ack after Cancel released the consumer: %v, want ErrStaleDelivery", err)
	}
	s2 := mustConsume(t, b, q, 10)
	if d := recv(t, s2); !d.Redelivered || string(d.Body) != "x" {
		t.Errorf("redelivery %q redelivered=%v", d.Body, d.Redelivered)
	}
}

func TestMemorySettleAfterClose(t *testing.T) {
	b := newMemory(t)
	q := mustQueue(t, b, bus.Queue{Name: "closed"})
	s := mustConsume(t, b, q, 10)
	mustPublish(t, b, "", q, bus.Message{Body: []byte("x")})
	d := recv(t, s)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Ack after Close: %v, want ErrClosed", err)
	}
}

func TestMemoryCancelBlocksUntilAck(t *testing.T) {
	b := newMemory(t)
	q := mustQueue(t, b, bus.Queue{Name: "block"})
	s := mustConsume(t, b, q, 10)
	mustPublish(t, b, "", q, bus.Message{Body: []byte("x")})
	d := recv(t, s)
	done := make(chan error, 1)
	go func() { done <- s.Cancel(memCtx(t)) }()
	// Deliveries closes as soon as Cancel starts; Cancel itself waits.
	if _, ok := <-s.Deliveries(); ok {
		t.Fatal("delivery after Cancel")
	}
	select {
	case err := <-done:
		t.Fatalf("Cancel returned %v before the ack", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMemoryRedeliveryIsACleanCopy(t *testing.T) {
	b := newMemory(t)
	q := mustQueue(t, b, bus.Queue{Name: "copy"})
	s := mustConsume(t, b, q, 10)
	mustPublish(t, b, "", q, bus.Message{Headers: map[string]any{"k": "v"}, Body: []byte("body")})
	d := recv(t, s)
	d.Body[0] = 'X'
	d.Headers["k"] = "changed"
	if err := d.Nack(true); err != nil {
		t.Fatal(err)
	}
	d = recv(t, s)
	if string(d.Body) != "body" || d.Headers["k"] != "v" {
		t.Errorf("redelivery shows the consumer's changes: %q %v", d.Body, d.Headers)
	}
}

func TestMemoryRequeueGoesToHead(t *testing.T) {
	b := newMemory(t)
	q := mustQueue(t, b, bus.Queue{Name: "head"})
	for i := 0; i < 3; i++ {
		mustPublish(t, b, "", q, bus.Message{Body: []byte(fmt.Sprint(i))})
	}
	s := mustConsume(t, b, q, 1)
	d := recv(t, s)
	if err := d.Nack(true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		d := recv(t, s)
		if string(d.Body) != fmt.Sprint(i) {
			t.Errorf("delivery %d: %q", i, d.Body)
		}
		_ = d.Ack()
	}
}

func TestMemoryAutoDeleteQueue(t *testing.T) {
	b := newMemory(t)
	ctx := memCtx(t)
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: "ad", Kind: bus.Direct, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	q := mustQueue(t, b, bus.Queue{Name: "ad", AutoDelete: true})
	if err := b.Bind(ctx, bus.Binding{Exchange: "ad", Queue: q, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	s1 := mustConsume(t, b, q, 1)
	s2 := mustConsume(t, b, q, 1)
	if err := s1.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "", q, bus.Message{Body: []byte("still there")})
	if err := s2.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Consume(ctx, q, bus.ConsumeOptions{}); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("auto-delete queue after its last consumer: %v, want ErrNotFound", err)
	}
	// Its exchange went with its last binding.
	if _, err := b.Publish(ctx, "ad", "k", bus.Message{}); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("auto-delete exchange after its last binding: %v, want ErrNotFound", err)
	}
}

func TestMemoryQueueExpires(t *testing.T) {
	b := newMemory(t)
	ctx := memCtx(t)
	q := mustQueue(t, b, bus.Queue{Name: "expires", Expires: 50 * time.Millisecond})
	// In use: not deleted while a consumer is attached.
	s := mustConsume(t, b, q, 1)
	if err := s.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := b.Publish(ctx, "", q, bus.Message{Mandatory: true})
		if err != nil {
			t.Fatal(err)
		}
		if errors.Is(c.Err(), bus.ErrUnroutable) {
			return // deleted
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("queue with Expires was not deleted")
		}
	}
}

func TestMemoryExpiryIsNotOnlyAtHead(t *testing.T) {
	b := newMemory(t)
	dlq := mustQueue(t, b, bus.Queue{Name: "dlq"})
	work := mustQueue(t, b, bus.Queue{Name: "work", DeadLetterKey: dlq})
	mustPublish(t, b, "", work, bus.Message{Body: []byte("head")})
	mustPublish(t, b, "", work, bus.Message{Body: []byte("short"), Expiration: 20 * time.Millisecond})
	s := mustConsume(t, b, dlq, 1)
	if d := recv(t, s); string(d.Body) != "short" {
		t.Errorf("dead-lettered %q", d.Body)
	}
}

func TestMemoryDeadLetterCycleDropped(t *testing.T) {
	b := newMemory(t)
	ctx := memCtx(t)
	// A queue that dead-letters expired messages to itself: RabbitMQ drops
	// them rather than loop.
	q := mustQueue(t, b, bus.Queue{Name: "self", MessageTTL: 10 * time.Millisecond, DeadLetterExchange: "", DeadLetterKey: "self"})
	mustPublish(t, b, "", q, bus.Message{Body: []byte("x")})
	// Wait for the expiry by watching an expiring marker in a second queue
	// that dead-letters into a probe.
	probe := mustQueue(t, b, bus.Queue{Name: "probe"})
	side := mustQueue(t, b, bus.Queue{Name: "side", MessageTTL: 50 * time.Millisecond, DeadLetterKey: probe})
	mustPublish(t, b, "", side, bus.Message{Body: []byte("tick")})
	ps := mustConsume(t, b, probe, 1)
	recv(t, ps)
	s, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cancel(ctx)
	mustPublish(t, b, "", q, bus.Message{MessageID: "marker"})
	d := recv(t, s)
	_ = d.Ack()
	if d.MessageID != "marker" {
		t.Errorf("self-dead-lettered message still there: %q", d.Body)
	}
}

func TestMemoryArgsHonoured(t *testing.T) {
	b := newMemory(t)
	dlq := mustQueue(t, b, bus.Queue{Name: "dlq"})
	work := mustQueue(t, b, bus.Queue{Name: "work", Args: map[string]any{
		"x-message-ttl": 20, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq,
	}})
	mustPublish(t, b, "", work, bus.Message{Body: []byte("x")})
	s := mustConsume(t, b, dlq, 1)
	if d := recv(t, s); string(d.Body) != "x" {
		t.Errorf("dead-lettered %q", d.Body)
	}
}

// TestMemoryStress runs publishers, consumers that ack, requeue or cancel at
// random, and checks that every message is acked at least once.
func TestMemoryStress(t *testing.T) {
	b := newMemory(t)
	ctx := memCtx(t)
	q := mustQueue(t, b, bus.Queue{Name: "stress"})
	const publishers, perPublisher, consumers = 4, 500, 4
	total := publishers * perPublisher
	var mu sync.Mutex
	acked := make(map[string]int, total)
	allDone := make(chan struct{})
	var pubs sync.WaitGroup
	for p := 0; p < publishers; p++ {
		p := p
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := 0; i < perPublisher; i++ {
				if _, err := b.Publish(ctx, "", q, bus.Message{Body: []byte(fmt.Sprintf("%d-%d", p, i))}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var cons sync.WaitGroup
	for c := 0; c < consumers; c++ {
		c := c
		cons.Add(1)
		go func() {
			defer cons.Done()
			rng := rand.New(rand.NewSource(int64(c)))
			for round := 0; round < 100000; round++ {
				s, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 1 + rng.Intn(20)})
				if err != nil {
					t.Error(err)
					return
				}
				for k := rng.Intn(200); k >= 0; k-- {
					// A round also ends when nothing comes for a moment: the
					// messages may all sit unacked with other consumers.
					var d *bus.Delivery
					idle := time.NewTimer(2 * time.Millisecond)
					select {
					case d = <-s.Deliveries():
					case <-idle.C:
					case <-allDone:
					case <-ctx.Done():
					}
					idle.Stop()
					if d == nil {
						break
					}
					switch rng.Intn(10) {
					case 0:
						_ = d.Nack(true)
					case 1:
						// leave unacked: Cancel requeues it
					default:
						if d.Ack() == nil {
							mu.Lock()
							acked[string(d.Body)]++
							if len(acked) == total {
								close(allDone)
							}
							mu.Unlock()
						}
					}
				}
				ended, cancel := context.WithCancel(ctx)
				cancel()
				_ = s.Cancel(ended)
				select {
				case <-allDone:
					return
				case <-ctx.Done():
					return
				default:
				}
			}
		}()
	}
	pubs.Wait()
	cons.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != total {
		t.Fatalf("acked %d distinct messages, want %d", len(acked), total)
	}
	for body, n := range acked {
		if n != 1 {
			t.Errorf("message %s acked %d times", body, n)
		}
	}
}
