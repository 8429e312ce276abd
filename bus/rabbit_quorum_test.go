package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/bus/bustest"
	"github.com/patbus/patbus/internal/testenv"
)

// TestRabbitConformanceQuorum runs the conformance suite on a broker that
// makes every durable queue a quorum queue, with every queue of the suite
// that can be one declared durable: the suite's semantics hold for quorum
// queues too.
func TestRabbitConformanceQuorum(t *testing.T) {
	url := testenv.AMQPURL(t)
	bustest.Run(t, func(t *testing.T) bus.Broker {
		return durableQueues{dialRabbit(t, url, bus.WithQuorumQueues())}
	})
}

// durableQueues declares every queue that is neither exclusive nor
// auto-delete as durable.
type durableQueues struct{ *bus.Rabbit }

// OverflowsLate: a quorum queue tells the publishing channels that it is
// full asynchronously (bus.WithQuorumQueues), so one publish past
// MaxLength may get in (bustest.LateOverflow).
func (durableQueues) OverflowsLate() bool { return true }

func (d durableQueues) DeclareQueue(ctx context.Context, q bus.Queue) (string, error) {
	if !q.Exclusive && !q.AutoDelete {
		q.Durable = true
	}
	return d.Rabbit.DeclareQueue(ctx, q)
}

func TestMemoryAcceptsQuorumQueues(t *testing.T) {
	b, err := bus.NewMemory(bus.WithQuorumQueues())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: "q", Durable: true, DeadLetterKey: "q.dead"}); err != nil {
		t.Fatal(err)
	}
}

// probeDeclare declares name on a plain connection with exactly args and
// returns the broker's answer: RabbitMQ compares the queue type and these
// arguments (x-delivery-limit, x-dead-letter-strategy and x-overflow
// among them) with the existing queue's, so nil means the queue was
// declared with them.
func probeDeclare(t *testing.T, url, name string, args amqp.Table) error {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclare(name, true, false, false, false, args)
	return err
}

