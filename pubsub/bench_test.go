package pubsub_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/pubsub"
)

// BenchmarkEmit runs, on the same broker in the same run, three
// publishers of the same events, persistent and confirmed before the
// caller is told, to EventsExchange with one durable queue bound:
//
//   - plain: amqp091-go with a window of 256 unconfirmed publishes
//     (internal/baseline, RabbitMQ's publisher-confirms tutorial), the
//     final body given ready;
//   - plainwire: the same, each message carrying what an event carries
//     (the pattern and traceparent headers, a UUID message id, a
//     timestamp), so that what the event's wire costs the broker is told
//     apart from what patbus costs;
//   - plainwire64: plainwire with a window of 64, as many events in
//     flight as emit64 has: the most that 64 callers waiting for their
//     confirms can get from the broker;
//   - emit64: Emit from 64 goroutines, each waiting for its confirm;
//   - async256: EmitAsync with a window of 256 confirmations.
//
// Each iteration is one round of n events per publisher, in rotating
// order so that a busy machine slows all of them alike; the queue is
// purged between them, outside the timing. It reports each publisher's
// msg/s, the ratios of emit64 and async256 to plain, and the ratios that
// tell patbus's own cost: emit64/plainwire64 and async256/plainwire; ns/op
// is the time of one round. Run it with:
//
//	PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \
//	  go test ./pubsub -run '^$' -bench Emit -benchtime 5s -count 3
func BenchmarkEmit(b *testing.B) {
	const (
		n       = 2000
		senders = 64
		window  = 256
	)
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	br := testenv.Rabbit(b, bus.WithConnectionName("patbus-pubsub-bench"))
	p, err := pubsub.New(ctx, br)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()

	run := uniq()
	pattern := "role:bench,evt:tick,run:" + run
	data := json.RawMessage(`{"id":"0123456789abcdef","user":42,"at":"2024-05-01T12:00:00Z"}`)
	key, err := patterns.Key(patterns.MustParse(pattern))
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"id":"0123456789abcdef","user":42,"at":"2024-05-01T12:00:00Z","evt":"tick","role":"bench","run":"` + run + `"}`)
	queue := "patbus.bench.pubsub." + run
	if _, err := br.DeclareQueue(ctx, bus.Queue{Name: queue, Durable: true}); err != nil {
		b.Fatal(err)
	}
	testenv.DeleteQueues(b, br, queue)
	if err := br.Bind(ctx, bus.Binding{Exchange: pubsub.EventsExchange, Queue: queue, Key: key}); err != nil {
		b.Fatal(err)
	}
	plain, err := baseline.NewProducer(url, window)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()

	plainWire, err := baseline.NewProducer(url, window)
	if err != nil {
		b.Fatal(err)
	}
	defer plainWire.Close()
	plainWire.Event = patterns.MustParse(pattern).String()

	plainWire64, err := baseline.NewProducer(url, senders)
	if err != nil {
		b.Fatal(err)
	}
	defer plainWire64.Close()
	plainWire64.Event = plainWire.Event

	sides := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"plain", func(ctx context.Context) error {
			return plain.PublishTo(ctx, pubsub.EventsExchange, key, n, body)
		}},
		{"plainwire", func(ctx context.Context) error {
			return plainWire.PublishTo(ctx, pubsub.EventsExchange, key, n, body)
		}},
		{"plainwire64", func(ctx context.Context) error {
			return plainWire64.PublishTo(ctx, pubsub.EventsExchange, key, n, body)
		}},
		{"emit64", func(ctx context.Context) error {
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, senders)
			for g := 0; g < senders; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= n {
						if err := p.Emit(ctx, pattern, data); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		}},
		{"async256", func(ctx context.Context) error {
			pending := make([]*bus.Confirmation, 0, window)
			for i := 0; i < n; i++ {
				if len(pending) == window {
					if err := pending[0].Wait(ctx); err != nil {
						return err
					}
					pending = pending[1:]
				}
				c, err := p.EmitAsync(ctx, pattern, data)
				if err != nil {
					return err
				}
				pending = append(pending, c)
			}
			for _, c := range pending {
				if err := c.Wait(ctx); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	took := make([]time.Duration, len(sides))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range sides {
			k := (i + j) % len(sides)
			b.StopTimer()
			if _, err := baseline.PurgeQueue(url, queue); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := sides[k].run(ctx); err != nil {
				b.Fatalf("%s: %v", sides[k].name, err)
			}
			took[k] += time.Since(start)
		}
	}
	b.StopTimer()
	total := float64(n * b.N)
	rate := map[string]float64{}
	for k, s := range sides {
		rate[s.name] = total / took[k].Seconds()
		b.ReportMetric(rate[s.name], s.name+"-msg/s")
	}
	for _, r := range [][2]string{{"emit64", "plain"}, {"async256", "plain"}, {"emit64", "plainwire64"}, {"async256", "plainwire"}} {
		b.ReportMetric(rate[r[0]]/rate[r[1]], r[0]+"/"+r[1])
	}
}
