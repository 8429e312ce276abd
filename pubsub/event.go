package pubsub

import (
	"context"

	"github.com/patbus/patbus"
)

// Event is one consumed event as a handler and its middleware see it: the
// patbus.Message of kind patbus.KindEvent. Its fields that an event fills:
//
//   - Pattern: the canonical pattern it was emitted with (the header
//     patbus-pattern); "" for the classics unless the publisher set it;
//   - Exchange and RoutingKey: where it was published; Queue: the
//     subscription's queue;
//   - ID: the message id the publisher gave (a UUID from Emit and the
//     classic publishers), the key to deduplicate by, since an event may
//     be delivered more than once;
//   - Tx: the publisher's tx id (header patbus-tx, else the trace id of
//     traceparent; a fresh one when it sent neither), which the handler's
//     context carries too (patbus.Tx);
//   - Redelivered: true when the broker delivers it again (after a failed
//     handler or a subscriber that stopped without acking it);
//   - Timestamp, Headers, Body.
//
// Decode unmarshals the JSON body; its error wraps ErrInvalidInput, so an
// event whose handler returns it is rejected at once. A handler may read
// the Event but must not keep it, or its Body and Headers, after it
// returns.
type Event = patbus.Message

// Handler handles events: patbus.Handler. Handle may be called from
// several goroutines at once when the subscription's concurrency is above
// one (WithConcurrency). Returning nil acks the event; a failure requeues
// it once and then rejects it, and a failure wrapping ErrInvalidInput
// rejects it at once (see the package documentation). A panic is
// recovered and counts as a failure wrapping ErrPanic. The context carries
// the event's tx id (patbus.Tx), and is canceled when the subscription is
// closed or its graceful stop runs out of time; the event then goes back
// to its queue.
type Handler = patbus.Handler

// HandlerFunc adapts a function to Handler: patbus.HandlerFunc. A plain
// func(ctx context.Context, ev *pubsub.Event) error is passed as
// pubsub.HandlerFunc(f).
type HandlerFunc = patbus.HandlerFunc

// Typed returns a Handler that decodes each event's JSON body into a T and
// calls fn with it (patbus.Typed). An event that does not decode into a T
// fails with an error wrapping ErrInvalidInput and is rejected at once
// (dead-lettered for a group, dropped for a broadcast); fn is not called.
// Unknown object fields are ignored. A handler that needs the Event itself
// (its ID, RoutingKey or Headers) is a HandlerFunc that calls Event.Decode.
func Typed[T any](fn func(ctx context.Context, v T) error) Handler {
	return patbus.Typed(fn)
}
