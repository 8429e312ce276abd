package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
)

// source is what a subscription consumes: an exchange and the keys its
// queue is bound with.
type source struct {
	exchange string
	kind     bus.ExchangeKind
	keys     []string
	keysName string            // what the keys are called, for errors
	pat      *patterns.Pattern // the subscription's pattern, for Subscribe
	sig      string            // the bindings, to compare the instances of a group
}

// Subscribe subscribes h to the events whose pattern holds the exact
// pairs of pattern and whose body matches its glob pairs (see the package
// documentation). Options: Group or Broadcast (the default), and the
// options of New (WithPrefetch, WithConcurrency, WithMiddleware,
// WithLogger, WithTransient), which override New's for this subscription.
// Arguments and options are validated at once; every problem is reported
// in one error wrapping ErrInvalidConfig.
//
// The subscription runs until Shutdown or Close, or until its queue is
// deleted or the broker closed (Done and Err tell); ctx bounds only the
// setting up, but its values reach the handlers' contexts.
func (p *PubSub) Subscribe(ctx context.Context, pattern string, h Handler, opts ...Option) (*Subscription, error) {
	pat, err := patterns.Parse(pattern)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe: %w", err)
	}
	key, err := patterns.BindingKey(pat)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe %s: %w", pat, err)
	}
	return p.subscribe(ctx, source{exchange: EventsExchange, kind: bus.Topic, keys: []string{key},
		keysName: "binding keys", pat: &pat, sig: "pattern " + pat.String()}, h, opts)
}

// SubscribeFanout subscribes h to every message published to the fanout
// exchange (declared durable if needed), with the options of Subscribe.
// With Broadcast (the default) every subscriber gets every message through
// its own exclusive queue.
func (p *PubSub) SubscribeFanout(ctx context.Context, exchange string, h Handler, opts ...Option) (*Subscription, error) {
	return p.subscribe(ctx, source{exchange: exchange, kind: bus.Fanout, keys: []string{""}, sig: "fanout"}, h, opts)
}

// SubscribeDirect subscribes h to the messages published to the direct
// exchange with one of the keys (at least one), with the options of
// Subscribe.
func (p *PubSub) SubscribeDirect(ctx context.Context, exchange string, keys []string, h Handler, opts ...Option) (*Subscription, error) {
	return p.subscribe(ctx, source{exchange: exchange, kind: bus.Direct, keys: keys, keysName: "routing keys",
		sig: "direct " + strings.Join(keys, ",")}, h, opts)
}

// SubscribeTopic subscribes h to the messages published to the topic
// exchange whose routing keys match one of the binding keys (at least
// one): '*' stands for one word, '#' for zero or more ("*.error",
// "#.info"). The options are those of Subscribe.
func (p *PubSub) SubscribeTopic(ctx context.Context, exchange string, bindingKeys []string, h Handler, opts ...Option) (*Subscription, error) {
	return p.subscribe(ctx, source{exchange: exchange, kind: bus.Topic, keys: bindingKeys, keysName: "binding keys",
		sig: "topic " + strings.Join(bindingKeys, ",")}, h, opts)
}

