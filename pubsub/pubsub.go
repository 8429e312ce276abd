package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// EventsExchange is the durable topic exchange on which Emit publishes.
const EventsExchange = wire.EventsExchange

// PubSub emits events and makes subscriptions on one broker. It is safe
// for concurrent use. It does not own the broker: Shutdown and Close stop
// its subscriptions and leave the broker open.
type PubSub struct {
	b    bus.Broker
	cfg  config
	pats patternCache

	closed atomic.Bool // set under mu, read without it on the publish path

	mu       sync.Mutex
	declared map[string]bus.ExchangeKind // exchanges this PubSub declared
	groups   map[string]string           // group queue -> signature of its bindings
	subs     map[*Subscription]struct{}
}

// New returns a PubSub on b and declares EventsExchange; ctx bounds that
// declaration, also while the broker is unreachable. The options are the
// defaults of every subscription it makes (see Option); they are
// validated at once, and every problem is reported in one error wrapping
// ErrInvalidConfig.
func New(ctx context.Context, b bus.Broker, opts ...Option) (*PubSub, error) {
	cfg := defaults().with(opts)
	cfg.group, cfg.emptyGroup = "", false // subscriptions choose their own
	problems := cfg.check()
	if b == nil {
		problems = append(problems, errors.New("nil broker"))
	}
	if err := invalid(problems); err != nil {
		return nil, err
	}
	p := &PubSub{
		b:        b,
		cfg:      cfg,
		declared: map[string]bus.ExchangeKind{},
		groups:   map[string]string{},
		subs:     map[*Subscription]struct{}{},
	}
	if err := p.declareExchange(ctx, EventsExchange, bus.Topic); err != nil {
		return nil, err
	}
	return p, nil
}

// errClosed is the error of every call after Shutdown or Close.
func errClosed(op string) error { return fmt.Errorf("pubsub: %s: %w", op, ErrClosed) }

// declareExchange declares a durable exchange once per PubSub.
func (p *PubSub) declareExchange(ctx context.Context, name string, kind bus.ExchangeKind) error {
	if name == "" || len(name) > bus.MaxNameLen {
		return fmt.Errorf("pubsub: %w: exchange name must be 1 to %d bytes", ErrInvalidConfig, bus.MaxNameLen)
	}
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return errClosed("declare exchange " + name)
	}
	k, ok := p.declared[name]
	p.mu.Unlock()
	if ok {
		if k != kind {
			return fmt.Errorf("pubsub: %w: exchange %s is %s, not %s", ErrInvalidConfig, name, k, kind)
		}
		return nil
	}
	if err := p.b.DeclareExchange(ctx, bus.Exchange{Name: name, Kind: kind, Durable: true}); err != nil {
		return fmt.Errorf("pubsub: declare exchange %s: %w", name, err)
	}
	p.mu.Lock()
	p.declared[name] = kind
	p.mu.Unlock()
	return nil
}

// Shutdown refuses further calls with ErrClosed and stops every
// subscription this PubSub made gracefully (Subscription.Shutdown): intake
// stops, running handlers finish and their events are settled. If ctx ends
// first, the handlers' contexts are canceled, Shutdown waits for them
// (their events go back to their queues) and returns ctx.Err(). It never
// closes the broker.
func (p *PubSub) Shutdown(ctx context.Context) error {
	subs := p.markClosed()
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func(i int, s *Subscription) {
			defer wg.Done()
			errs[i] = s.Shutdown(ctx)
		}(i, s)
	}
	wg.Wait()
	if ctx.Err() != nil && errors.Join(errs...) != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// Close refuses further calls with ErrClosed and stops every subscription
// this PubSub made at once (Subscription.Close): the handlers' contexts are
// canceled and unsettled events go back to their queues. It waits for the
// handlers to return and never closes the broker. Close is idempotent.
func (p *PubSub) Close() error {
	subs := p.markClosed()
	errs := make([]error, len(subs))
	for i, s := range subs {
		errs[i] = s.Close()
	}
	return errors.Join(errs...)
}

func (p *PubSub) markClosed() []*Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed.Store(true)
	subs := make([]*Subscription, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	return subs
}