// TestRabbitQuorumQueues: with WithQuorumQueues, durable queues are
// quorum queues with the documented arguments (the caller's win), every
// argument patbus uses works on them, and what cannot be a quorum queue
// stays classic.
func TestRabbitQuorumQueues(t *testing.T) {
	url := testenv.AMQPURL(t)
	b := dialRabbit(t, url, bus.WithQuorumQueues())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := randName("patbus.quorum")
	declare := func(q bus.Queue) string {
		t.Helper()
		q.Name = id + "." + q.Name
		n, err := b.DeclareQueue(ctx, q)
		if err != nil {
			t.Fatalf("declare %s: %v", q.Name, err)
		}
		testenv.DeleteQueues(t, b, n)
		return n
	}
	quorum := func(extra amqp.Table) amqp.Table {
		a := amqp.Table{"x-queue-type": "quorum"}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	dead := declare(bus.Queue{Name: "dead", Durable: true})
	for _, tc := range []struct {
		name string
		q    bus.Queue
		args amqp.Table // what the queue was declared with
	}{
		{"plain", bus.Queue{Durable: true}, quorum(nil)},
		{"dead-lettered", bus.Queue{Durable: true, DeadLetterKey: dead}, quorum(amqp.Table{
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead,
			"x-delivery-limit": int64(bus.DefaultDeliveryLimit), "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})},
		{"own delivery limit", bus.Queue{Durable: true, DeadLetterKey: dead, Args: map[string]any{"x-delivery-limit": 3}}, quorum(amqp.Table{
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead,
			"x-delivery-limit": int64(3), "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})},
		{"all arguments", bus.Queue{Durable: true, MaxLength: 5, MessageTTL: time.Minute, Expires: time.Hour, DeadLetterKey: dead}, quorum(amqp.Table{
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead, "x-max-length": int64(4), "x-message-ttl": int64(60000),
			"x-expires": int64(3600000), "x-delivery-limit": int64(bus.DefaultDeliveryLimit), "x-dead-letter-strategy": "at-least-once",
			"x-overflow": "reject-publish"})},
		{"lazy", bus.Queue{Durable: true, Args: map[string]any{"x-queue-mode": "lazy"}}, quorum(nil)},
		{"typed classic", bus.Queue{Durable: true, Args: map[string]any{"x-queue-type": "classic"}}, amqp.Table{"x-queue-type": "classic"}},
		{"priorities", bus.Queue{Durable: true, Args: map[string]any{"x-max-priority": 5}}, amqp.Table{"x-max-priority": int64(5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Name = strings.ReplaceAll(tc.name, " ", "-")
			n := declare(tc.q)
			if err := probeDeclare(t, url, n, tc.args); err != nil {
				t.Errorf("the queue was not declared with %v: %v", tc.args, err)
			}
		})
	}
	// Exclusive, auto-delete and transient queues stay classic: RabbitMQ
	// would refuse them as quorum queues.
	for _, q := range []bus.Queue{{Exclusive: true}, {Name: id + ".auto", Durable: true, AutoDelete: true}, {Name: id + ".transient"}} {
		n, err := b.DeclareQueue(ctx, q)
		if err != nil {
			t.Errorf("declare %+v: %v", q, err)
			continue
		}
		testenv.DeleteQueues(t, b, n)
	}
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: id + ".prio", Quorum: true, Args: map[string]any{"x-max-priority": 5}}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("an explicit quorum queue with priorities: %v, want ErrInvalidConfig", err)
	}

	// The arguments work: a full queue nacks, a message past its TTL is
	// dead-lettered, a poison message is dead-lettered after the delivery
	// limit.
	// With one publish at a time a quorum queue takes MaxLength messages,
	// as a classic one does.
	for _, max := range []int{1, 2} {
		full := declare(bus.Queue{Name: fmt.Sprint("full", max), Durable: true, MaxLength: max})
		accepted := 0
		for i := 0; i < 5; i++ {
			err := bus.PublishAndWait(ctx, b, "", full, bus.Message{Body: []byte("x"), Persistent: true})
			if errors.Is(err, bus.ErrNacked) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted++
		}
		if accepted != max {
			t.Errorf("a quorum queue with MaxLength %d took %d messages published one at a time", max, accepted)
		}
	}
	deadSub, err := b.Consume(ctx, dead, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ttl := declare(bus.Queue{Name: "ttl", Durable: true, MessageTTL: 100 * time.Millisecond, DeadLetterKey: dead})
	if err := bus.PublishAndWait(ctx, b, "", ttl, bus.Message{MessageID: "expired", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	perMessage := declare(bus.Queue{Name: "expiration", Durable: true, DeadLetterKey: dead})
	if err := bus.PublishAndWait(ctx, b, "", perMessage, bus.Message{MessageID: "expired-message", Expiration: 100 * time.Millisecond, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	poison := declare(bus.Queue{Name: "poison", Durable: true, DeadLetterKey: dead, Args: map[string]any{"x-delivery-limit": 2}})
	if err := bus.PublishAndWait(ctx, b, "", poison, bus.Message{MessageID: "poison", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, poison, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	got := map[string]bool{}
	for len(got) < 3 {
		select {
		case d := <-sub.Deliveries():
			deliveries++
			_ = d.Nack(true) // a consumer that never gets through it
		case d := <-deadSub.Deliveries():
			got[d.MessageID] = true
			_ = d.Ack()
		case <-time.After(20 * time.Second):
			t.Fatalf("dead letters after 20s: %v; the poison message was delivered %d times", got, deliveries)
		}
	}
	if deliveries > 3 {
		t.Errorf("the poison message was delivered %d times with a delivery limit of 2", deliveries)
	}
	_ = sub.Cancel(ctx)
	_ = deadSub.Cancel(ctx)

	// A queue that exists as a classic queue cannot become a quorum queue:
	// the error says so.
	classic := dialRabbit(t, url)
	old, err := classic.DeclareQueue(ctx, bus.Queue{Name: id + ".classic", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	testenv.DeleteQueues(t, classic, old)
	_, err = b.DeclareQueue(ctx, bus.Queue{Name: old, Durable: true})
	if !errors.Is(err, bus.ErrPrecondition) || !strings.Contains(err.Error(), "cannot change the type") {
		t.Errorf("declaring an existing classic queue under WithQuorumQueues: %v, want ErrPrecondition with a hint", err)
	}
}

// TestRabbitQueueTypeDefault: durable queues are quorum queues by default
// when the broker is dialled with several addresses (a cluster), classic
// with one, and the options decide either way.
func TestRabbitQueueTypeDefault(t *testing.T) {
	url := testenv.AMQPURL(t)
	target, base := brokerHostPort(t)
	two := []string{newNodeProxy(t, target).url(base), newNodeProxy(t, target).url(base)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name   string
		addrs  []string
		opts   []bus.Option
		quorum bool
	}{
		{"one address", []string{url}, nil, false},
		{"several addresses", two, nil, true},
		{"one address, WithQuorumQueues", []string{url}, []bus.Option{bus.WithQuorumQueues()}, true},
		{"several addresses, WithClassicQueues", two, []bus.Option{bus.WithClassicQueues()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bus.Dial(ctx, tc.addrs, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			q, err := b.DeclareQueue(ctx, bus.Queue{Name: randName("patbus.quorum.default"), Durable: true})
			if err != nil {
				t.Fatal(err)
			}
			defer b.DeleteQueue(context.Background(), q)
			want := amqp.Table{"x-queue-type": "classic"}
			if tc.quorum {
				want = amqp.Table{"x-queue-type": "quorum"}
			}
			if err := probeDeclare(t, url, q, want); err != nil {
				t.Errorf("the queue is not %v: %v", want, err)
			}
		})
	}
}
