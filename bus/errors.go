package bus

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers branch with errors.Is.
var (
	// ErrClosed: the broker or subscription has been closed. The packages
	// above bus use this same value for whatever of theirs is closed
	// (patbus.ErrClosed), so its text names the project.
	ErrClosed = errors.New("patbus: closed")
	// ErrNacked: the broker refused the message (for example a queue at its
	// MaxLength with overflow reject-publish).
	ErrNacked = errors.New("bus: message nacked by broker")
	// ErrUnroutable: a Mandatory message matched no queue. The concrete
	// error is a *ReturnError.
	ErrUnroutable = errors.New("bus: message unroutable")
	// ErrUnconfirmed: it is not known whether the broker took the message
	// (the wait ended, or the connection was lost before the confirm and the
	// message could not be sent again in time). It may still be delivered.
	ErrUnconfirmed = errors.New("bus: message unconfirmed")
	// ErrTooLarge: the message body exceeds the broker's size limit
	// (patbus.ErrTooLarge, shared with the packages above bus).
	ErrTooLarge = errors.New("patbus: message too large")
	// ErrExpired: a message's Expiration passed before the broker
	// confirmed it, while it waited to be published again after a lost
	// connection or an overdue confirm; it is not published again. An
	// error wrapping it wraps ErrUnconfirmed too: the first copy may
	// still have reached a queue.
	ErrExpired = errors.New("bus: message expired before it was confirmed")
	// ErrBlocked: the broker blocks publishers (memory or disk alarm) and
	// the publish's context ended while it waited.
	ErrBlocked = errors.New("bus: publishing blocked by broker")
	// ErrDisconnected: the connection is down and the call's context ended
	// while it waited for a reconnect.
	ErrDisconnected = errors.New("bus: disconnected")
	// ErrStaleDelivery: the delivery came on a channel that has since been
	// replaced; the broker has requeued the message already.
	ErrStaleDelivery = errors.New("bus: stale delivery")
	// ErrAcknowledged: the delivery was already acked or nacked.
	ErrAcknowledged = errors.New("bus: delivery already acknowledged")
	// ErrNotFound: the exchange or queue does not exist.
	ErrNotFound = errors.New("bus: not found")
	// ErrPrecondition: a declaration conflicts with an existing one.
	ErrPrecondition = errors.New("bus: precondition failed")
	// ErrInvalidConfig: an option or argument is invalid
	// (patbus.ErrInvalidConfig, shared with the packages above bus).
	ErrInvalidConfig = errors.New("patbus: invalid configuration")
)

// ReturnError is how a Confirmation resolves when the broker returned a
// Mandatory message because no queue was bound for it.
type ReturnError struct {
	Exchange  string
	Key       string
	ReplyCode int
	ReplyText string
}

func (e *ReturnError) Error() string {
	return fmt.Sprintf("bus: message unroutable: exchange %q key %q: %d %s", e.Exchange, e.Key, e.ReplyCode, e.ReplyText)
}

// Is reports whether target is ErrUnroutable.
func (e *ReturnError) Is(target error) bool { return target == ErrUnroutable }
