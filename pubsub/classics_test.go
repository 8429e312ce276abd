package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/pubsub"
)

func busConsume() bus.ConsumeOptions { return bus.ConsumeOptions{Prefetch: 10} }

// Exchanges of these tests have fixed names (the bus cannot delete
// exchanges); events carry a run id so that other runs do not count.

func TestFanoutEverySubscriberGetsEverything(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		const ex = "patbus.test.pubsub.fanout"
		run := uniq()
		ls := []*ledger{newLedger(), newLedger(), newLedger()}
		for _, l := range ls {
			l := l
			s, err := e.pubsub().SubscribeFanout(ctx, ex, typed(func(ctx context.Context, ev *pubsub.Event, v payload) error {
				if ev.Exchange == ex && len(v.ID) > len(run) && v.ID[:len(run)] == run {
					l.add(v.ID)
				}
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
		}
		p := e.pubsub()
		const n = 50
		for i := 0; i < n; i++ {
			if err := p.PublishFanout(ctx, ex, payload{ID: fmt.Sprint(run, i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every subscriber to see every message", func() bool {
			for _, l := range ls {
				if len(l.ids()) != n {
					return false
				}
			}
			return true
		}, ls...)
		for i, l := range ls {
			for id, c := range l.ids() {
				if c != 1 {
					t.Errorf("subscriber %d saw %s %d times", i, id, c)
				}
			}
		}
	})
}

func TestDirectAndTopicRouting(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		run := uniq()
		p := e.pubsub()
		collect := func(l *ledger) pubsub.Handler {
			return typed(func(ctx context.Context, ev *pubsub.Event, v payload) error {
				if len(v.ID) > len(run) && v.ID[:len(run)] == run {
					l.add(ev.RoutingKey)
				}
				return nil
			})
		}
		const dex, tex = "patbus.test.pubsub.direct", "patbus.test.pubsub.topic"
		errs, infoWarn := newLedger(), newLedger()
		topicErr, topicInfo := newLedger(), newLedger()
		for _, s := range []struct {
			sub func() (*pubsub.Subscription, error)
		}{
			{func() (*pubsub.Subscription, error) {
				return p.SubscribeDirect(ctx, dex, []string{"error"}, collect(errs))
			}},
			{func() (*pubsub.Subscription, error) {
				return p.SubscribeDirect(ctx, dex, []string{"info", "warning"}, collect(infoWarn))
			}},
			{func() (*pubsub.Subscription, error) {
				return p.SubscribeTopic(ctx, tex, []string{"*.error"}, collect(topicErr))
			}},
			{func() (*pubsub.Subscription, error) {
				return p.SubscribeTopic(ctx, tex, []string{"#.info"}, collect(topicInfo))
			}},
		} {
			sub, err := s.sub()
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
		}
		for _, k := range []string{"info", "warning", "error", "severity", "end"} {
			if err := p.PublishDirect(ctx, dex, k, payload{ID: run + k}); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"account-server.info", "config-server.info", "config-server.error", "a.b.error", "info", "end"} {
			if err := p.PublishTopic(ctx, tex, k, payload{ID: run + k}); err != nil {
				t.Fatal(err)
			}
		}
		// "end" reaches no one; mark the end with messages that every
		// subscriber gets, in order after the others.
		if err := p.PublishDirect(ctx, dex, "error", payload{ID: run + "z"}); err != nil {
			t.Fatal(err)
		}
		if err := p.PublishDirect(ctx, dex, "info", payload{ID: run + "z"}); err != nil {
			t.Fatal(err)
		}
		if err := p.PublishTopic(ctx, tex, "z.error", payload{ID: run + "z"}); err != nil {
			t.Fatal(err)
		}
		if err := p.PublishTopic(ctx, tex, "z.info", payload{ID: run + "z"}); err != nil {
			t.Fatal(err)
		}
		ls := []*ledger{errs, infoWarn, topicErr, topicInfo}
		ends := []string{"error", "info", "z.error", "z.info"}
		waitFor(t, "the end markers", func() bool {
			for i, l := range ls {
				if l.get(ends[i]) < 1 {
					return false
				}
			}
			return true
		}, ls...)
		want := []string{
			"map[error:2]",
			"map[info:2 warning:1]",
			"map[config-server.error:1 z.error:1]",
			"map[account-server.info:1 config-server.info:1 info:1 z.info:1]",
		}
		for i, l := range ls {
			if got := fmt.Sprint(l.ids()); got != want[i] {
				t.Errorf("subscriber %d got %s, want %s", i, got, want[i])
			}
		}
	})
}

func TestClassicGroupsShareAQueue(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		const ex = "patbus.test.pubsub.fanout-group"
		run := uniq()
		group := "g-" + run
		e.deleteQueues(ex+"."+group, ex+"."+group+".dead")
		l := newLedger()
		h := typed(func(ctx context.Context, ev *pubsub.Event, v payload) error { l.add(v.ID); return nil })
		for i := 0; i < 2; i++ {
			s, err := e.pubsub().SubscribeFanout(ctx, ex, h, pubsub.Group(group))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
		}
		p := e.pubsub()
		const n = 40
		for i := 0; i < n; i++ {
			if err := p.PublishFanout(ctx, ex, payload{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every message once", func() bool { return len(l.ids()) == n }, l)
		for id, c := range l.ids() {
			if c != 1 {
				t.Errorf("%s seen %d times", id, c)
			}
		}
	})
}

func TestClassicsRejectBadArguments(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		nop := pubsub.HandlerFunc(func(context.Context, *pubsub.Event) error { return nil })
		if _, err := p.SubscribeDirect(ctx, "patbus.test.pubsub.direct", nil, nop); !errors.Is(err, pubsub.ErrInvalidConfig) {
			t.Errorf("no keys: %v", err)
		}
		if _, err := p.SubscribeTopic(ctx, "patbus.test.pubsub.topic", nil, nop); !errors.Is(err, pubsub.ErrInvalidConfig) {
			t.Errorf("no binding keys: %v", err)
		}
		if err := p.PublishFanout(ctx, "", 1); !errors.Is(err, pubsub.ErrInvalidConfig) {
			t.Errorf("empty exchange: %v", err)
		}
		// The same exchange name cannot be used with another kind, whether
		// this PubSub or another one declared it.
		if err := p.PublishDirect(ctx, "patbus.test.pubsub.direct", "x", 1); err != nil {
			t.Fatal(err)
		}
		if err := p.PublishTopic(ctx, "patbus.test.pubsub.direct", "x", 1); !errors.Is(err, pubsub.ErrInvalidConfig) {
			t.Errorf("topic publish on a direct exchange, same PubSub: %v", err)
		}
		if err := e.pubsub().PublishTopic(ctx, "patbus.test.pubsub.direct", "x", 1); !errors.Is(err, bus.ErrPrecondition) {
			t.Errorf("topic publish on a direct exchange, other PubSub: %v", err)
		}
	})
}
