package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
)

// EventsExchange is the durable topic exchange on which Emit publishes.
const EventsExchange = "patbus.events"

// maxName is AMQP's limit on a short string (exchange, queue, routing key).
const maxName = 255

// PubSub emits events and makes subscriptions on one broker. It is safe for
// concurrent use. It does not own the broker: Close leaves it open.
type PubSub struct {
	b   bus.Broker
	cfg config
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	declared map[string]bus.ExchangeKind // exchanges this PubSub declared
	groups   map[string]string           // group queue -> signature of its bindings
	subs     map[*Subscription]struct{}
}

// New returns a PubSub on b and declares EventsExchange. The options are
// validated at once; a problem gives an error wrapping ErrInvalidConfig.
func New(b bus.Broker, opts ...Option) (*PubSub, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: nil broker", ErrInvalidConfig)
	}
	p := &PubSub{
		b:        b,
		cfg:      cfg,
		log:      cfg.logger,
		declared: map[string]bus.ExchangeKind{},
		groups:   map[string]string{},
		subs:     map[*Subscription]struct{}{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.declareExchange(ctx, EventsExchange, bus.Topic); err != nil {
		return nil, err
	}
	return p, nil
}

// declareExchange declares a durable exchange once per PubSub.
func (p *PubSub) declareExchange(ctx context.Context, name string, kind bus.ExchangeKind) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("%w: exchange name must be 1 to %d bytes", ErrInvalidConfig, maxName)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	k, ok := p.declared[name]
	p.mu.Unlock()
	if ok {
		if k != kind {
			return fmt.Errorf("%w: exchange %s is %s, not %s", ErrInvalidConfig, name, k, kind)
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

// Emit publishes an event on EventsExchange with the routing key of pattern
// and returns once the broker confirmed it. The body is data's JSON object
// (data may be nil, a struct, a map, or a []byte or json.RawMessage holding
// a JSON object) with the pattern's pairs added; a pair that data holds with
// another value is an error wrapping ErrInvalidData. A pattern with globs
// cannot be emitted (patterns.ErrInvalidPattern). The context's tx id
// (wire.Tx) travels with the event; with none, a fresh one is made. If ctx
// ends before the confirm, the error wraps bus.ErrUnconfirmed: the event may
// still be delivered.
func (p *PubSub) Emit(ctx context.Context, pattern string, data any) error {
	pat, err := patterns.Parse(pattern)
	if err != nil {
		return fmt.Errorf("pubsub: emit: %w", err)
	}
	if pat.HasGlob() {
		return fmt.Errorf("pubsub: emit %s: %w: an event's pattern cannot hold globs", pat, patterns.ErrInvalidPattern)
	}
	key, err := patterns.Key(pat)
	if err != nil {
		return fmt.Errorf("pubsub: emit %s: %w", pat, err)
	}
	body, err := eventBody(pat, data)
	if err != nil {
		return fmt.Errorf("pubsub: emit %s: %w", pat, err)
	}
	return p.publish(ctx, EventsExchange, key, pat.String(), body)
}

// eventBody merges the pattern's pairs into data's JSON object.
func eventBody(pat patterns.Pattern, data any) ([]byte, error) {
	raw, err := encode(data)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if data != nil && !bytes.Equal(raw, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return nil, fmt.Errorf("%w: an event's data must be a JSON object: %w", ErrInvalidData, err)
		}
	}
	for _, pr := range pat.Pairs() {
		if _, ok := obj[pr.Key]; ok {
			one, err := patterns.FromPairs(pr)
			if err != nil {
				return nil, err
			}
			if !one.Match(obj) {
				return nil, fmt.Errorf("%w: data holds %s=%v, the pattern %s:%s", ErrInvalidData, pr.Key, obj[pr.Key], pr.Key, pr.Value)
			}
			continue
		}
		obj[pr.Key] = pr.JSON()
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidData, err)
	}
	return out, nil
}

// encode turns data into JSON: []byte and json.RawMessage as they are (they
// must be valid JSON), everything else with encoding/json.
func encode(data any) ([]byte, error) {
	switch v := data.(type) {
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: raw message is not valid JSON", ErrInvalidData)
		}
		return v, nil
	case []byte:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: []byte is not valid JSON", ErrInvalidData)
		}
		return v, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidData, err)
	}
	return b, nil
}

// PublishFanout publishes data (JSON-encoded; []byte and json.RawMessage as
// they are) to the fanout exchange, declaring it durable if needed, and
// returns once the broker confirmed it. Every queue bound to the exchange
// gets a copy; with none bound, the broker drops the message.
func (p *PubSub) PublishFanout(ctx context.Context, exchange string, data any) error {
	return p.publishClassic(ctx, exchange, bus.Fanout, "", data)
}

// PublishDirect publishes data to the direct exchange with the routing key,
// as PublishFanout does; queues bound with exactly that key get a copy.
func (p *PubSub) PublishDirect(ctx context.Context, exchange, key string, data any) error {
	return p.publishClassic(ctx, exchange, bus.Direct, key, data)
}

// PublishTopic publishes data to the topic exchange with the routing key (words
// separated by '.'), as PublishFanout does; queues whose binding keys match
// it ("*.error", "#.info") get a copy.
func (p *PubSub) PublishTopic(ctx context.Context, exchange, key string, data any) error {
	return p.publishClassic(ctx, exchange, bus.Topic, key, data)
}

func (p *PubSub) publishClassic(ctx context.Context, exchange string, kind bus.ExchangeKind, key string, data any) error {
	if len(key) > maxName {
		return fmt.Errorf("%w: routing key longer than %d bytes", ErrInvalidConfig, maxName)
	}
	body, err := encode(data)
	if err != nil {
		return fmt.Errorf("pubsub: publish to %s: %w", exchange, err)
	}
	if err := p.declareExchange(ctx, exchange, kind); err != nil {
		return err
	}
	return p.publish(ctx, exchange, key, "", body)
}

// publish sends one JSON message and waits for the confirm.
func (p *PubSub) publish(ctx context.Context, exchange, key, pattern string, body []byte) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	tx := wire.Tx(ctx)
	if tx == "" {
		tx = wire.NewID()
	}
	h := map[string]any{
		wire.HeaderTx:          tx,
		wire.HeaderTraceparent: wire.Traceparent(tx),
	}
	if pattern != "" {
		h[wire.HeaderPattern] = pattern
	}
	msg := bus.Message{
		Headers:     h,
		ContentType: wire.ContentTypeJSON,
		MessageID:   wire.NewID(),
		Persistent:  !p.cfg.transient,
		Timestamp:   time.Now(),
		Body:        body,
	}
	if err := bus.PublishAndWait(ctx, p.b, exchange, key, msg); err != nil {
		return fmt.Errorf("pubsub: publish to %s key %q: %w", exchange, key, err)
	}
	return nil
}

// Shutdown stops every subscription this PubSub made gracefully (see
// Subscription.Shutdown), then refuses further calls with ErrClosed. It
// returns ctx.Err() (joined with other failures) if ctx ends first.
func (p *PubSub) Shutdown(ctx context.Context) error {
	subs := p.markClosed()
	var errs []error
	for _, s := range subs {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops every subscription this PubSub made at once (see
// Subscription.Close) and refuses further calls with ErrClosed. It never
// closes the broker. Close is idempotent.
func (p *PubSub) Close() error {
	for _, s := range p.markClosed() {
		_ = s.Close()
	}
	return nil
}

func (p *PubSub) markClosed() []*Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	subs := make([]*Subscription, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	return subs
}
