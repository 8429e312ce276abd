package patbus

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind says what a consumed message is.
type Kind uint8

// The kinds of message a handler is given.
const (
	// KindAct is a request that expects a reply (package rpc, services).
	KindAct Kind = iota + 1
	// KindEvent is an event (package pubsub).
	KindEvent
	// KindWork is a work item (package workers).
	KindWork
	// KindCatalog is a message of the services' catalog.
	KindCatalog
)

// String returns "act", "event", "work" or "catalog".
func (k Kind) String() string {
	switch k {
	case KindAct:
		return "act"
	case KindEvent:
		return "event"
	case KindWork:
		return "work"
	case KindCatalog:
		return "catalog"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one consumed message as a handler and its middleware see it:
// the AMQP message with the patbus headers read once, by one codec, for
// every kind (WIRE.md). The same type serves acts (rpc), events (pubsub),
// work items (workers) and catalog messages.
//
// A Message belongs to the handler call it is given to. Middleware may
// read it and change Reply; handlers may read it but must not keep it, or
// its Body and Headers, after they return.
type Message struct {
	// Kind is what the message is.
	Kind Kind
	// ID is the message id the producer gave (stable across the retries
	// of a work item: the key to deduplicate by).
	ID string
	// Pattern is the canonical pattern (the header patbus-pattern, or the
	// AMQP type of a request); "" when the producer sent none.
	Pattern string
	// Tx is the tx id (header patbus-tx, else the trace id of
	// traceparent). A message that carried none gets a fresh one, so that
	// whatever its handler sends belongs to one chain. The handler's
	// context carries it too (Tx).
	Tx string
	// Traceparent is the W3C trace context the producer sent, if any.
	Traceparent string
	// Deadline is the producer's deadline (header patbus-deadline), zero
	// if none. The handler's context carries it too.
	Deadline time.Time
	// Attempt is the attempt a work item is on: 1 on the first try, one
	// more on each retry (header patbus-attempt). 1 for other kinds.
	Attempt int
	// MaxAttempts is the work queue's limit on attempts: when Attempt
	// equals it, a failure dead-letters the item. Zero for other kinds.
	MaxAttempts int
	// LastError is the error text of a work item's previous attempt
	// (header patbus-error), "" on the first.
	LastError string

	// Exchange and RoutingKey are where the message was published;
	// Queue is the queue it was consumed from.
	Exchange   string
	RoutingKey string
	Queue      string
	// CorrelationID and ReplyTo are a request's reply address.
	CorrelationID string
	ReplyTo       string
	// ContentType is the body's content type (application/json for
	// everything patbus sends).
	ContentType string
	// Redelivered is true when the broker delivers the message again
	// (after a consumer stopped or failed without settling it): it may
	// have been handled already.
	Redelivered bool
	// Timestamp is when the producer sent it (zero if unknown).
	Timestamp time.Time
	// Headers are the message's application headers, as they arrived.
	Headers map[string]any
	// Body is the message body: JSON for everything patbus sends.
	Body []byte

	// Reply is the body of the answer to an act: set by the act's
	// handler, it is what the caller receives. Middleware may read it
	// once the next handler returned, or set it and return without
	// calling the next handler to answer in its place. Unused for other
	// kinds.
	Reply []byte
}

// Decode unmarshals the JSON body into v. Its error wraps
// ErrInvalidInput: a work item or event whose handler returns it is not
// tried again (it goes to its dead-letter queue).
func (m *Message) Decode(v any) error {
	if err := json.Unmarshal(m.Body, v); err != nil {
		return fmt.Errorf("%w: decode %s into %T: %w", ErrInvalidInput, m.Kind, v, err)
	}
	return nil
}
