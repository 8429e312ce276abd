package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
)

// Subscription is a running consumer that hands events to a Handler. It is
// safe for concurrent use. Stop it with Shutdown or Close.
type Subscription struct {
	p       *PubSub
	queue   string
	group   string
	sig     string
	pat     *patterns.Pattern // checked with Match when set
	h       Handler
	sub     bus.Subscription
	log     *slog.Logger
	deadMsg string // where rejected events go, for the logs

	ctx    context.Context // handlers' context, cancelled by Close
	cancel context.CancelFunc

	stopping chan struct{}
	stopOnce sync.Once
	endOnce  sync.Once
	wg       sync.WaitGroup

	endMu sync.Mutex
	ended error // why the consumer ended by itself, if it did
}

// Subscribe subscribes h to the events whose pattern holds the exact pairs
// of pattern and whose body matches its glob pairs (see the package
// documentation). Options: Group or Broadcast (the default), Concurrency.
// The subscription runs until Shutdown or Close, or until its queue is
// deleted or the broker closed (Done and Err tell); ctx bounds only the
// setting up.
func (p *PubSub) Subscribe(ctx context.Context, pattern string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	pat, err := patterns.Parse(pattern)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe: %w", err)
	}
	key, err := patterns.BindingKey(pat)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe %s: %w", pat, err)
	}
	return p.subscribe(ctx, EventsExchange, bus.Topic, []string{key}, &pat, "pattern "+pat.String(), h, opts)
}

// SubscribeFanout subscribes h to every message published to the fanout
// exchange (declared durable if needed). With Broadcast (the default) every
// subscriber gets every message through its own exclusive queue.
func (p *PubSub) SubscribeFanout(ctx context.Context, exchange string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	return p.subscribe(ctx, exchange, bus.Fanout, []string{""}, nil, "fanout", h, opts)
}

// SubscribeDirect subscribes h to the messages published to the direct
// exchange with one of the keys (at least one).
func (p *PubSub) SubscribeDirect(ctx context.Context, exchange string, keys []string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no routing keys", ErrInvalidConfig)
	}
	return p.subscribe(ctx, exchange, bus.Direct, keys, nil, "direct "+strings.Join(keys, ","), h, opts)
}

// SubscribeTopic subscribes h to the messages published to the topic
// exchange whose routing keys match one of the binding keys (at least one):
// '*' stands for one word, '#' for zero or more ("*.error", "#.info").
func (p *PubSub) SubscribeTopic(ctx context.Context, exchange string, bindingKeys []string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if len(bindingKeys) == 0 {
		return nil, fmt.Errorf("%w: no binding keys", ErrInvalidConfig)
	}
	return p.subscribe(ctx, exchange, bus.Topic, bindingKeys, nil, "topic "+strings.Join(bindingKeys, ","), h, opts)
}

func (p *PubSub) subscribe(ctx context.Context, exchange string, kind bus.ExchangeKind, keys []string, pat *patterns.Pattern, sig string, h Handler, opts []SubscribeOption) (*Subscription, error) {
	sc, err := newSubConfig(opts)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidConfig)
	}
	for _, k := range keys {
		if len(k) > maxName {
			return nil, fmt.Errorf("%w: binding key longer than %d bytes", ErrInvalidConfig, maxName)
		}
	}
	if err := p.declareExchange(ctx, exchange, kind); err != nil {
		return nil, err
	}
	s := &Subscription{p: p, group: sc.group, sig: sig, h: h, stopping: make(chan struct{})}
	if sc.group != "" {
		s.queue = exchange + "." + sc.group
		if len(s.queue)+len(".dead") > maxName {
			return nil, fmt.Errorf("%w: group queue name %.40q… too long", ErrInvalidConfig, s.queue)
		}
		if err := p.claimGroup(s.queue, sig); err != nil {
			return nil, err
		}
		// From here on, a failure must give the claim back.
		if err := s.declareGroup(ctx); err != nil {
			p.releaseGroup(s.queue)
			return nil, err
		}
		// Only group queues can hold bindings the subscription no longer
		// wants, so only they check exact pairs as well as globs.
		s.pat = pat
	} else {
		id := wire.NewID()[:16]
		s.queue = exchange + ".bcast." + id
		if len(s.queue) > maxName {
			s.queue = "patbus.bcast." + id
		}
		if _, err := p.b.DeclareQueue(ctx, bus.Queue{Name: s.queue, Exclusive: true, AutoDelete: true}); err != nil {
			return nil, fmt.Errorf("pubsub: declare queue %s: %w", s.queue, err)
		}
		s.deadMsg = "dropped"
		if pat != nil && pat.HasGlob() {
			s.pat = pat
		}
	}
	s.log = p.log.With("queue", s.queue)
	cleanup := func() {
		if sc.group != "" {
			p.releaseGroup(s.queue)
		} else {
			_ = p.b.DeleteQueue(context.Background(), s.queue)
		}
	}
	for _, k := range keys {
		if err := p.b.Bind(ctx, bus.Binding{Exchange: exchange, Queue: s.queue, Key: k}); err != nil {
			cleanup()
			return nil, fmt.Errorf("pubsub: bind %s to %s with %q: %w", s.queue, exchange, k, err)
		}
	}
	prefetch := p.cfg.prefetch
	if sc.concurrency > prefetch {
		prefetch = sc.concurrency
	}
	sub, err := p.b.Consume(ctx, s.queue, bus.ConsumeOptions{Prefetch: prefetch})
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("pubsub: consume %s: %w", s.queue, err)
	}
	s.sub = sub
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(sc.concurrency)
	for i := 0; i < sc.concurrency; i++ {
		go s.loop()
	}
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.subs[s] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		_ = s.Close()
		return nil, ErrClosed
	}
	return s, nil
}

