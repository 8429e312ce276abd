// Command logs is the seed's third RabbitMQ demo, publish/subscribe, written
// with patbus: a publisher sends log lines to the fanout exchange "logs" and
// every subscriber gets every line through its own exclusive queue.
//
// It runs on the in-memory broker by default, and on RabbitMQ when
// PATBUS_AMQP_URL is set or -amqp is given:
//
//	go run ./examples/logs
//	go run ./examples/logs -subscribers 3 "info: Hello World!" "warning: disk"
//	go run ./examples/logs -amqp amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/exampleapp"
	"github.com/patbus/patbus/pubsub"
)

// Exchange is the fanout exchange, as in the seed.
const Exchange = "logs"

// DefaultMessages are the log lines sent when none are given.
var DefaultMessages = []string{
	"info: Hello World!",
	"warning: disk 80% full",
	"error: cannot reach the database",
}

func main() {
	subscribers := flag.Int("subscribers", 2, "number of subscribers")
	exampleapp.Main("logs", func(ctx context.Context, b bus.Broker, out io.Writer) error {
		messages := flag.Args()
		if len(messages) == 0 {
			messages = DefaultMessages
		}
		return run(ctx, b, out, messages, *subscribers)
	})
}

// run starts the subscribers, publishes the messages and returns once every
// subscriber has printed every message, or when ctx ends.
func run(ctx context.Context, b bus.Broker, out io.Writer, messages []string, subscribers int) (err error) {
	if subscribers < 1 {
		return errors.New("need at least one subscriber")
	}
	p := exampleapp.NewPrinter(out)
	got := make(chan struct{}, len(messages)*subscribers)

	// The subscribers: each its own exclusive queue bound to the exchange.
	for i := 1; i <= subscribers; i++ {
		ps, err := pubsub.New(b)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, ps.Shutdown(sctx))
		}()
		_, err = ps.SubscribeFanout(ctx, Exchange, pubsub.Typed(func(ctx context.Context, line string) error {
			p.Printf("subscriber %d: [x] %s", i, line)
			got <- struct{}{}
			return nil
		}))
		if err != nil {
			return err
		}
	}

	// The publisher.
	publisher, err := pubsub.New(b)
	if err != nil {
		return err
	}
	defer publisher.Close()
	for _, m := range messages {
		if err := publisher.PublishFanout(ctx, Exchange, m); err != nil {
			return err
		}
		p.Printf(" [x] Sent %s", m)
	}
	return exampleapp.Await(ctx, got, len(messages)*subscribers)
}
