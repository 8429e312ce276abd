package bus

import (
	"context"
	"sync/atomic"
	"time"
)

// Broker is the small interface that rpc, pubsub and workers are written
// against. Two implementations exist: the RabbitMQ broker (Dial) and the
// in-memory broker (NewMemory). Both pass the suite in package bustest.
//
// All methods are safe for concurrent use. Every method that can block takes
// a context and honours it while it waits, not only at entry. After Close,
// every method returns an error that wraps ErrClosed.
type Broker interface {
	// DeclareExchange creates the exchange if it does not exist. Declaring an
	// existing exchange with the same settings is a no-op; with different
	// settings it is an error wrapping ErrPrecondition. The RabbitMQ broker
	// remembers every declaration and declares it again after a reconnect.
	DeclareExchange(ctx context.Context, ex Exchange) error

	// DeleteExchange deletes the exchange and every binding from it.
	// Deleting an exchange that does not exist is not an error; the
	// default exchange and the predeclared "amq.*" exchanges cannot be
	// deleted (ErrInvalidConfig).
	DeleteExchange(ctx context.Context, name string) error

	// DeclareQueue creates the queue if it does not exist and returns its
	// name. A queue with an empty Name gets a fresh generated name
	// ("patbus.gen-…" on RabbitMQ, chosen by the client so that the queue
	// can be declared again under the same name after a reconnect; RabbitMQ
	// refuses client declarations of "amq.gen-…" names). Declaring an
	// existing queue with different settings is an error wrapping
	// ErrPrecondition.
	DeclareQueue(ctx context.Context, q Queue) (string, error)

	// DeleteQueue deletes the queue and whatever it holds. Deleting a queue
	// that does not exist is not an error.
	DeleteQueue(ctx context.Context, name string) error

	// Bind routes messages published to b.Exchange with a key that matches
	// b.Key (by the exchange's kind) to b.Queue.
	Bind(ctx context.Context, b Binding) error

	// Unbind removes a binding made with Bind. Removing a binding that does
	// not exist is not an error.
	Unbind(ctx context.Context, b Binding) error

	// Publish sends msg to exchange with the routing key. It returns once the
	// message has been handed to the broker, without waiting for the
	// broker's confirm; the returned Confirmation resolves when the broker
	// confirms, nacks or returns the message. An error from Publish itself
	// means the message was not sent (for example ErrClosed, ErrTooLarge, or
	// the context ending while the connection was down or blocked).
	Publish(ctx context.Context, exchange, key string, msg Message) (*Confirmation, error)

	// Consume starts delivering the messages of queue. The RabbitMQ broker
	// resumes the consumer after a reconnect and keeps feeding the same
	// Subscription.
	Consume(ctx context.Context, queue string, opts ConsumeOptions) (Subscription, error)

	// Close releases every connection and stops every consumer at once;
	// unacknowledged deliveries go back to their queues. Close is idempotent.
	Close() error
}

// ExchangeKind is the routing rule of an exchange.
type ExchangeKind string

// The exchange kinds patbus uses.
const (
	// Topic routes by routing key words separated by '.', where a binding
	// key's '*' matches exactly one word and '#' matches zero or more.
	Topic ExchangeKind = "topic"
	// Direct routes when the routing key equals the binding key.
	Direct ExchangeKind = "direct"
	// Fanout routes every message to every bound queue.
	Fanout ExchangeKind = "fanout"
)

// Exchange describes an exchange to declare.
type Exchange struct {
	Name       string
	Kind       ExchangeKind
	Durable    bool // survives a broker restart
	AutoDelete bool // deleted when its last binding goes away
}

