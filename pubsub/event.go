package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// Event is one message handed to a Handler. The handler may read it but must
// not keep it after it returns.
type Event struct {
	// Pattern is the canonical pattern the event was emitted with (header
	// wire.HeaderPattern); empty for the classics unless the publisher set it.
	Pattern string
	// Exchange and RoutingKey are where the event was published.
	Exchange   string
	RoutingKey string
	// ID is the message id given by the publisher.
	ID string
	// Body is the message body: JSON for everything this package publishes.
	Body []byte
	// Headers are the message's application headers.
	Headers map[string]any
	// Tx is the tx id the publisher's context carried.
	Tx string
	// Redelivered is true when the broker delivers the event again (after a
	// failed handler or a subscriber that stopped without acking it).
	Redelivered bool
	// Timestamp is when the event was published (zero if unknown).
	Timestamp time.Time
}

// Decode unmarshals the JSON body into v. Its error wraps ErrInvalidData.
func (e *Event) Decode(v any) error {
	if err := json.Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidData, err)
	}
	return nil
}

// Handler handles events. HandleEvent may be called from several goroutines
// at once when the subscription's Concurrency is above 1. Returning nil acks
// the event; an error or a panic requeues it once and then rejects it (see
// the package documentation). ctx carries the event's tx id (wire.Tx) and
// is cancelled when the subscription is closed or its graceful stop times
// out.
type Handler interface {
	HandleEvent(ctx context.Context, ev *Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev *Event) error

// HandleEvent calls f.
func (f HandlerFunc) HandleEvent(ctx context.Context, ev *Event) error { return f(ctx, ev) }

// Typed returns a Handler that decodes each event's body into a T and calls
// fn with the event and the value. An event that does not decode counts as
// a failed one (requeued once, then rejected); fn is not called.
func Typed[T any](fn func(ctx context.Context, ev *Event, v T) error) Handler {
	return HandlerFunc(func(ctx context.Context, ev *Event) error {
		var v T
		if err := ev.Decode(&v); err != nil {
			return fmt.Errorf("%w: into %T", err, v)
		}
		return fn(ctx, ev, v)
	})
}

func newEvent(d *bus.Delivery) *Event {
	ev := &Event{
		Exchange:    d.Exchange,
		RoutingKey:  d.RoutingKey,
		ID:          d.MessageID,
		Body:        d.Body,
		Headers:     d.Headers,
		Redelivered: d.Redelivered,
		Timestamp:   d.Timestamp,
	}
	if s, ok := d.Headers[wire.HeaderPattern].(string); ok {
		ev.Pattern = s
	}
	if s, ok := d.Headers[wire.HeaderTx].(string); ok {
		ev.Tx = s
	}
	return ev
}
