package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// TestFaultDirectReplyConnectionLoss: a DirectReply does not survive its
// connection. When the connection is closed, its Deliveries close, Err
// wraps ErrDisconnected, Publish fails with ErrDisconnected, and a new
// DirectReply works once the broker has reconnected.
func TestFaultDirectReplyConnectionLoss(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	b := dialRabbit(t, node.URL(), bus.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: randName("bus.test.directreply")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.DirectReply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	node.MustCtl("close_all_connections", "patbus direct reply-to test")
	select {
	case _, ok := <-d.Deliveries():
		if ok {
			t.Fatal("a delivery nobody sent")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Deliveries not closed after the connection was closed")
	}
	if err := d.Err(); !errors.Is(err, bus.ErrDisconnected) {
		t.Fatalf("Err = %v, want ErrDisconnected", err)
	}
	if _, err := d.Publish(ctx, "", q, bus.Message{Body: []byte("x")}); !errors.Is(err, bus.ErrDisconnected) {
		t.Fatalf("Publish on a lost DirectReply: %v, want ErrDisconnected", err)
	}

	// A new one, after the reconnect (DirectReply waits for it), works.
	d2, err := b.DirectReply(ctx)
	if err != nil {
		t.Fatalf("DirectReply after the reconnect: %v", err)
	}
	defer d2.Close()
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel(context.Background())
	if err := func() error {
		c, err := d2.Publish(ctx, "", q, bus.Message{CorrelationID: "c1", Mandatory: true, Body: []byte("ping")})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	}(); err != nil {
		t.Fatalf("request after the reconnect: %v", err)
	}
	var req *bus.Delivery
	select {
	case req = <-sub.Deliveries():
	case <-ctx.Done():
		t.Fatal("request not delivered")
	}
	if err := bus.PublishAndWait(ctx, b, "", req.ReplyTo, bus.Message{CorrelationID: req.CorrelationID, Body: []byte("pong")}); err != nil {
		t.Fatal(err)
	}
	select {
	case r, ok := <-d2.Deliveries():
		if !ok || r.CorrelationID != "c1" || string(r.Body) != "pong" {
			t.Fatalf("reply %v %+v", ok, r)
		}
	case <-ctx.Done():
		t.Fatal("reply not delivered")
	}
}
