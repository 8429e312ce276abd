// Command logs is RabbitMQ's third tutorial, publish/subscribe, written
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
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/pubsub"
)

// Exchange is the fanout exchange, as in the tutorial.
const Exchange = "logs"

// DefaultMessages are the log lines sent when none are given.
var DefaultMessages = []string{
	"info: Hello World!",
	"warning: disk 80% full",
	"error: cannot reach the database",
}

func main() {
	subscribers := flag.Int("subscribers", 2, "number of subscribers")
	start("logs", func(ctx context.Context, b bus.Broker, out io.Writer) error {
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
	p := &printer{out: out}
	got := make(chan struct{}, len(messages)*subscribers)

	// The subscribers: each its own exclusive queue bound to the exchange.
	for i := 1; i <= subscribers; i++ {
		ps, err := pubsub.New(ctx, b)
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
	publisher, err := pubsub.New(ctx, b)
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
	return await(ctx, got, len(messages)*subscribers)
}

// start opens the broker (bus.Open: the in-memory broker for "") at the
// address of -amqp (PATBUS_AMQP_URL by default) and calls run with a
// context that SIGINT and SIGTERM cancel; it exits with status 1 if that
// fails.
func start(name string, run func(ctx context.Context, b bus.Broker, out io.Writer) error) {
	amqpURL := flag.String("amqp", os.Getenv("PATBUS_AMQP_URL"), "RabbitMQ address; empty means the in-memory broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() error {
		b, err := bus.Open(ctx, *amqpURL)
		if err != nil {
			return err
		}
		defer b.Close()
		return run(ctx, b, os.Stdout)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// printer writes whole lines from several goroutines (the subscribers print
// concurrently).
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func (p *printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
}

// await receives n values from ch, or returns ctx's error when it ends
// first.
func await(ctx context.Context, ch <-chan struct{}, n int) error {
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
