package bustest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
)

var consumeTests = []subtest{
	{"CompetingConsumers", testCompeting},
	{"PrefetchBound", testPrefetch},
	{"AckRemoves", testAckRemoves},
	{"NackRequeue", testNackRequeue},
	{"DoubleAck", testDoubleAck},
	{"CancelReturnsUnacked", testCancelReturnsUnacked},
	{"CancelWaitsForAcks", testCancelWaitsForAcks},
	{"NoAck", testNoAck},
}

func testCompeting(e *env) {
	q := e.queue(bus.Queue{Name: "compete"})
	subs := []bus.Subscription{e.consume(q, 1), e.consume(q, 1)}
	const n = 40
	type got struct {
		consumer int
		body     string
	}
	results := make(chan got, 2*n)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	for i, s := range subs {
		i, s := i, s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case d, ok := <-s.Deliveries():
					if !ok {
						return
					}
					_ = d.Ack()
					select {
					case results <- got{i, string(d.Body)}:
					case <-done:
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		e.text("", q, fmt.Sprint(i))
	}
	seen := map[string]bool{}
	counts := make([]int, len(subs))
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for k := 0; k < n; k++ {
		select {
		case r := <-results:
			if seen[r.body] {
				e.t.Errorf("message %s delivered twice", r.body)
			}
			seen[r.body] = true
			counts[r.consumer]++
		case <-timer.C:
			e.t.Fatalf("consumers got %d of %d messages", k, n)
		}
	}
	for i, c := range counts {
		if c == 0 {
			e.t.Errorf("consumer %d got no work (counts %v)", i, counts)
		}
	}
}

func testPrefetch(e *env) {
	q := e.queue(bus.Queue{Name: "prefetch"})
	for i := 0; i < 6; i++ {
		e.text("", q, fmt.Sprint(i))
	}
	sub := e.consume(q, 2)
	d1 := e.recv(sub)
	d2 := e.recv(sub)
	e.quiet(sub) // two unacked: no third
	e.ack(d1)
	d3 := e.recv(sub)
	e.quiet(sub)
	got := []string{string(d1.Body), string(d2.Body), string(d3.Body)}
	if fmt.Sprint(got) != "[0 1 2]" {
		e.t.Errorf("got %q, want 0 1 2 in order", got)
	}
	e.ack(d2)
	e.ack(d3)
	for i := 3; i < 6; i++ {
		d := e.recv(sub)
		if string(d.Body) != fmt.Sprint(i) {
			e.t.Errorf("got %q, want %d", d.Body, i)
		}
		e.ack(d)
	}
}

func testAckRemoves(e *env) {
	q := e.queue(bus.Queue{Name: "ack"})
	sub := e.consume(q, 10)
	e.text("", q, "one")
	d := e.recv(sub)
	e.ack(d)
	e.settledForGood(sub, q)
}

func testNackRequeue(e *env) {
	q := e.queue(bus.Queue{Name: "nack"})
	sub := e.consume(q, 10)
	e.text("", q, "one")
	d := e.recv(sub)
	if d.Redelivered {
		e.t.Error("first delivery marked Redelivered")
	}
	if err := d.Nack(true); err != nil {
		e.t.Fatalf("Nack(requeue): %v", err)
	}
	d2 := e.recv(sub)
	if string(d2.Body) != "one" || d2.MessageID != "one" || !d2.Redelivered {
		e.t.Errorf("after requeue got %q (id %q, redelivered %v), want one, redelivered", d2.Body, d2.MessageID, d2.Redelivered)
	}
	// Nack without requeue and no dead-letter exchange: dropped.
	if err := d2.Nack(false); err != nil {
		e.t.Fatalf("Nack: %v", err)
	}
	e.marker(q)
	if got := e.drain(sub); len(got) != 0 {
		e.t.Errorf("rejected message came back: %q", got)
	}
}

func testDoubleAck(e *env) {
	q := e.queue(bus.Queue{Name: "double"})
	sub := e.consume(q, 10)
	e.text("", q, "one")
	d := e.recv(sub)
	e.ack(d)
	if err := d.Ack(); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("second Ack: %v, want ErrAcknowledged", err)
	}
	if err := d.Nack(true); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("Nack after Ack: %v, want ErrAcknowledged", err)
	}
	e.text("", q, "two")
	d = e.recv(sub)
	if err := d.Nack(false); err != nil {
		e.t.Fatalf("Nack: %v", err)
	}
	if err := d.Ack(); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("Ack after Nack: %v, want ErrAcknowledged", err)
	}
	var zero bus.Delivery
	if err := zero.Ack(); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("Ack of a zero Delivery: %v, want ErrAcknowledged", err)
	}
}

