package workers

import (
	"context"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/wire"
)

// Header names that workers adds to items. HeaderAttempt travels on retried
// items, HeaderDeliveries on items the broker delivered again; the others
// on dead-lettered ones (HeaderError on retried ones too).
const (
	// HeaderAttempt, "patbus-attempt", is the attempt the item is on
	// (int64, 1-based; absent means 1). On a dead-lettered item it is the
	// number of attempts made.
	HeaderAttempt = wire.HeaderAttempt
	// HeaderError, "patbus-error", is the error text of the last failed
	// attempt.
	HeaderError = wire.HeaderError
	// HeaderDeliveries counts how often the broker delivered the item
	// again (int64; absent means never): after a worker crashed, lost its
	// connection or stopped while it held the item. It bounds crash loops
	// (WithMaxRedeliveries).
	HeaderDeliveries = "patbus-deliveries"
	// HeaderDeadReason says why an item was dead-lettered: "max-attempts",
	// "poison", "decode" or "crash-loop".
	HeaderDeadReason = "patbus-dead-reason"
	// HeaderQueue is the work queue a dead-lettered item came from.
	HeaderQueue = "patbus-queue"
	// HeaderFailedAt is when the item was dead-lettered, in Unix
	// milliseconds (int64).
	HeaderFailedAt = "patbus-failed-at"
)

// The values of HeaderDeadReason.
const (
	// ReasonMaxAttempts: the last attempt failed.
	ReasonMaxAttempts = "max-attempts"
	// ReasonPoison: the handler returned Poison(err).
	ReasonPoison = "poison"
	// ReasonDecode: the item's body is not JSON, or its handler could
	// not decode it (an error wrapping ErrInvalidInput).
	ReasonDecode = "decode"
	// ReasonCrashLoop: the broker delivered the item again more often
	// than WithMaxRedeliveries allows; each time, its worker had stopped
	// or crashed while it held the item.
	ReasonCrashLoop = "crash-loop"
)

// Item is one work item as a handler and its middleware see it: the
// patbus.Message of kind work, read once by the consumer engine. The
// fields that matter for work:
//
//   - ID is the message id Enqueue gave the item: stable across its
//     retries and redeliveries, the key to deduplicate by (Dedup);
//   - Attempt is 1 on the first try and one more on each retry;
//     MaxAttempts is the queue's WithMaxAttempts (when Attempt equals it,
//     a failure dead-letters the item); LastError is the error text of
//     the previous attempt ("" on the first);
//   - Tx is the producer's tx id (its context carried it to Enqueue); the
//     handler's context carries it too (patbus.Tx);
//   - Redelivered is true when the item comes back after a worker stopped
//     or crashed while holding it: it may have been handled already;
//   - Timestamp is when Enqueue published the item (zero if unknown);
//   - Queue is the work queue's name; Body is the JSON enqueued; Headers
//     are the message's headers as they arrived.
//
// A handler may read the Item but must not keep it, or its Body and
// Headers, after it returns.
type Item = patbus.Message

// Handler handles work items: the engine's patbus.Handler. Returning nil
// acks the item; an error retries it or dead-letters it (see the package
// documentation). Handle is called from up to WithConcurrency goroutines
// at once. Its context carries the item's tx id (patbus.Tx) and is
// canceled when the worker is closed or its graceful stop runs out of
// time; a handler that then fails hands its item back without using an
// attempt. A panic is recovered and counts as a failure (ErrPanic).
type Handler = patbus.Handler

// HandlerFunc adapts a function to Handler.
type HandlerFunc = patbus.HandlerFunc

// Typed returns a Handler that decodes each item's body into a T and calls
// fn with it (patbus.Typed). An item that does not decode into a T (not
// JSON, or a JSON type that does not fit T, such as a string for a struct
// or a number field) fails with an error wrapping ErrInvalidInput and goes
// straight to the dead-letter queue with reason "decode"; fn is not
// called. Unknown object fields are ignored, so producers may add fields
// before their consumers know them.
func Typed[T any](fn func(ctx context.Context, v T) error) Handler {
	return patbus.Typed(fn)
}
