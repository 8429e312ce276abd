// Command topics is the seed's topic-routing RabbitMQ demo, written with
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
	"io"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/exampleapp"
	"github.com/patbus/patbus/pubsub"
)

// Exchange is the topic exchange, as in the seed.
const Exchange = "topic_logs"

// BindingKeys are the subscribers' binding keys, one subscriber each.
var BindingKeys = []string{"#.info", "*.error"}

// Line is one log line and its routing key.
type Line struct {
	Key  string
	Text string
}

// DefaultLines are the seed's lines.
var DefaultLines = []Line{
	{"account-server.info", "user 2 logged in"},
	{"config-server.info", "configuration reloaded"},
	{"config-server.error", "cannot read settings.json"},
}

func main() {
	exampleapp.Main("topics", func(ctx context.Context, b bus.Broker, out io.Writer) error {
		return run(ctx, b, out, DefaultLines)
	})
}

// run starts a subscriber per binding key, publishes the lines and returns
// once every subscriber has printed the lines its key matches, or when ctx
// ends.
func run(ctx context.Context, b bus.Broker, out io.Writer, lines []Line) (err error) {
	p := exampleapp.NewPrinter(out)
	got := make(chan struct{}, len(lines)*len(BindingKeys))
	for _, key := range BindingKeys {
		ps, err := pubsub.New(b)
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

	publisher, err := pubsub.New(b)
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
	return exampleapp.Await(ctx, got, want)
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
