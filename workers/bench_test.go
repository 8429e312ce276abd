package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/workers"
)

// The benchmarks run patbus next to the plain amqp091-go programs of
// internal/baseline on the same broker in the same run. Each iteration is
// one round: a batch of messages through the plain program and the same
// number through patbus, in alternating order, so that a busy machine slows
// both alike. They report plain-msg/s, patbus-msg/s and their ratio
// (patbus/plain); ns/op is the time of one round. Run them with:
//
//	PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \
//	  go test ./workers -run '^$' -bench . -benchtime 6x

var benchBody = json.RawMessage(`{"id":"0123456789abcdef","task":"resize","width":128,"height":128}`)

// side moves n messages and returns how long that took.
type side func(ctx context.Context, n int) (time.Duration, error)

func paired(b *testing.B, n int, plain, patbus side) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var tPlain, tPatbus time.Duration
	for i := 0; i < b.N; i++ {
		order := []*time.Duration{&tPlain, &tPatbus}
		sides := []side{plain, patbus}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
			sides[0], sides[1] = sides[1], sides[0]
		}
		for j, s := range sides {
			d, err := s(ctx, n)
			if err != nil {
				b.Fatal(err)
			}
			*order[j] += d
		}
	}
	total := float64(n * b.N)
	b.ReportMetric(total/tPlain.Seconds(), "plain-msg/s")
	b.ReportMetric(total/tPatbus.Seconds(), "patbus-msg/s")
	b.ReportMetric(tPlain.Seconds()/tPatbus.Seconds(), "ratio")
}

func benchBroker(b *testing.B) (string, bus.Broker) {
	b.Helper()
	return testenv.AMQPURL(b), dialRabbit(b)
}

// plainQueue declares a fresh durable queue with the plain client and
// deletes it at the end.
func plainQueue(b *testing.B, url string) string {
	b.Helper()
	name := queueName(b)
	if err := baseline.DeclareWorkQueue(url, name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = baseline.DeleteQueue(url, name) })
	return name
}

func plainProducer(b *testing.B, url, queue string, window int, sameWire bool) side {
	b.Helper()
	p, err := baseline.NewProducer(url, window)
	if err != nil {
		b.Fatal(err)
	}
	p.SameWire = sameWire
	b.Cleanup(func() { _ = p.Close() })
	return func(ctx context.Context, n int) (time.Duration, error) {
		start := time.Now()
		err := p.Publish(ctx, queue, n, benchBody)
		return time.Since(start), err
	}
}

func BenchmarkEnqueue(b *testing.B) {
	enqueueGoroutines := func(g int) func(ctx context.Context, q *workers.Queue, n int) error {
		return func(ctx context.Context, q *workers.Queue, n int) error {
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, g)
			for w := 0; w < g; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(n) {
						if err := q.Enqueue(ctx, benchBody); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		}
	}
	enqueueBatch := func(size int) func(ctx context.Context, q *workers.Queue, n int) error {
		batch := make([]any, size)
		for i := range batch {
			batch[i] = benchBody
		}
		return func(ctx context.Context, q *workers.Queue, n int) error {
			for done := 0; done < n; done += size {
				k := min(size, n-done)
				if err := q.EnqueueBatch(ctx, batch[:k]...); err != nil {
					return err
				}
			}
			return nil
		}
	}
	asyncWindow := func(window int) func(ctx context.Context, q *workers.Queue, n int) error {
		return func(ctx context.Context, q *workers.Queue, n int) error {
			pending := make([]*bus.Confirmation, 0, window)
			for i := 0; i < n; i++ {
				if len(pending) == window {
					if err := pending[0].Wait(ctx); err != nil {
						return err
					}
					pending = pending[1:]
				}
				c, err := q.EnqueueAsync(ctx, benchBody)
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
		}
	}
	// "bare" is the tutorial's producer; "samewire" sends what patbus sends
	// (mandatory, message id, timestamp, tx and traceparent headers).
	cases := []struct {
		name     string
		window   int // of the plain producer
		sameWire bool
		n        int // messages per round and side
		run      func(ctx context.Context, q *workers.Queue, n int) error
	}{
		{"serial-vs-bare-window1", 1, false, 1000, enqueueGoroutines(1)},
		{"async-window256-vs-bare-window256", 256, false, 5000, asyncWindow(256)},
		{"async-window256-vs-samewire-window256", 256, true, 5000, asyncWindow(256)},
		{"256goroutines-vs-samewire-window256", 256, true, 5000, enqueueGoroutines(256)},
		{"batch1024-vs-samewire-window256", 256, true, 5000, enqueueBatch(1024)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			url, br := benchBroker(b)
			plain := plainProducer(b, url, plainQueue(b, url), c.window, c.sameWire)
			q := newQueue(b, br)
			paired(b, c.n, plain, func(ctx context.Context, n int) (time.Duration, error) {
				start := time.Now()
				err := c.run(ctx, q, n)
				return time.Since(start), err
			})
		})
	}
}

func BenchmarkWork(b *testing.B) {
	const prefetch, concurrency, n = 100, 8, 10000
	b.Run(fmt.Sprintf("prefetch%d-concurrency%d-vs-plain-prefetch%d", prefetch, concurrency, prefetch), func(b *testing.B) {
		url, br := benchBroker(b)
		fill, err := baseline.NewProducer(url, 256)
		if err != nil {
			b.Fatal(err)
		}
		defer fill.Close()
		cons, err := baseline.NewConsumer(url)
		if err != nil {
			b.Fatal(err)
		}
		defer cons.Close()
		pq := plainQueue(b, url)
		wq := newQueue(b, br).Name()

		plain := func(ctx context.Context, n int) (time.Duration, error) {
			if err := fill.Publish(ctx, pq, n, benchBody); err != nil {
				return 0, err
			}
			start := time.Now()
			err := cons.Consume(ctx, pq, n, prefetch)
			return time.Since(start), err
		}
		patbus := func(ctx context.Context, n int) (time.Duration, error) {
			if err := fill.Publish(ctx, wq, n, benchBody); err != nil {
				return 0, err
			}
			q, err := workers.New(ctx, br, wq, workers.WithPrefetch(prefetch), workers.WithConcurrency(concurrency))
			if err != nil {
				return 0, err
			}
			var count atomic.Int64
			done := make(chan struct{})
			start := time.Now()
			err = q.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				if count.Add(1) == int64(n) {
					close(done)
				}
				return nil
			}))
			if err != nil {
				return 0, err
			}
			select {
			case <-done:
			case <-ctx.Done():
				_ = q.Close()
				return 0, fmt.Errorf("handled %d of %d: %w", count.Load(), n, ctx.Err())
			}
			d := time.Since(start)
			return d, q.Shutdown(ctx)
		}
		paired(b, n, plain, patbus)
	})
}