func (p *PubSub) subscribe(ctx context.Context, src source, h Handler, opts []Option) (*Subscription, error) {
	cfg := p.cfg.with(opts)
	problems := cfg.check()
	if h == nil {
		problems = append(problems, errors.New("nil handler"))
	}
	if len(src.keys) == 0 {
		problems = append(problems, fmt.Errorf("no %s", src.keysName))
	}
	for _, k := range src.keys {
		if len(k) > bus.MaxNameLen {
			problems = append(problems, fmt.Errorf("binding key %.40q… longer than %d bytes", k, bus.MaxNameLen))
		}
	}
	if src.exchange == "" || len(src.exchange) > bus.MaxNameLen {
		problems = append(problems, fmt.Errorf("exchange name must be 1 to %d bytes", bus.MaxNameLen))
	}
	queue := src.exchange + "." + cfg.group
	if cfg.group != "" && len(queue)+len(".dead") > bus.MaxNameLen {
		problems = append(problems, fmt.Errorf("group queue name %.40q… too long", queue))
	}
	if err := invalid(problems); err != nil {
		return nil, err
	}
	if err := p.declareExchange(ctx, src.exchange, src.kind); err != nil {
		return nil, err
	}
	s := &Subscription{p: p, group: cfg.group, log: cfg.logger}
	if cfg.group != "" {
		s.queue = queue
		if err := p.claimGroup(queue, src.sig); err != nil {
			return nil, err
		}
		// From here on, a failure must give the claim back.
		if err := s.declareGroup(ctx, cfg.transient); err != nil {
			p.releaseGroup(queue)
			return nil, err
		}
		// Only group queues can hold bindings the subscription no longer
		// wants, so only they check exact pairs as well as globs.
		s.pat = src.pat
	} else {
		id := wire.NewID()[:16]
		s.queue = src.exchange + ".bcast." + id
		if len(s.queue) > bus.MaxNameLen {
			s.queue = "patbus.bcast." + id
		}
		if _, err := p.b.DeclareQueue(ctx, bus.Queue{Name: s.queue, Exclusive: true, AutoDelete: true}); err != nil {
			return nil, fmt.Errorf("pubsub: declare queue %s: %w", s.queue, err)
		}
		s.fate = "dropped"
		if src.pat != nil && src.pat.HasGlob() {
			s.pat = src.pat
		}
	}
	cleanup := func() {
		if cfg.group != "" {
			p.releaseGroup(s.queue)
		} else {
			_ = p.b.DeleteQueue(context.WithoutCancel(ctx), s.queue)
		}
	}
	for _, k := range src.keys {
		if err := p.b.Bind(ctx, bus.Binding{Exchange: src.exchange, Queue: s.queue, Key: k}); err != nil {
			cleanup()
			return nil, fmt.Errorf("pubsub: bind %s to %s with %q: %w", s.queue, src.exchange, k, err)
		}
	}
	mw := cfg.middleware
	if s.pat != nil {
		mw = append([]patbus.Middleware{s.match}, mw...)
	}
	c, err := engine.Start(ctx, p.b, engine.Config{
		Kind:        patbus.KindEvent,
		Queue:       s.queue,
		Prefetch:    max(cfg.prefetch, cfg.concurrency),
		Concurrency: cfg.concurrency,
		Handler:     h,
		Middleware:  mw,
		Settle:      s.settle,
		Logger:      cfg.logger,
		Name:        "subscription",
	})
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("pubsub: consume %s: %w", s.queue, err)
	}
	s.c = c
	p.mu.Lock()
	closed := p.closed.Load()
	if !closed {
		p.subs[s] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		_ = s.Close()
		return nil, errClosed("subscribe")
	}
	return s, nil
}

// declareGroup declares a group's queue and its dead-letter queue.
func (s *Subscription) declareGroup(ctx context.Context, transient bool) error {
	dead := s.queue + ".dead"
	if _, err := s.p.b.DeclareQueue(ctx, bus.Queue{Name: dead, Durable: !transient}); err != nil {
		return fmt.Errorf("pubsub: declare queue %s: %w", dead, err)
	}
	q := bus.Queue{Name: s.queue, Durable: !transient, DeadLetterExchange: "", DeadLetterKey: dead}
	if _, err := s.p.b.DeclareQueue(ctx, q); err != nil {
		return fmt.Errorf("pubsub: declare queue %s: %w", s.queue, err)
	}
	s.fate = "dead-lettered to " + dead
	return nil
}

// claimGroup records that this PubSub subscribes the group queue with sig.
func (p *PubSub) claimGroup(queue, sig string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return errClosed("subscribe")
	}
	if old, ok := p.groups[queue]; ok && old != sig {
		return fmt.Errorf("pubsub: %w: queue %s is already subscribed here with %s, not %s", ErrInvalidConfig, queue, old, sig)
	}
	p.groups[queue] = sig
	return nil
}

// releaseGroup forgets the claim when no subscription of the group is left.
func (p *PubSub) releaseGroup(queue string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.subs {
		if s.queue == queue {
			return
		}
	}
	delete(p.groups, queue)
}
