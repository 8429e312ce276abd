package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// Header names that workers adds to items. HeaderAttempt travels on retried
// items; the others on dead-lettered ones (HeaderError on retried ones too).
const (
	// HeaderAttempt is the attempt the item is on (int64, 1-based; absent
	// means 1). On a dead-lettered item it is the number of attempts made.
	HeaderAttempt = "patbus-attempt"
	// HeaderError is the error text of the last failed attempt.
	HeaderError = "patbus-error"
	// HeaderDeadReason says why an item was dead-lettered: "max-attempts",
	// "poison" or "decode".
	HeaderDeadReason = "patbus-dead-reason"
	// HeaderQueue is the work queue a dead-lettered item came from.
	HeaderQueue = "patbus-queue"
	// HeaderFailedAt is when the item was dead-lettered, in Unix
	// milliseconds (int64).
	HeaderFailedAt = "patbus-failed-at"
)

// The values of HeaderDeadReason.
const (
	ReasonMaxAttempts = "max-attempts"
	ReasonPoison      = "poison"
	ReasonDecode      = "decode"
)

// Item is one unit of work handed to a Handler. The handler may read it but
// must not keep it after it returns.
type Item struct {
	// ID is the message id given by Enqueue (kept across retries).
	ID string
	// Queue is the work queue's name.
	Queue string
	// Body is the JSON the producer enqueued.
	Body []byte
	// Headers are the message's application headers.
	Headers map[string]any
	// Attempt is 1 on the first try and grows with each retry.
	Attempt int
	// MaxAttempts is the queue's WithMaxAttempts: when Attempt equals it,
	// a failure sends the item to the dead-letter queue.
	MaxAttempts int
	// LastError is the error text of the previous attempt ("" on the first).
	LastError string
	// Tx is the tx id the producer's context carried.
	Tx string
	// Redelivered is true when the broker delivers the item again after a
	// worker stopped or lost its connection before acking it: the item may
	// have been handled already.
	Redelivered bool
	// EnqueuedAt is when Enqueue published the item (zero if unknown).
	EnqueuedAt time.Time
}

// Decode unmarshals the body into v. Its error wraps ErrDecode, so a handler
// that returns it sends the item straight to the dead-letter queue.
func (it *Item) Decode(v any) error {
	if err := json.Unmarshal(it.Body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

// Handler handles work items. HandleItem is called from several goroutines
// at once (WithConcurrency). Returning nil acks the item; an error retries it
// or dead-letters it (see the package documentation). A panic is recovered
// and counts as an error. ctx carries the producer's tx id (wire.Tx) and is
// cancelled when the worker is closed or its graceful stop times out.
type Handler interface {
	HandleItem(ctx context.Context, it *Item) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, it *Item) error

// HandleItem calls f.
func (f HandlerFunc) HandleItem(ctx context.Context, it *Item) error { return f(ctx, it) }

// Typed returns a Handler that decodes each item's body into a T and calls
// fn with it. An item that does not decode into a T (not JSON, or a JSON
// type that does not fit T, such as a string for a struct or a number
// field) goes straight to the dead-letter queue with reason "decode"; fn is
// not called. Unknown object fields are ignored, so producers may add fields
// before their consumers know them.
func Typed[T any](fn func(ctx context.Context, v T) error) Handler {
	return HandlerFunc(func(ctx context.Context, it *Item) error {
		var v T
		if err := json.Unmarshal(it.Body, &v); err != nil {
			return fmt.Errorf("%w: into %T: %w", ErrDecode, v, err)
		}
		return fn(ctx, v)
	})
}

// newItem reads an item from a delivery.
func newItem(queue string, maxAttempts int, d *bus.Delivery) *Item {
	it := &Item{
		ID:          d.MessageID,
		Queue:       queue,
		Body:        d.Body,
		Headers:     d.Headers,
		Attempt:     attemptOf(d.Headers),
		MaxAttempts: maxAttempts,
		Redelivered: d.Redelivered,
		EnqueuedAt:  d.Timestamp,
	}
	if s, ok := d.Headers[HeaderError].(string); ok {
		it.LastError = s
	}
	if s, ok := d.Headers[wire.HeaderTx].(string); ok {
		it.Tx = s
	}
	return it
}

// attemptOf reads HeaderAttempt; anything missing or odd counts as 1.
func attemptOf(h map[string]any) int {
	var n int64
	switch v := h[HeaderAttempt].(type) {
	case int64:
		n = v
	case int32:
		n = int64(v)
	case int:
		n = int64(v)
	case int16:
		n = int64(v)
	case int8:
		n = int64(v)
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case float64:
		n = int64(v)
	}
	if n < 1 {
		return 1
	}
	if n > 1<<30 {
		return 1 << 30
	}
	return int(n)
}
