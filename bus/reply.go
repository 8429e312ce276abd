package bus

import (
	"context"
	"fmt"
)

// replier is implemented by consumers that can answer a delivery on its
// own channel.
type replier interface {
	// reply sends msg and then acks d; handled false means it did not try
	// (the caller falls back on Publish, the confirm, then the ack).
	reply(ctx context.Context, d *Delivery, msg Message) (handled bool, err error)
}

// Reply answers d: it publishes msg to the default exchange with
// d.ReplyTo as the routing key and then acks d. The reply always goes out
// first, so that a request is never acked before its answer is with the
// broker, and a request whose reply is lost with a connection is
// delivered again.
//
// On RabbitMQ, for a subscription made with ConsumeOptions.Replies, reply
// and ack go out on the delivery's channel, in order, without waiting for
// a publisher confirm: RabbitMQ handles a channel's methods in order, so
// the ack is never taken without the reply. A reply the broker refuses
// there (a full queue that rejects publishes) is then lost without notice.
// Otherwise, and for bodies over 16 KiB or while the broker blocks
// publishers, the reply is published as Publish does and the ack waits
// for its confirm.
//
// When the reply fails, the error says why: ErrNacked for a reply the
// broker refused, ctx's error when ctx ended (with ErrBlocked or
// ErrDisconnected when the broker blocked publishers or was away
// meanwhile), ErrTooLarge for a body over the limit; d is then left
// unsettled, for the caller to Nack.
// ErrStaleDelivery means the delivery's channel has gone: the broker
// delivers the request again, and d counts as settled. A delivery without
// ReplyTo gives ErrInvalidConfig. msg.Mandatory is ignored: a reply whose
// caller has gone has nobody to be returned to.
func Reply(ctx context.Context, b Broker, d *Delivery, msg Message) error {
	if d.ReplyTo == "" {
		return fmt.Errorf("bus: reply: %w: the delivery has no reply-to", ErrInvalidConfig)
	}
	msg.Mandatory = false
	if r, ok := d.acker.(replier); ok {
		if handled, err := r.reply(ctx, d, msg); handled {
			return err
		}
	}
	if d.settled.Load() {
		return ErrAcknowledged
	}
	conf, err := b.Publish(ctx, "", d.ReplyTo, msg)
	if err != nil {
		return err
	}
	if err := conf.Wait(ctx); err != nil {
		return err
	}
	return d.Ack()
}
