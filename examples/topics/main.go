// Command topics is RabbitMQ's fifth tutorial, topics, written with
// patbus: log lines are published to the topic exchange "topic_logs" with
// "<facility>.<rank>" routing keys; one subscriber is bound with "#.info"
// (every info line, from any facility) and one with "*.error" (the error
// lines of one-word facilities).
//
// It runs on the in-memory broker by default, and on RabbitMQ when
// PATBUS_AMQP_URL is set or -amqp is given:
//
//	go run ./examples/topics
//	go run ./examples/topics -amqp amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/pubsub"
)

// Exchange is the topic exchange, as in the tutorial.
const Exchange = "topic_logs"

// BindingKeys are the subscribers' binding keys, one subscriber each.
var BindingKeys = []string{"#.info", "*.error"}

// Line is one log line and its routing key.
type Line struct {
	Key  string
	Text string
}

// DefaultLines are the lines the demo sends.
var DefaultLines = []Line{
	{"account-server.info", "user 2 logged in"},
	{"config-server.info", "configuration reloaded"},
	{"config-server.error", "cannot read settings.json"},
}

func main() {
	start("topics", func(ctx context.Context, b bus.Broker, out io.Writer) error {
		return run(ctx, b, out, DefaultLines)
	})
}

// run starts a subscriber per binding key, publishes the lines and returns
// once every subscriber has printed the lines its key matches, or when ctx
// ends.
func run(ctx context.Context, b bus.Broker, out io.Writer, lines []Line) (err error) {
	p := &printer{out: out}
	got := make(chan struct{}, len(lines)*len(BindingKeys))
	for _, key := range BindingKeys {
		ps, err := pubsub.New(ctx, b)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, ps.Shutdown(sctx))
		}()
		_, err = ps.SubscribeTopic(ctx, Exchange, []string{key}, pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			var text string
			if err := ev.Decode(&text); err != nil {
				return err
			}
			p.Printf("[%s] [x] %s:%s", key, ev.RoutingKey, text)
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
		if err := publisher.PublishTopic(ctx, Exchange, l.Key, l.Text); err != nil {
			return err
		}
		p.Printf(" [x] Sent %s:%s", l.Key, l.Text)
		for _, k := range BindingKeys {
			if topicMatch(k, l.Key) {
				want++
			}
		}
	}
	return await(ctx, got, want)
}

// topicMatch reports whether a topic binding key matches a routing key, as
// RabbitMQ decides it: '*' is one word, '#' zero or more. The demo uses it
// only to know how many lines to wait for.
func topicMatch(binding, key string) bool {
	return matchWords(strings.Split(binding, "."), strings.Split(key, "."))
}

func matchWords(b, k []string) bool {
	if len(b) == 0 {
		return len(k) == 0
	}
	switch b[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if matchWords(b[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && matchWords(b[1:], k[1:])
	default:
		return len(k) > 0 && b[0] == k[0] && matchWords(b[1:], k[1:])
	}
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