// declareGroup declares a group's queue and its dead-letter queue.
func (s *Subscription) declareGroup(ctx context.Context) error {
	durable := !s.p.cfg.transient
	dead := s.queue + ".dead"
	if _, err := s.p.b.DeclareQueue(ctx, bus.Queue{Name: dead, Durable: durable}); err != nil {
		return fmt.Errorf("pubsub: declare queue %s: %w", dead, err)
	}
	q := bus.Queue{Name: s.queue, Durable: durable, DeadLetterExchange: "", DeadLetterKey: dead}
	if _, err := s.p.b.DeclareQueue(ctx, q); err != nil {
		return fmt.Errorf("pubsub: declare queue %s: %w", s.queue, err)
	}
	s.deadMsg = "dead-lettered to " + dead
	return nil
}

// claimGroup records that this PubSub subscribes the group queue with sig.
func (p *PubSub) claimGroup(queue, sig string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if old, ok := p.groups[queue]; ok && old != sig {
		return fmt.Errorf("%w: queue %s is already subscribed here with %s, not %s", ErrInvalidConfig, queue, old, sig)
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

// Queue returns the name of the queue the subscription consumes.
func (s *Subscription) Queue() string { return s.queue }

// Done is closed once the subscription stops taking events: when Shutdown
// or Close begins, or when its consumer ends by itself (its queue was
// deleted, the broker closed), which Err then explains. A subscription
// whose consumer ended should be closed; Subscribe again declares its
// queue again.
func (s *Subscription) Done() <-chan struct{} { return s.stopping }

// Err reports why the consumer ended by itself: an error wrapping
// bus.ErrNotFound when the queue was deleted, bus.ErrClosed when the
// broker closed. It is nil otherwise.
func (s *Subscription) Err() error {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.ended
}

// Shutdown stops the subscription gracefully: it takes no more events, lets
// running handlers finish and ack, hands back what it had not started, and
// releases the consumer. If ctx ends first, it cancels the handlers'
// context, waits for them to return and returns ctx.Err(); unacked events go
// back to the queue. Shutdown is idempotent.
func (s *Subscription) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.sub.Cancel(ctx)
	if err != nil {
		s.cancel()
		_ = s.sub.Cancel(context.Background())
	}
	s.wg.Wait()
	s.end()
	if err != nil {
		return fmt.Errorf("pubsub: shutdown of %s: %w", s.queue, err)
	}
	return nil
}

// Close stops the subscription at once: the handlers' context is cancelled,
// the consumer released and unacked events go back to the queue. It waits
// for the handlers to return. Close is idempotent.
func (s *Subscription) Close() error {
	s.stop()
	s.cancel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.sub.Cancel(ctx)
	s.wg.Wait()
	s.end()
	return nil
}

func (s *Subscription) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// end releases what the subscription holds in its PubSub.
func (s *Subscription) end() {
	s.endOnce.Do(func() {
		s.cancel()
		s.p.mu.Lock()
		delete(s.p.subs, s)
		s.p.mu.Unlock()
		if s.group != "" {
			s.p.releaseGroup(s.queue)
		}
	})
}

// loop is one handler goroutine.
func (s *Subscription) loop() {
	defer s.wg.Done()
	deliveries := s.sub.Deliveries()
	for {
		select {
		case <-s.stopping:
			return
		case d, ok := <-deliveries:
			if !ok {
				if err := s.sub.Err(); err != nil {
					s.log.Warn("pubsub: consumer ended", "err", err)
					s.endMu.Lock()
					s.ended = fmt.Errorf("pubsub: consumer of %s ended: %w", s.queue, err)
					s.endMu.Unlock()
				}
				s.stop()
				return
			}
			s.handle(d)
		}
	}
}

// handle runs the handler on one delivery and settles it.
func (s *Subscription) handle(d *bus.Delivery) {
	if s.pat != nil {
		obj, ok := decodeObject(d.Body)
		if !ok {
			s.log.Error("pubsub: event body is not a JSON object; rejected, "+s.deadMsg, "id", d.MessageID)
			s.settle(d, d.Nack(false), "reject")
			return
		}
		if !s.pat.Match(obj) {
			s.log.Debug("pubsub: event does not match the subscription; skipped", "id", d.MessageID, "key", d.RoutingKey)
			s.settle(d, d.Ack(), "ack")
			return
		}
	}
	ev := newEvent(d)
	ctx := s.ctx
	if ev.Tx != "" {
		ctx = wire.WithTx(ctx, ev.Tx)
	}
	err := s.call(ctx, ev)
	switch {
	case err == nil:
		s.settle(d, d.Ack(), "ack")
	case s.ctx.Err() != nil:
		s.settle(d, d.Nack(true), "nack")
	case !d.Redelivered:
		s.log.Warn("pubsub: handler failed; event requeued once", "id", ev.ID, "err", err)
		s.settle(d, d.Nack(true), "nack")
	default:
		s.log.Error("pubsub: handler failed again; event rejected, "+s.deadMsg, "id", ev.ID, "err", err)
		s.settle(d, d.Nack(false), "reject")
	}
}

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(ctx context.Context, ev *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("pubsub: handler panicked", "id", ev.ID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return s.h.HandleEvent(ctx, ev)
}

func (s *Subscription) settle(d *bus.Delivery, err error, what string) {
	if err != nil {
		s.log.Warn("pubsub: "+what+" failed; the event will be delivered again", "id", d.MessageID, "err", err)
	}
}

// decodeObject decodes a JSON object with numbers kept as json.Number, so
// that they compare as Patrun compares them.
func decodeObject(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, false
	}
	return obj, true
}
