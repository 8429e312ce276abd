package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// A consumer made with Replies lives on the publishing connection: when
// that connection is lost between a delivery and its reply, the request
// comes again on the resumed consumer, Reply on the old delivery says it
// is stale, and the new one is answered and acked. The consuming
// connection is not touched.
func TestRabbitRepliesAfterPublishingConnectionLoss(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	b := dialRabbit(t, node.URL(), bus.WithConnectionName("replies-test"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.replies", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	rq, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.replies.answers"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 4, Replies: true})
	if err != nil {
		t.Fatal(err)
	}
	// An auto-delete queue goes with its consumer's channel: it must come
	// back, bound, when the consumer resumes.
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: "patbus.test.replies.x", Kind: bus.Direct}); err != nil {
		t.Fatal(err)
	}
	aq, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.replies.auto", AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, bus.Binding{Exchange: "patbus.test.replies.x", Queue: aq, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	autoSub, err := b.Consume(ctx, aq, bus.ConsumeOptions{Prefetch: 4, Replies: true})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := b.Consume(ctx, rq, bus.ConsumeOptions{NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{CorrelationID: "c1", ReplyTo: rq, Body: []byte("q")}); err != nil {
		t.Fatal(err)
	}
	next := func(s bus.Subscription) *bus.Delivery {
		t.Helper()
		return recvWithin(t, s, 30*time.Second)
	}
	first := next(sub)

	pid := ""
	conns := node.MustCtl("list_connections", "-q", "pid", "client_properties")
	for _, line := range strings.Split(conns, "\n") {
		if f := strings.SplitN(line, "\t", 2); len(f) == 2 && strings.Contains(f[1], `"replies-test-pub"`) {
			pid = f[0]
		}
	}
	if pid == "" {
		t.Fatalf("no publishing connection listed:\n%s", conns)
	}
	node.MustCtl("close_connection", pid, "patbus test")

	again := next(sub)
	if again.CorrelationID != "c1" || !again.Redelivered {
		t.Fatalf("after the loss got %q (redelivered %v)", again.CorrelationID, again.Redelivered)
	}
	if err := bus.Reply(ctx, b, first, bus.Message{CorrelationID: "stale", Body: []byte("a")}); !errors.Is(err, bus.ErrStaleDelivery) {
		t.Errorf("Reply to the delivery from the lost connection: %v, want ErrStaleDelivery", err)
	}
	if err := bus.Reply(ctx, b, again, bus.Message{CorrelationID: "c1", Body: []byte("a")}); err != nil {
		t.Fatalf("Reply: %v", err)
	}
	if r := next(replies); r.CorrelationID != "c1" {
		t.Errorf("reply %q, want c1", r.CorrelationID)
	}
	// The consumer resumes on its own: until its queue is back, the broker
	// returns the message as unroutable.
	for {
		err := bus.PublishAndWait(ctx, b, "patbus.test.replies.x", "k", bus.Message{CorrelationID: "c2", ReplyTo: rq, Mandatory: true, Body: []byte("q")})
		if err == nil {
			break
		}
		if !errors.Is(err, bus.ErrUnroutable) {
			t.Fatalf("publish to the auto-delete queue after the loss: %v", err)
		}
	}
	if err := bus.Reply(ctx, b, next(autoSub), bus.Message{CorrelationID: "c2", Body: []byte("a")}); err != nil {
		t.Fatalf("Reply on the auto-delete queue: %v", err)
	}
	if r := next(replies); r.CorrelationID != "c2" {
		t.Errorf("reply %q, want c2", r.CorrelationID)
	}
	if err := sub.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if out := node.MustCtl("list_queues", "-q", "name", "messages"); !strings.Contains(out, "patbus.test.replies\t0") {
		t.Errorf("the answered request is still queued:\n%s", out)
	}
	if out := node.MustCtl("list_connections", "-q", "client_properties"); !strings.Contains(out, `"replies-test-sub"`) {
		t.Errorf("the consuming connection went too:\n%s", out)
	}
}

// An exclusive queue belongs to the consuming connection: consuming it
// with Replies is refused at once.
func TestRabbitRepliesRefuseExclusiveQueue(t *testing.T) {
	b := dialRabbit(t, testenv.AMQPURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Consume(ctx, q, bus.ConsumeOptions{Replies: true}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("Consume of an exclusive queue with Replies: %v, want ErrInvalidConfig", err)
	}
}

// Reply takes the channel path for a small reply of a Replies consumer,
// and the confirmed path for a large reply or a plain consumer.
func TestRabbitReplyPaths(t *testing.T) {
	b := dialRabbit(t, testenv.AMQPURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	declare := func(name string) string {
		q, err := b.DeclareQueue(ctx, bus.Queue{Name: randName(name), AutoDelete: true})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	rq := declare("patbus.test.paths.replies")
	replies, err := b.Consume(ctx, rq, bus.ConsumeOptions{NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	answer := func(sub bus.Subscription, q string, size int) {
		t.Helper()
		if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{CorrelationID: "c", ReplyTo: rq, Body: []byte("q")}); err != nil {
			t.Fatal(err)
		}
		d := recvWithin(t, sub, 10*time.Second)
		if err := bus.Reply(ctx, b, d, bus.Message{CorrelationID: "c", Body: make([]byte, size)}); err != nil {
			t.Fatalf("Reply of %d bytes: %v", size, err)
		}
		if r := recvWithin(t, replies, 10*time.Second); len(r.Body) != size {
			t.Errorf("reply of %d bytes, want %d", len(r.Body), size)
		}
	}
	for _, c := range []struct {
		replies bool
		size    int
		want    int64
	}{{true, 10, 1}, {true, 64 << 10, 0}, {false, 10, 0}} {
		q := declare("patbus.test.paths")
		sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Replies: c.replies})
		if err != nil {
			t.Fatal(err)
		}
		answer(sub, q, c.size)
		if got := bus.ChannelReplies(sub); got != c.want {
			t.Errorf("Replies %v, %d bytes: %d replies on the channel, want %d", c.replies, c.size, got, c.want)
		}
		if err := sub.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
