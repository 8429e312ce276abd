package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// Regression tests for defects found in review of the RabbitMQ broker.

// Two pending Mandatory messages with the same MessageID (workers' retry
// copies keep the item's id): the return of the unroutable one must not be
// taken for the routable one, or the unroutable one confirms nil.
func TestRabbitReturnWithSharedMessageID(t *testing.T) {
	url := testenv.AMQPURL(t)
	b := dialRabbit(t, url, bus.WithPublishChannels(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := randName("patbus.test.sameid")
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	defer b.DeleteQueue(context.Background(), q)
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("same-%d", i)
		routable, err := b.Publish(ctx, "", q, bus.Message{MessageID: id, Mandatory: true, Body: []byte("a")})
		if err != nil {
			t.Fatal(err)
		}
		unroutable, err := b.Publish(ctx, "", q+".nobody", bus.Message{MessageID: id, Mandatory: true, Body: []byte("b")})
		if err != nil {
			t.Fatal(err)
		}
		if err := routable.Wait(ctx); err != nil {
			t.Fatalf("round %d: routable message: %v, want nil", i, err)
		}
		if err := unroutable.Wait(ctx); !errors.Is(err, bus.ErrUnroutable) {
			t.Fatalf("round %d: unroutable message: %v, want ErrUnroutable", i, err)
		}
	}
}

// Close must not wait for a DirectReply whose replies nobody reads.
func TestRabbitCloseWithUnreadDirectReplies(t *testing.T) {
	url := testenv.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Dial(ctx, []string{url})
	if err != nil {
		t.Fatal(err)
	}
	q := randName("patbus.test.drclose")
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: q, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dr, err := bus.DirectReplier(b).DirectReply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dr.Publish(ctx, "", q, bus.Message{Body: []byte("req")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var req *bus.Delivery
	select {
	case req = <-sub.Deliveries():
	case <-ctx.Done():
		t.Fatal("no request")
	}
	// Two replies the requester never reads: the second holds the
	// DirectReply's forwarding goroutine.
	for i := 0; i < 2; i++ {
		if err := bus.PublishAndWait(ctx, b, "", req.ReplyTo, bus.Message{Body: []byte("rep")}); err != nil {
			t.Fatal(err)
		}
	}
	_ = req.Ack()
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		_ = dr.Close()
		<-closed
		t.Fatal("Rabbit.Close hung on a DirectReply with unread replies")
	}
}

// A publish to an exchange that was deleted closes the channel; the other
// messages on that channel are innocent and must neither fail nor count
// the error against themselves.
func TestRabbitDeletedExchangeSparesOtherMessages(t *testing.T) {
	url := testenv.AMQPURL(t)
	b := dialRabbit(t, url, bus.WithPublishChannels(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gone := randName("patbus.test.gone")
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: gone, Kind: bus.Fanout}); err != nil {
		t.Fatal(err)
	}
	q := randName("patbus.test.innocent")
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	defer b.DeleteQueue(context.Background(), q)
	// Delete the exchange behind the broker value's back, so that it still
	// believes the exchange exists and retries publishes to it.
	other := dialRabbit(t, url)
	if err := other.DeleteExchange(ctx, gone); err != nil {
		t.Fatal(err)
	}
	var good []*bus.Confirmation
	for i := 0; i < 1000; i++ {
		c, err := b.Publish(ctx, "", q, bus.Message{Body: []byte("ok")})
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, c)
		if i%100 == 0 {
			if _, err := b.Publish(ctx, gone, "", bus.Message{Body: []byte("doomed")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	failed := 0
	for _, c := range good {
		if err := c.Wait(ctx); err != nil {
			failed++
			if failed == 1 {
				t.Errorf("a message for a live queue failed: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d messages for a live queue failed", failed, len(good))
	}
}
