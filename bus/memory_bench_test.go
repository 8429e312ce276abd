package bus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/patbus/patbus/bus"
)

// Throughput of the in-memory broker: publish with confirm and consume with
// prefetch 100 and an ack per message, against a baseline of the same
// hand-off over a buffered Go channel.

func BenchmarkMemoryPublishConsume(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, err := bus.NewMemory()
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			ctx := context.Background()
			q, err := m.DeclareQueue(ctx, bus.Queue{Name: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			sub, err := m.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 100})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Cancel(ctx)
			body := make([]byte, size)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < b.N; i++ {
					d, ok := <-sub.Deliveries()
					if !ok {
						return
					}
					_ = d.Ack()
				}
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := m.Publish(ctx, "", q, bus.Message{Body: body})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			<-done
		})
	}
}

func BenchmarkMemoryPublishTopic(b *testing.B) {
	m, err := bus.NewMemory()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if err := m.DeclareExchange(ctx, bus.Exchange{Name: "ex", Kind: bus.Topic}); err != nil {
		b.Fatal(err)
	}
	// 50 bindings, one of which matches; the queue has no consumer and a
	// max length, so the benchmark measures routing and enqueueing.
	for i := 0; i < 50; i++ {
		q, err := m.DeclareQueue(ctx, bus.Queue{Name: fmt.Sprint("q", i), MaxLength: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Bind(ctx, bus.Binding{Exchange: "ex", Queue: q, Key: fmt.Sprintf("#.role:r%d.#", i)}); err != nil {
			b.Fatal(err)
		}
	}
	body := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Publish(ctx, "ex", "cmd:login.role:r7.v:1", bus.Message{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineChannel is the floor: the same hand-off of a copied body
// over a Go channel with capacity 100.
func BenchmarkBaselineChannel(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ch := make(chan []byte, 100)
			body := make([]byte, size)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < b.N; i++ {
					<-ch
				}
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ch <- append([]byte(nil), body...)
			}
			<-done
		})
	}
}
