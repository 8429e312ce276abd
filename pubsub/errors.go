package pubsub

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them (or an
// error of package bus or patterns), so callers branch with errors.Is.
var (
	// ErrInvalidConfig: an option or argument is invalid (an empty exchange
	// name, no binding keys, a group subscribed with two different
	// patterns).
	ErrInvalidConfig = errors.New("pubsub: invalid configuration")
	// ErrInvalidData: the data cannot be encoded as JSON, is not a JSON
	// object where an event needs one, or contradicts the pattern.
	ErrInvalidData = errors.New("pubsub: invalid data")
	// ErrClosed: the PubSub or the subscription has been closed.
	ErrClosed = errors.New("pubsub: closed")
	// ErrPanic: a handler panicked; the event counts as failed.
	ErrPanic = errors.New("pubsub: handler panicked")
)
