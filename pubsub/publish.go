package pubsub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// Emit publishes an event on EventsExchange with the routing key of
// pattern and returns once the broker confirmed it: a nil error means the
// broker has taken responsibility for the event. The body is data's JSON
// object (data may be nil, a struct, a map, or a []byte or json.RawMessage
// holding a JSON object) with the pattern's pairs added; a pair that data
// holds with another value is an error wrapping ErrInvalidInput. A pattern
// that does not parse or holds globs is an error wrapping
// patterns.ErrInvalidPattern. The event carries the canonical pattern
// (header patbus-pattern), the context's tx id (patbus.Tx; a fresh one
// when it has none) and a fresh message id, a UUID, by which subscribers
// deduplicate. If ctx ends before the confirm, the error wraps
// bus.ErrUnconfirmed: the event may still be delivered. An event with no
// subscriber is dropped by the broker, as RabbitMQ does; that is not an
// error.
//
// Emit waits for one confirm; to publish many events quickly, use
// EmitBatch, or EmitAsync with a window of confirmations outstanding.
func (p *PubSub) Emit(ctx context.Context, pattern string, data any) error {
	c, ep, err := p.emit(ctx, pattern, data)
	if err != nil {
		return err
	}
	if err := c.Wait(ctx); err != nil {
		return fmt.Errorf("pubsub: emit %s: %w", ep.canon, err)
	}
	return nil
}

// EmitAsync publishes an event as Emit does but does not wait for the
// broker's confirm: it returns once the event has been handed to the
// broker, with the Confirmation that resolves when the broker confirms it
// (nil), or fails with an error wrapping bus.ErrNacked or
// bus.ErrUnconfirmed. An event is only safe once its Confirmation resolved
// with nil. Keeping a window of confirmations outstanding, as RabbitMQ's
// publisher-confirm tutorial does, gives the best throughput; a
// Confirmation never resolved leaves the event's fate unknown (it may
// still be delivered, or published again by the broker connection).
// Errors of EmitAsync itself mean the event was not sent.
func (p *PubSub) EmitAsync(ctx context.Context, pattern string, data any) (*bus.Confirmation, error) {
	c, _, err := p.emit(ctx, pattern, data)
	return c, err
}

// EmitBatch emits one event of pattern for each data, as Emit does, but
// publishes them all before it waits for the confirms, so that many are in
// flight at once. It returns nil when every event was confirmed; an error
// of the pattern (nothing sent); or errors.Join of one *ItemError per
// event that failed (events not mentioned were confirmed). An event whose
// data is invalid is reported and the others are still sent.
func (p *PubSub) EmitBatch(ctx context.Context, pattern string, data ...any) error {
	ep, err := p.pats.get(pattern)
	if err != nil {
		return fmt.Errorf("pubsub: emit: %w", err)
	}
	confs := make([]*bus.Confirmation, len(data))
	var errs []error
	for i, d := range data {
		c, err := p.emitParsed(ctx, ep, d)
		if err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				// Nothing further can be sent.
				for j := i + 1; j < len(data); j++ {
					errs = append(errs, &ItemError{Index: j, Err: fmt.Errorf("pubsub: not sent: %w", err)})
				}
				break
			}
			continue
		}
		confs[i] = c
	}
	for i, c := range confs {
		if c == nil {
			continue
		}
		if err := c.Wait(ctx); err != nil {
			errs = append(errs, &ItemError{Index: i, Err: fmt.Errorf("pubsub: emit %s: %w", ep.canon, err)})
		}
	}
	return errors.Join(errs...)
}

// emit builds one event and publishes it without waiting for the confirm.
func (p *PubSub) emit(ctx context.Context, pattern string, data any) (*bus.Confirmation, *emitPattern, error) {
	ep, err := p.pats.get(pattern)
	if err != nil {
		return nil, nil, fmt.Errorf("pubsub: emit: %w", err)
	}
	c, err := p.emitParsed(ctx, ep, data)
	return c, ep, err
}

func (p *PubSub) emitParsed(ctx context.Context, ep *emitPattern, data any) (*bus.Confirmation, error) {
	body, err := ep.body(data)
	if err != nil {
		return nil, fmt.Errorf("pubsub: emit %s: %w", ep.canon, err)
	}
	c, err := p.publish(ctx, EventsExchange, ep.key, ep.canon, body)
	if err != nil {
		return nil, fmt.Errorf("pubsub: emit %s: %w", ep.canon, err)
	}
	return c, nil
}

// PublishFanout publishes data (JSON-encoded; []byte and json.RawMessage
// as they are, which must hold valid JSON) to the fanout exchange,
// declaring it durable if needed, and returns once the broker confirmed
// it. Every queue bound to the exchange gets a copy; with none bound, the
// broker drops the message. The message carries the context's tx id and a
// fresh UUID as its message id, as Emit's events do. If ctx ends before
// the confirm, the error wraps bus.ErrUnconfirmed.
func (p *PubSub) PublishFanout(ctx context.Context, exchange string, data any) error {
	return p.publishClassic(ctx, exchange, bus.Fanout, "", data)
}

// PublishDirect publishes data to the direct exchange with the routing
// key, as PublishFanout does; queues bound with exactly that key get a
// copy.
func (p *PubSub) PublishDirect(ctx context.Context, exchange, key string, data any) error {
	return p.publishClassic(ctx, exchange, bus.Direct, key, data)
}

// PublishTopic publishes data to the topic exchange with the routing key
// (words separated by '.'), as PublishFanout does; queues whose binding
// keys match it ("*.error", "#.info") get a copy.
func (p *PubSub) PublishTopic(ctx context.Context, exchange, key string, data any) error {
	return p.publishClassic(ctx, exchange, bus.Topic, key, data)
}

func (p *PubSub) publishClassic(ctx context.Context, exchange string, kind bus.ExchangeKind, key string, data any) error {
	if len(key) > bus.MaxNameLen {
		return fmt.Errorf("pubsub: publish to %s: %w: routing key longer than %d bytes", exchange, ErrInvalidConfig, bus.MaxNameLen)
	}
	body, err := encode(data)
	if err != nil {
		return fmt.Errorf("pubsub: publish to %s: %w", exchange, err)
	}
	if err := p.declareExchange(ctx, exchange, kind); err != nil {
		return err
	}
	c, err := p.publish(ctx, exchange, key, "", body)
	if err == nil {
		err = c.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("pubsub: publish to %s key %q: %w", exchange, key, err)
	}
	return nil
}

// publish sends one JSON message, persistent unless WithTransient, with
// the tx written compactly (wire.PutTx), the pattern when there is one,
// and a UUID as its message id.
func (p *PubSub) publish(ctx context.Context, exchange, key, pattern string, body []byte) (*bus.Confirmation, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	// The tx travels only when ctx carries one (a chain to carry on), and
	// the pattern as the message's type when it fits: every header costs
	// the broker (wire.ChainHeaders).
	h := wire.ChainHeaders(wire.Tx(ctx))
	var typ string
	if len(pattern) <= bus.MaxNameLen {
		typ = pattern
	} else {
		if h == nil {
			h = make(map[string]any, 1)
		}
		h[wire.HeaderPattern] = pattern
	}
	return p.b.Publish(ctx, exchange, key, bus.Message{
		Headers:     h,
		Type:        typ,
		ContentType: wire.ContentTypeJSON,
		MessageID:   uuid.NewString(),
		Persistent:  !p.cfg.transient,
		Timestamp:   time.Now(),
		Body:        body,
	})
}
