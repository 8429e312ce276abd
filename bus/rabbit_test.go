package bus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/bus/bustest"
	"github.com/patbus/patbus/internal/testenv"
)

// dialRabbit dials the test broker and closes it at the end of the test.
func dialRabbit(t testing.TB, url string, opts ...bus.Option) *bus.Rabbit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Dial(ctx, []string{url}, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func randName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "." + hex.EncodeToString(b[:])
}

func TestRabbitConformance(t *testing.T) {
	url := testenv.AMQPURL(t)
	bustest.Run(t, func(t *testing.T) bus.Broker { return dialRabbit(t, url) })
}

func TestRabbitOpen(t *testing.T) {
	url := testenv.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, " "+url+" , ")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := b.(*bus.Rabbit); !ok {
		t.Errorf("Open(%q) gave %T, want *bus.Rabbit", url, b)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestRabbitDialBad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		addrs []string
		opts  []bus.Option
	}{
		{"no address", nil, nil},
		{"blank address", []string{" "}, nil},
		{"bad scheme", []string{"http://user:s3cret-pw@127.0.0.1:5672/"}, nil},
		{"bad port", []string{"amqp://user:s3cret-pw@127.0.0.1:abc/"}, nil},
		{"bad option", []string{"amqp://127.0.0.1:1/"}, []bus.Option{bus.WithConfirmWindow(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bus.Dial(ctx, tc.addrs, tc.opts...)
			if !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("Dial: %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestRabbitDialDown dials ports where nothing listens: Dial keeps trying
// until its context ends, then fails with ErrDisconnected, without the
// password in the error.
func TestRabbitDialDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := bus.Dial(ctx, []string{"amqp://u:s3cret-pw@127.0.0.1:1/", "amqp://u:s3cret-pw@127.0.0.1:2/"},
		bus.WithReconnectBackoff(20*time.Millisecond, 100*time.Millisecond))
	if !errors.Is(err, bus.ErrDisconnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want ErrDisconnected and DeadlineExceeded", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:2") {
		t.Errorf("error does not name the addresses: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v after its context ended", d)
	}
	_, err = bus.Dial(context.Background(), []string{"amqp://u:pw@127.0.0.1:1/"},
		bus.WithReconnectBackoff(time.Millisecond, 2*time.Millisecond), bus.WithMaxReconnects(3))
	if !errors.Is(err, bus.ErrDisconnected) {
		t.Fatalf("Dial with max reconnects: %v, want ErrDisconnected", err)
	}
}

// TestRabbitUnroutable: a mandatory publish to an exchange with no binding
// resolves with a *ReturnError.
func TestRabbitUnroutable(t *testing.T) {
	b := dialRabbit(t, testenv.AMQPURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex := randName("patbus.rabbit.unroutable")
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: ex, Kind: bus.Topic, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "given-id"} {
		err := bus.PublishAndWait(ctx, b, ex, "a.b", bus.Message{Mandatory: true, MessageID: id, Body: []byte("x")})
		var re *bus.ReturnError
		if !errors.Is(err, bus.ErrUnroutable) || !errors.As(err, &re) {
			t.Fatalf("mandatory publish with id %q: %v, want ErrUnroutable", id, err)
		}
		if re.Exchange != ex || re.Key != "a.b" || re.ReplyCode != 312 {
			t.Errorf("return %+v", re)
		}
	}
}

// TestRabbitConfirmWindow publishes more than the confirm window holds from
// many goroutines: every confirm resolves, every message arrives once.
func TestRabbitConfirmWindow(t *testing.T) {
	b := dialRabbit(t, testenv.AMQPURL(t), bus.WithConfirmWindow(8), bus.WithPublishChannels(2))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: randName("patbus.rabbit.window"), AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.DeleteQueue(context.Background(), q)
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 50})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		w := w
		go func() {
			for i := w; i < n; i += 8 {
				errs <- bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: fmt.Sprint(i), Body: []byte("x")})
			}
		}()
	}
	seen := make(map[string]bool)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	for len(seen) < n {
		select {
		case d, ok := <-sub.Deliveries():
			if !ok {
				t.Fatalf("deliveries closed: %v", sub.Err())
			}
			if seen[d.MessageID] {
				t.Errorf("duplicate %s", d.MessageID)
			}
			seen[d.MessageID] = true
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of %d", len(seen), n)
		}
	}
	if err := sub.Cancel(ctx); err != nil {
		t.Errorf("Cancel: %v", err)
	}
}

// TestRabbitCancelWaitsForAcks: Cancel returns only after the deliveries
// received are acked, and what was not received goes back to the queue.
func TestRabbitCancelWaitsForAcks(t *testing.T) {
	b := dialRabbit(t, testenv.AMQPURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: randName("patbus.rabbit.cancel")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.DeleteQueue(context.Background(), q)
	for i := 0; i < 20; i++ {
		if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: fmt.Sprint(i), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 5})
	if err != nil {
		t.Fatal(err)
	}
	d := <-sub.Deliveries()
	done := make(chan error, 1)
	go func() { done <- sub.Cancel(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Cancel returned (%v) before the received delivery was acked", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := d.Ack(); err != nil {
		t.Fatalf("Ack during Cancel: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Cancel: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Cancel did not return after the ack")
	}
	for range sub.Deliveries() {
		t.Fatal("a delivery came out after Cancel returned")
	}
	// 19 left for the next consumer.
	sub2, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 50})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 19 {
		select {
		case d := <-sub2.Deliveries():
			got[d.MessageID] = true
			_ = d.Ack()
		case <-ctx.Done():
			t.Fatalf("second consumer got %d of 19", len(got))
		}
	}
	if got["0"] {
		t.Error("the acked message came again")
	}
	_ = sub2.Cancel(ctx)
}
