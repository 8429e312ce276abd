package bus

import "context"

// DirectReplyTo is the pseudo-queue of RabbitMQ's direct reply-to: a
// requester consumes it (with automatic ack, on the channel it publishes
// its requests on) and names it as the reply-to of its requests; the
// broker rewrites that reply-to to DirectReplyTo + ".<token>", a routing
// key on the default exchange that leads back to the requester's channel.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// DirectReplier is an optional capability of a Broker: requests whose
// replies come back without a reply queue (RabbitMQ's direct reply-to).
// Both brokers of this package implement it; find out with a type
// assertion:
//
//	if dr, ok := b.(bus.DirectReplier); ok { … }
type DirectReplier interface {
	// DirectReply opens a new DirectReply, bounded by ctx (it waits for a
	// reconnect while the connection is down: an error wrapping
	// ErrDisconnected when ctx ends first). After the broker's Close it
	// returns an error wrapping ErrClosed.
	DirectReply(ctx context.Context) (DirectReply, error)
}

// DirectReply is one requester's end of direct reply-to: a publishing
// channel whose replies come back on Deliveries. It does not survive the
// loss of its channel or connection: replies in flight are then lost (at
// most once), Deliveries closes, Err wraps ErrDisconnected, and the caller
// opens a new one. It is safe for concurrent use.
type DirectReply interface {
	// Publish is Broker.Publish on the DirectReply's own channel, with
	// ReplyTo set to DirectReplyTo (the broker hands it to the consumer as
	// DirectReplyTo + ".<token>"). The Confirmation resolves as for
	// Broker.Publish (nil, ErrNacked, *ReturnError), but a message is never
	// published again on another channel: when the channel is lost first,
	// it resolves with an error wrapping ErrUnconfirmed and
	// ErrDisconnected. Publish fails with an error wrapping ErrDisconnected
	// once the channel is lost, and ErrClosed after Close.
	Publish(ctx context.Context, exchange, key string, msg Message) (*Confirmation, error)

	// Deliveries yields the replies: messages published to the default
	// exchange "" with a routing key equal to a delivered ReplyTo. They
	// are acknowledged already (Ack and Nack do nothing). It is closed by
	// the time Close returns, or when the channel, connection or broker
	// goes away.
	Deliveries() <-chan *Delivery

	// Err reports why Deliveries closed when it was not Close: an error
	// wrapping ErrDisconnected (channel or connection lost) or ErrClosed
	// (the broker closed). Nil otherwise.
	Err() error

	// Close releases the channel; Confirmations not yet resolved resolve
	// with an error wrapping ErrUnconfirmed, replies not yet received are
	// dropped. Close is idempotent and returns nil.
	Close() error
}
