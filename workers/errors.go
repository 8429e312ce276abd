package workers

import (
	"errors"
	"fmt"

	"github.com/patbus/patbus"
)

// Sentinel errors. Errors returned by this package wrap one of them (or an
// error of package bus), so callers branch with errors.Is. The shared ones
// are the values of package patbus under this package's names, so that
// errors.Is works whichever package an error came from.
var (
	// ErrInvalidConfig: an option or argument is invalid.
	ErrInvalidConfig = patbus.ErrInvalidConfig
	// ErrClosed: the Queue's worker has been shut down or closed.
	ErrClosed = patbus.ErrClosed
	// ErrInvalidInput: data given to Enqueue that cannot be encoded as
	// JSON, or an item whose body is not JSON or does not decode into the
	// type its handler asked for (Item.Decode, Typed). A handler that
	// returns it sends the item straight to the dead-letter queue, with
	// reason "decode".
	ErrInvalidInput = patbus.ErrInvalidInput
	// ErrPanic: the handler panicked; the panic was recovered and the
	// item counts as failed.
	ErrPanic = patbus.ErrPanic
	// ErrRunning: Start was called on a Queue whose worker already runs.
	ErrRunning = errors.New("workers: worker already running")
	// ErrPoison: the handler declared the item poison with Poison; it goes
	// straight to the dead-letter queue.
	ErrPoison = errors.New("workers: poison item")
	// ErrRetry: the handler asked for a retry with Retry.
	ErrRetry = errors.New("workers: retry requested")
)

// PoisonError is what Poison returns: the handler's verdict that an item can
// never succeed. It wraps the handler's error and matches ErrPoison.
type PoisonError struct{ Err error }

// Poison marks err as final: the item goes to the dead-letter queue now,
// without further attempts. Poison(nil) still dead-letters.
func Poison(err error) error { return &PoisonError{Err: err} }

// Error returns "workers: poison item: " and the handler's error.
func (e *PoisonError) Error() string {
	if e.Err == nil {
		return "workers: poison item"
	}
	return "workers: poison item: " + e.Err.Error()
}

// Unwrap returns the handler's error.
func (e *PoisonError) Unwrap() error { return e.Err }

// Is reports whether target is ErrPoison.
func (e *PoisonError) Is(target error) bool { return target == ErrPoison }

// RetryError is what Retry returns: the handler asks for another attempt
// (after the backoff), as long as attempts are left.
type RetryError struct{ Err error }

// Retry asks for the item to be tried again after the backoff. Any error a
// handler returns, other than Poison or one wrapping ErrInvalidInput, does
// the same; Retry makes the intent explicit. After the last attempt the
// item is dead-lettered all the same.
func Retry(err error) error { return &RetryError{Err: err} }

// Error returns "workers: retry requested: " and the handler's error.
func (e *RetryError) Error() string {
	if e.Err == nil {
		return "workers: retry requested"
	}
	return "workers: retry requested: " + e.Err.Error()
}

// Unwrap returns the handler's error.
func (e *RetryError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRetry.
func (e *RetryError) Is(target error) bool { return target == ErrRetry }

// ItemError is one failed item of EnqueueBatch.
type ItemError struct {
	Index int // position in the batch
	Err   error
}

// Error names the item's index and its error.
func (e *ItemError) Error() string { return fmt.Sprintf("workers: item %d: %v", e.Index, e.Err) }

// Unwrap returns the cause.
func (e *ItemError) Unwrap() error { return e.Err }
