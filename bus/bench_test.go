package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// Benchmarks against a plain amqp091-go program on the same broker in the
// same run. Run them with
//
//	go test -run '^$' -bench Rabbit -benchtime 40000x -count 3 ./bus/
//
// and compare the msg/s of each patbus line with the plain line next to it.

const benchWindow = 256 // confirms in flight, both sides

// benchQueue declares a transient queue that drops its oldest messages past
// 20,000, so publish benchmarks of any length keep the broker's memory flat.
func benchQueue(b *testing.B, url string) string {
	b.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	name := randName("patbus.bench")
	if _, err := ch.QueueDeclare(name, false, false, false, false, amqp.Table{"x-max-length": int64(20000)}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
		}
	})
	return name
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func BenchmarkRabbitPublishConfirm(b *testing.B) {
	url := testenv.AMQPURL(b)
	for _, size := range []int{16, 1024} {
		body := make([]byte, size)
		name := fmt.Sprintf("%dB", size)
		if size == 1024 {
			name = "1KiB"
		}
		b.Run(name+"/plain", func(b *testing.B) { benchPlainPublish(b, url, body) })
		b.Run(name+"/patbus", func(b *testing.B) { benchPatbusPublish(b, url, body) })
		b.Run(name+"/patbus-1ch", func(b *testing.B) { benchPatbusPublish(b, url, body, bus.WithPublishChannels(1)) })
	}
}

// benchPlainPublish: one channel in confirm mode, a window of deferred
// confirmations.
func benchPlainPublish(b *testing.B, url string, body []byte) {
	q := benchQueue(b, url)
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	window := make([]*amqp.DeferredConfirmation, 0, benchWindow)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(window) == benchWindow {
			if !window[0].Wait() {
				b.Fatal("nacked")
			}
			window = window[1:]
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{Body: body})
		if err != nil {
			b.Fatal(err)
		}
		window = append(window, dc)
	}
	for _, dc := range window {
		if !dc.Wait() {
			b.Fatal("nacked")
		}
	}
	b.StopTimer()
	reportRate(b)
}

// benchPatbusPublish: Publish with the same number of confirmations in
// flight, waited for oldest first.
func benchPatbusPublish(b *testing.B, url string, body []byte, opts ...bus.Option) {
	q := benchQueue(b, url)
	br := dialRabbit(b, url, opts...)
	ctx := context.Background()
	window := make([]*bus.Confirmation, 0, benchWindow)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(window) == benchWindow {
			if err := window[0].Wait(ctx); err != nil {
				b.Fatal(err)
			}
			window = window[1:]
		}
		c, err := br.Publish(ctx, "", q, bus.Message{Body: body})
		if err != nil {
			b.Fatal(err)
		}
		window = append(window, c)
	}
	for _, c := range window {
		if err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

func BenchmarkRabbitConsume(b *testing.B) {
	url := testenv.AMQPURL(b)
	body := make([]byte, 256)
	b.Run("prefetch100/plain", func(b *testing.B) { benchPlainConsume(b, url, body) })
	b.Run("prefetch100/patbus", func(b *testing.B) { benchPatbusConsume(b, url, body) })
}

// preload fills a fresh queue with n messages, outside the timer.
func preload(b *testing.B, url string, n int, body []byte) string {
	b.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	name := randName("patbus.bench.consume")
	if _, err := ch.QueueDeclare(name, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
		}
	})
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var window []*amqp.DeferredConfirmation
	for i := 0; i < n; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", name, false, false, amqp.Publishing{Body: body})
		if err != nil {
			b.Fatal(err)
		}
		window = append(window, dc)
		if len(window) == 1000 {
			for _, dc := range window {
				dc.Wait()
			}
			window = window[:0]
		}
	}
	for _, dc := range window {
		dc.Wait()
	}
	return name
}

// benchPlainConsume: prefetch 100, manual ack of each delivery.
func benchPlainConsume(b *testing.B, url string, body []byte) {
	q := preload(b, url, b.N, body)
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Qos(100, 0, false); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for i := 0; i < b.N; i++ {
		select {
		case d := <-deliveries:
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		case <-timeout.C:
			b.Fatalf("got %d of %d", i, b.N)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// benchPatbusConsume: the same through Consume and Delivery.Ack.
func benchPatbusConsume(b *testing.B, url string, body []byte) {
	q := preload(b, url, b.N, body)
	br := dialRabbit(b, url)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	sub, err := br.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 100})
	if err != nil {
		b.Fatal(err)
	}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for i := 0; i < b.N; i++ {
		select {
		case d := <-sub.Deliveries():
			if err := d.Ack(); err != nil {
				b.Fatal(err)
			}
		case <-timeout.C:
			b.Fatalf("got %d of %d", i, b.N)
		}
	}
	b.StopTimer()
	reportRate(b)
	_ = sub.Cancel(ctx)
}
