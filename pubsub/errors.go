package pubsub

import (
	"fmt"

	"github.com/patbus/patbus"
)

// Sentinel errors: the values of package patbus, so that errors.Is works
// whichever package an error came from. Errors returned by this package
// wrap one of them (or an error of package bus or patterns) and say what
// went wrong, prefixed "pubsub: ".
var (
	// ErrInvalidConfig: an option or argument is invalid (a prefetch below
	// one, an empty exchange or group name, no binding keys, a group
	// subscribed with two different patterns).
	ErrInvalidConfig = patbus.ErrInvalidConfig
	// ErrInvalidInput: data to publish cannot be encoded as JSON, is not a
	// JSON object where an event needs one, or contradicts the pattern;
	// or a consumed event's body cannot be read (Event.Decode, Typed).
	// A subscription rejects an event whose handler fails with it at
	// once: it cannot succeed on a retry.
	ErrInvalidInput = patbus.ErrInvalidInput
	// ErrClosed: the PubSub or the subscription has been closed.
	ErrClosed = patbus.ErrClosed
	// ErrPanic: a handler panicked; the event counts as failed.
	ErrPanic = patbus.ErrPanic
)

// ItemError is the failure of one event of EmitBatch: Index is its place
// among the data given, Err why it failed.
type ItemError struct {
	Index int
	Err   error
}

// Error reads "pubsub: event 3 of the batch: …".
func (e *ItemError) Error() string {
	return fmt.Sprintf("pubsub: event %d of the batch: %v", e.Index, e.Err)
}

// Unwrap returns Err.
func (e *ItemError) Unwrap() error { return e.Err }