func testCancelReturnsUnacked(e *env) {
	q := e.queue(bus.Queue{Name: "cancel"})
	for i := 0; i < 3; i++ {
		e.text("", q, fmt.Sprint(i))
	}
	first := e.consume(q, 10)
	d0 := e.recv(first)
	d1 := e.recv(first)
	// The third may sit in the consumer's buffer: Cancel hands it back too.
	ended, cancel := context.WithCancel(e.waitCtx())
	cancel()
	if err := first.Cancel(ended); !errors.Is(err, context.Canceled) {
		e.t.Errorf("Cancel with unacked deliveries and an ended context: %v, want context.Canceled", err)
	}
	e.closedWithin(first)
	if err := first.Err(); err != nil {
		e.t.Errorf("Err after Cancel: %v, want nil", err)
	}
	if err := first.Cancel(e.waitCtx()); err != nil {
		e.t.Errorf("second Cancel: %v", err)
	}
	second := e.consume(q, 10)
	e.marker(q)
	redelivered := map[string]bool{}
	for i := 0; i < 4; i++ {
		d := e.recv(second)
		e.ack(d)
		if d.MessageID == markerID {
			break
		}
		redelivered[string(d.Body)] = d.Redelivered
	}
	var got []string
	for b := range redelivered {
		got = append(got, b)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[0 1 2]" {
		e.t.Fatalf("second consumer got %q, want 0 1 2", got)
	}
	if !redelivered[string(d0.Body)] || !redelivered[string(d1.Body)] {
		e.t.Errorf("received-but-unacked messages not marked Redelivered: %v", redelivered)
	}
	// The old deliveries can no longer be acked to effect; they must not panic.
	_ = d0.Ack()
	_ = d1.Nack(true)
}

func testCancelWaitsForAcks(e *env) {
	q := e.queue(bus.Queue{Name: "cancelwait"})
	sub := e.consume(q, 10)
	e.text("", q, "one")
	d := e.recv(sub)
	result := make(chan error, 1)
	ctx := e.waitCtx()
	go func() { result <- sub.Cancel(ctx) }()
	// Cancel is waiting for d: acking it must work and let Cancel return.
	if err := d.Ack(); err != nil {
		e.t.Fatalf("Ack during Cancel: %v", err)
	}
	select {
	case err := <-result:
		if err != nil {
			e.t.Errorf("Cancel: %v", err)
		}
	case <-ctx.Done():
		e.t.Fatal("Cancel did not return after the ack")
	}
	e.closedWithin(sub)
	again := e.consume(q, 10)
	e.marker(q)
	if got := e.drain(again); len(got) != 0 {
		e.t.Errorf("acked message came back: %q", got)
	}
}

// testNoAck checks ConsumeOptions.NoAck: messages count as acknowledged
// when delivered; Ack and Nack do nothing and return nil (then
// ErrAcknowledged); Cancel does not wait; nothing comes back.
func testNoAck(e *env) {
	q := e.queue(bus.Queue{Name: "noack"})
	for i := 0; i < 3; i++ {
		e.text("", q, fmt.Sprint(i))
	}
	sub, err := e.b.Consume(e.ctx, q, bus.ConsumeOptions{Prefetch: 10, NoAck: true})
	if err != nil {
		e.t.Fatalf("Consume(NoAck): %v", err)
	}
	d0, d1, d2 := e.recv(sub), e.recv(sub), e.recv(sub)
	if got := string(d0.Body) + string(d1.Body) + string(d2.Body); got != "012" {
		e.t.Errorf("got %s, want 0 1 2 in order", got)
	}
	if err := d0.Ack(); err != nil {
		e.t.Errorf("Ack of a NoAck delivery: %v, want nil", err)
	}
	if err := d0.Ack(); !errors.Is(err, bus.ErrAcknowledged) {
		e.t.Errorf("second Ack of a NoAck delivery: %v, want ErrAcknowledged", err)
	}
	if err := d1.Nack(true); err != nil {
		e.t.Errorf("Nack of a NoAck delivery: %v, want nil", err)
	}
	// d2 is never settled: Cancel must not wait for it, and it does not
	// come back.
	e.settledForGood(sub, q)
}