// Queue describes a queue to declare. Zero values mean "not set".
type Queue struct {
	// Name of the queue; empty asks the broker for a generated name.
	Name string
	// Durable queues survive a broker restart.
	Durable bool
	// Exclusive queues belong to the connection that declared them and go
	// away with it. The RabbitMQ broker declares them again (same name) after
	// a reconnect.
	Exclusive bool
	// AutoDelete queues are deleted when their last consumer goes away.
	AutoDelete bool

	// DeadLetterExchange receives messages that are rejected without
	// requeue or that expire. Empty means the default exchange when
	// DeadLetterKey is set.
	DeadLetterExchange string
	// DeadLetterKey, if set, replaces the routing key of dead-lettered
	// messages.
	DeadLetterKey string
	// MessageTTL is how long a message may wait in the queue (x-message-ttl).
	MessageTTL time.Duration
	// Expires deletes the queue after it has been unused this long (x-expires).
	Expires time.Duration
	// MaxLength bounds the number of ready messages (x-max-length); further
	// publishes are nacked (overflow reject-publish).
	MaxLength int
	// Quorum makes the queue a replicated quorum queue (RabbitMQ only; the
	// in-memory broker treats it as durable), declared with exactly the
	// arguments given. WithQuorumQueues makes every durable queue that can
	// be one a quorum queue, with arguments of its own.
	Quorum bool
	// Args holds further x-arguments, passed through to RabbitMQ as they are.
	Args map[string]any
}

// Binding routes from an exchange to a queue.
type Binding struct {
	Exchange string
	Queue    string
	Key      string
}

// Message is what is published and what a Delivery carries.
type Message struct {
	// Headers are application headers. Values may be string, []byte, bool,
	// int, int32, int64, float64, time.Time or nested map[string]any and
	// []any of those; int and int32 arrive as int64.
	Headers       map[string]any
	ContentType   string
	MessageID     string
	CorrelationID string
	ReplyTo       string
	// Type is AMQP's message type name (the property "type"), AppID the
	// creating application (the property "app-id"). Both are short
	// strings, at most 255 bytes, and cost less on the wire than headers.
	Type  string
	AppID string
	// Expiration discards the message (or dead-letters it) if it has not been
	// delivered within this time. Zero means no expiry. It is sent in whole
	// milliseconds, at least 1.
	Expiration time.Duration
	// Persistent messages survive a broker restart when their queue is durable.
	Persistent bool
	// Mandatory asks the broker to return the message if no queue is bound
	// for it; the Confirmation then resolves with a *ReturnError.
	Mandatory bool
	Timestamp time.Time
	Body      []byte
}

// ConsumeOptions control a consumer.
type ConsumeOptions struct {
	// Prefetch bounds the deliveries given out and not yet acknowledged.
	// Zero means DefaultPrefetch.
	Prefetch int
	// Exclusive asks to be the queue's only consumer.
	Exclusive bool
	// Tag names the consumer; empty means a generated tag.
	Tag string
	// NoAck consumes with automatic acknowledgement: the broker counts a
	// message as acknowledged when it sends it, so delivery is at most once
	// (a message lost in a crash, or handed out when the consumer is
	// canceled, is gone). Ack and Nack of such a delivery do nothing and
	// return nil (later calls ErrAcknowledged), so Nack cannot requeue.
	// Cancel does not wait for acks, and deliveries not yet received may be
	// lost (RabbitMQ has sent them already). RabbitMQ does not apply a prefetch to such
	// consumers; the in-memory broker still hands out at most Prefetch
	// messages at a time. Meant for replies to an exclusive queue, whose
	// loss only means a caller's timeout.
	NoAck bool
	// Replies prepares the consumer for Reply: on RabbitMQ it runs on the
	// publishing connection, so that a reply and the ack after it go out
	// on the delivery's own channel, in that order, with no publisher
	// confirm to wait for. Use it for request queues whose handlers answer
	// (RPC servers). It cannot consume an exclusive queue declared through
	// the broker (such a queue belongs to the consuming connection). When
	// the consumer resumes after a reconnect and its queue has gone (an
	// auto-delete queue goes with its consumer), the queue is declared
	// again with its bindings, as the consuming connection's replay does.
	// Under a memory or disk alarm RabbitMQ stops reading a connection
	// that publishes, so the consumer's acks, and the basic.cancel and
	// channel close of Cancel, wait for the alarm to clear: Cancel returns
	// by its context (and the dial timeout), and the unacknowledged
	// deliveries go back to the queue when the alarm clears. The in-memory
	// broker ignores it.
	Replies bool
}

