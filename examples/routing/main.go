// Command routing is RabbitMQ's fourth tutorial, routing,
// written with patbus: log lines are published to the direct exchange
// "direct_logs" with their rank (info, error, warning, severity) as the
// routing key, and each subscriber, bound with one rank, receives only the
// lines of its rank.
//
// It runs on the in-memory broker by default, and on RabbitMQ when
// PATBUS_AMQP_URL is set or -amqp is given:
//
//	go run ./examples/routing
//	go run ./examples/routing -amqp amqp://guest:guest@127.0.0.1:5672/
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

// Exchange is the direct exchange, as in the tutorial.
const Exchange = "direct_logs"

// Ranks are the routing keys, one subscriber each.
var Ranks = []string{"info", "error", "warning", "severity"}

// Line is one log line and its rank.
type Line struct {
	Rank string
	Text string
}

// DefaultLines are the lines sent by the demo.
var DefaultLines = []Line{
	{"info", "service started"},
	{"warning", "disk 80% full"},
	{"error", "cannot reach the database"},
	{"info", "request served in 12ms"},
	{"severity", "high"},
	{"error", "request failed"},
}

func main() {
	start("routing", func(ctx context.Context, b bus.Broker, out io.Writer) error {
		return run(ctx, b, out, DefaultLines)
	})
}

// run starts a subscriber per rank, publishes the lines and returns once
// every subscriber has printed the lines of its rank, or when ctx ends.
func run(ctx context.Context, b bus.Broker, out io.Writer, lines []Line) (err error) {
	p := &printer{out: out}
	got := make(chan struct{}, len(lines))
	for _, rank := range Ranks {
		ps, err := pubsub.New(ctx, b)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, ps.Shutdown(sctx))
		}()
		_, err = ps.SubscribeDirect(ctx, Exchange, []string{rank}, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			var text string
			if err := ev.Decode(&text); err != nil {
				return err
			}
			p.Printf("[%s subscriber] [x] %s:%s", rank, ev.RoutingKey, text)
			got <- struct{}{}
			return nil
		}))
		if err != nil {
			return err
		}
	}

	publisher, err := pubsub.New(ctx, b)
	if err != nil {
		return err
	}
	defer publisher.Close()
	want := 0
	for _, l := range lines {
		if err := publisher.PublishDirect(ctx, Exchange, l.Rank, l.Text); err != nil {
			return err
		}
		p.Printf(" [x] Sent %s:%s", l.Rank, l.Text)
		for _, r := range Ranks {
			if r == l.Rank {
				want++
			}
		}
	}
	return await(ctx, got, want)
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
