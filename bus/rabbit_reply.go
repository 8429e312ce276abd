package bus

import (
	"context"
	"fmt"
)

var _ replier = (*rabbitSub)(nil)

// reply is Reply's path for a consumer made with Replies: the reply and
// then the ack, on the channel the delivery came on. RabbitMQ handles a
// channel's methods in order, so the ack cannot be taken without the
// reply having been routed, and the reply needs no confirm. If the
// connection drops in between, the ack is lost with it and the request
// comes again. Large bodies, and any reply while the broker blocks
// publishers, take Reply's confirmed path instead, which waits by ctx:
// a write on this channel could not. A block that begins between the
// check and the write is absorbed by the coalescing writer's buffer (a
// megabyte); past it the write waits for the alarm to clear or the
// connection to die, as the fast path of Publish does.
func (s *rabbitSub) reply(ctx context.Context, d *Delivery, msg Message) (bool, error) {
	if !s.opts.Replies || s.opts.NoAck || len(msg.Body) > maxDirectBody {
		return false, nil
	}
	if blocked, _, _ := s.r.pubs.blockState(); blocked {
		return false, nil
	}
	pub, err := s.r.pubs.publishing("", d.ReplyTo, msg)
	if err != nil {
		return true, err
	}
	if err := ctx.Err(); err != nil {
		return true, fmt.Errorf("bus: reply: %w", err)
	}
	if !d.settled.CompareAndSwap(false, true) {
		return true, ErrAcknowledged
	}
	defer s.release()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ch == nil || d.gen != s.gen {
		return true, ErrStaleDelivery
	}
	if err := s.ch.Publish("", d.ReplyTo, false, false, pub); err != nil {
		// The channel is gone, and the request with it: the broker
		// delivers it again.
		return true, fmt.Errorf("bus: reply: %w: %s", ErrStaleDelivery, s.r.scrub(err))
	}
	if err := s.ch.Ack(d.tag, false); err != nil {
		return true, fmt.Errorf("bus: reply: %w: %s", ErrStaleDelivery, s.r.scrub(err))
	}
	s.channelReplies.Add(1)
	return true, nil
}