// DefaultPrefetch is the prefetch used when ConsumeOptions.Prefetch is zero.
const DefaultPrefetch = 100

// Subscription is a running consumer.
type Subscription interface {
	// Deliveries yields the consumer's messages. It is closed by the time
	// Cancel returns, or when the broker deletes the queue or closes;
	// receive with d, ok := <-ch.
	Deliveries() <-chan *Delivery

	// Cancel stops new deliveries, hands back deliveries not yet received
	// from Deliveries, then waits until every received delivery has been
	// acked or nacked, or until ctx ends; then it releases the consumer and
	// whatever is still unacknowledged goes back to the queue. It returns
	// ctx.Err() if ctx ended first. Cancel is idempotent.
	Cancel(ctx context.Context) error

	// Err reports why the Deliveries channel closed when it was not Cancel:
	// the queue was deleted, the broker was closed. Nil otherwise.
	Err() error

	// Interrupted returns a channel that is closed at the next
	// interruption of the delivery stream after the call, or when the
	// subscription ends (Deliveries closes; Interrupted then returns a
	// closed channel). An interruption is the loss of the consumer's
	// channel or connection, or its cancellation by the broker (its queue
	// deleted by someone else): the consumer resumes by itself on a new
	// channel (deliveries after the interruption come from it), the
	// deliveries not acknowledged are delivered again (with NoAck they are
	// lost), and what was in an exclusive or auto-delete queue that went
	// with the connection is lost. A call while the consumer is
	// interrupted, or after it resumed, returns a channel for the next
	// interruption. A consumer that waits for an answer in its queue (an
	// RPC client's replies) takes the channel before it sends its request
	// and gives up at once when the channel closes, since the answer may
	// be lost. The in-memory broker has no connection to lose: its channel
	// closes only when the subscription ends. Safe for concurrent use.
	Interrupted() <-chan struct{}
}

// Delivery is one message given to a consumer. Exactly one of Ack or Nack
// takes effect; later calls return ErrAcknowledged. Acking a delivery that
// arrived on a connection or channel that has since been replaced does
// nothing and returns ErrStaleDelivery: the broker has already put the
// message back, and it will be delivered again.
type Delivery struct {
	Message
	Exchange    string
	RoutingKey  string
	Redelivered bool

	// tag and gen identify the delivery to the broker that made it: the
	// delivery tag and the generation of the channel it arrived on.
	tag     uint64
	gen     uint64
	acker   acknowledger
	settled atomic.Bool
}

// settlement is what a consumer is told about a delivery.
type settlement int

const (
	settleAck settlement = iota
	settleRequeue
	settleReject // nack without requeue: dead-letter or drop
)

// acknowledger is implemented by each broker's consumer.
type acknowledger interface {
	settle(d *Delivery, how settlement) error
}

// Ack tells the broker the message has been handled. It is safe to call from
// any goroutine.
func (d *Delivery) Ack() error { return d.settle(settleAck) }

// Nack tells the broker the message was not handled: with requeue it is
// delivered again, without it is dead-lettered (or dropped if its queue has
// no dead-letter exchange). It is safe to call from any goroutine.
func (d *Delivery) Nack(requeue bool) error {
	if requeue {
		return d.settle(settleRequeue)
	}
	return d.settle(settleReject)
}

func (d *Delivery) settle(how settlement) error {
	if d.acker == nil || !d.settled.CompareAndSwap(false, true) {
		return ErrAcknowledged
	}
	return d.acker.settle(d, how)
}

// autoAcked is the acknowledger of deliveries consumed with NoAck: the
// broker acknowledged them when it sent them.
type autoAcked struct{}

func (autoAcked) settle(*Delivery, settlement) error { return nil }
