package bench_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/integration/components"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/pubsub"
)

func TestMain(m *testing.M) { os.Exit(components.Main(m)) }

// BenchmarkEvents publishes persistent events, each confirmed by the
// broker before its publisher counts it, to a durable queue that a
// consumer drains, and compares in the same run, in alternating rounds of
// a few seconds each:
//
//   - "emit64": patbus's Emit (it returns after the confirm) from 64 goroutines;
//   - "async256": patbus's EmitAsync keeping 256 confirms outstanding;
//   - "plain256": plain amqp091-go keeping 256 confirms outstanding on one
//     channel, as RabbitMQ's publisher-confirm tutorial does;
//   - "watermill64": Watermill's AMQP publisher (durable pub/sub config,
//     ConfirmDelivery on, a pool of 64 channels) from 64 goroutines.
//
// Each round starts on empty queues: what the consumer has not drained
// after a contender's round is purged. It reports events/s for each
// (medians of the rounds) and the ratios async256/plain256 and
// emit64/watermill64.
//
//	cd integration && go test -run '^$' -bench Events -benchtime 1x -count 3 ./bench
func BenchmarkEvents(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	body := []byte(`{"order":42,"customer":"ada","total":"12.50","note":"` + string(make([]byte, 0)) + `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)

	// One drained durable queue per publisher. The connection closes after
	// the queues are deleted (cleanups run last first).
	drainConn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = drainConn.Close() })
	var queues []string
	drain := func(exchange, kind, key string) {
		ch, err := drainConn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		q := "patbus.bench.events." + exchange + "." + id
		if err := ch.ExchangeDeclare(exchange, kind, true, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		if err := ch.QueueBind(q, key, exchange, false, nil); err != nil {
			b.Fatal(err)
		}
		msgs, err := ch.Consume(q, "", true, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range msgs {
			}
		}()
		b.Cleanup(func() { _, _ = ch.QueueDelete(q, false, false, false) })
		queues = append(queues, q)
	}
	drain(pubsub.EventsExchange, "topic", "#.run:"+id+".#")
	drain("patbus.bench.plain", "topic", "#")
	wtopic := "patbus.bench.watermill." + id
	drain(wtopic, "fanout", "")

	purgeCh, err := drainConn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	// purge drops what the consumers have not drained yet, so that every
	// round starts on empty queues: a backlog of persistent messages slows
	// the publisher that made it.
	purge := func() {
		for _, q := range queues {
			if _, err := purgeCh.QueuePurge(q, false); err != nil {
				b.Fatalf("purge %s: %v", q, err)
			}
		}
	}

	br, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-bench-events"))
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	ps, err := pubsub.New(ctx, br)
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	pattern := "role:order,cmd:created,run:" + id

	plainConn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer plainConn.Close()
	plainCh, err := plainConn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := plainCh.Confirm(false); err != nil {
		b.Fatal(err)
	}

	cfg := wamqp.NewDurablePubSubConfig(url, nil)
	cfg.Publish.ConfirmDelivery = true
	cfg.Publish.ChannelPoolSize = 64
	wpub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	defer wpub.Close()

	const round = 3 * time.Second
	contenders := []struct {
		name string
		run  func(ctx context.Context) (int, error)
	}{
		{"emit64", func(ctx context.Context) (int, error) {
			return goroutines(ctx, 64, func(ctx context.Context) error { return ps.Emit(ctx, pattern, body) })
		}},
		{"async256", func(ctx context.Context) (int, error) {
			return window(ctx, 256, func(ctx context.Context) (func() error, error) {
				c, err := ps.EmitAsync(ctx, pattern, body)
				if err != nil {
					return nil, err
				}
				return func() error { return c.Wait(context.Background()) }, nil
			})
		}},
		{"plain256", func(ctx context.Context) (int, error) {
			return window(ctx, 256, func(ctx context.Context) (func() error, error) {
				c, err := plainCh.PublishWithDeferredConfirmWithContext(ctx, "patbus.bench.plain", "order.created", false, false,
					amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body})
				if err != nil {
					return nil, err
				}
				return func() error {
					if ok, err := c.WaitContext(context.Background()); err != nil || !ok {
						return fmt.Errorf("plain publish not confirmed: %v", err)
					}
					return nil
				}, nil
			})
		}},
		{"watermill64", func(ctx context.Context) (int, error) {
			return goroutines(ctx, 64, func(context.Context) error {
				return wpub.Publish(wtopic, message.NewMessage(watermill.NewUUID(), body))
			})
		}},
	}
	for _, c := range contenders { // warm up
		wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if _, err := c.run(wctx); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		wcancel()
	}
	purge()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rates := make([][]float64, len(contenders))
		for r := 0; r < 5; r++ {
			for k, c := range contenders {
				rctx, rcancel := context.WithTimeout(ctx, round)
				start := time.Now()
				n, err := c.run(rctx)
				rcancel()
				if err != nil {
					b.Fatalf("%s: %v", c.name, err)
				}
				rates[k] = append(rates[k], float64(n)/time.Since(start).Seconds())
				purge()
			}
		}
		med := make(map[string]float64, len(contenders))
		for k, c := range contenders {
			sort.Float64s(rates[k])
			med[c.name] = rates[k][len(rates[k])/2]
			b.ReportMetric(med[c.name], c.name+"-events/s")
		}
		b.ReportMetric(med["async256"]/med["plain256"], "async256/plain256")
		b.ReportMetric(med["emit64"]/med["watermill64"], "emit64/watermill64")
	}
}

// goroutines runs publish from n goroutines until ctx ends and counts the
// publishes that returned nil.
func goroutines(ctx context.Context, n int, publish func(ctx context.Context) error) (int, error) {
	var count atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := publish(context.Background()); err != nil {
					once.Do(func() { first = err })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(count.Load()), first
}

// window publishes until ctx ends, keeping at most n publishes waiting for
// their confirm, and counts the confirmed ones.
func window(ctx context.Context, n int, publish func(ctx context.Context) (func() error, error)) (int, error) {
	waits := make(chan func() error, n)
	errc := make(chan error, 1)
	var confirmed int
	go func() {
		for w := range waits {
			if err := w(); err != nil {
				select {
				case errc <- err:
				default:
				}
				continue
			}
			confirmed++
		}
		close(errc)
	}()
	for ctx.Err() == nil {
		w, err := publish(context.Background())
		if err != nil {
			close(waits)
			<-errc
			return confirmed, err
		}
		waits <- w
	}
	close(waits)
	if err := <-errc; err != nil {
		return confirmed, err
	}
	return confirmed, nil
}
