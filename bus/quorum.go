package bus

import (
	"fmt"
	"strings"
)

// DefaultDeliveryLimit is the x-delivery-limit that WithQuorumQueues gives
// a quorum queue with a dead-letter target when the caller sets none:
// after this many deliveries (the first one and the returns that follow:
// nacks with requeue, lost channels and connections) RabbitMQ dead-letters
// the message instead of delivering it again. It stops a poison message
// (one that crashes or wedges every consumer it reaches) from going round
// for ever, and is generous enough that ordinary restarts and reconnects
// do not reach it.
const DefaultDeliveryLimit = 20

// WithQuorumQueues makes every durable queue declared through the broker
// that is neither exclusive nor auto-delete a quorum queue (replicated
// over the cluster's nodes, unlike a classic queue, which lives on one
// node): act queues, group queues, work, retry and dead-letter queues all
// go through DeclareQueue, so the option covers every layer. It is the
// default when the broker is dialled with several addresses (a cluster);
// see "Quorum queues" in the package documentation for why, and
// WithClassicQueues for the opposite. Exclusive,
// auto-delete and non-durable queues stay classic (RabbitMQ refuses them
// as quorum queues), and so do queues whose Args name their type
// (x-queue-type) or ask for priorities (x-max-priority, which quorum
// queues do not have). A Queue with Quorum set is declared as described
// (less any x-queue-mode, which quorum queues refuse).
//
// Every argument patbus sets works on a RabbitMQ 3.10 quorum queue
// (MaxLength with overflow reject-publish, MessageTTL, per-message
// Expiration, Expires, dead-letter exchange and key), and the conformance
// suite passes on quorum queues. One argument is translated: a quorum
// queue rejects publishes once it is over its x-max-length, not at it, so
// a quorum queue's MaxLength is declared as x-max-length MaxLength-1; it
// then takes MaxLength messages published one at a time, as a classic
// queue does (a few more when many publishes are in flight at once, since
// the queue tells the publishing channels that it is full
// asynchronously). What the option adds, unless Args sets it already:
//
//   - x-delivery-limit DefaultDeliveryLimit, for a queue with a
//     dead-letter target (DeadLetterExchange, DeadLetterKey or
//     x-dead-letter-exchange): the poison message ends in the dead-letter
//     queue. A queue without one gets no limit, since RabbitMQ would drop
//     the message without a trace; set x-delivery-limit in Args to have
//     one anyway.
//   - x-dead-letter-strategy at-least-once, with x-overflow reject-publish
//     (which it needs), for a queue with a dead-letter target: a message
//     dead-lettered by a quorum queue is otherwise lost if its target is
//     unavailable at that moment (during a leader election, say), which
//     for a retry queue means a lost work item. The queue keeps such a
//     message until its target confirms it, so the target must exist
//     (patbus's layers declare it first). A caller's x-overflow of
//     drop-head keeps the default at-most-once strategy.
//   - x-queue-mode is removed: a quorum queue always keeps its messages
//     on disk.
//
// RabbitMQ cannot change the type of an existing queue: a durable queue
// declared as classic before the option was turned on fails to declare
// with ErrPrecondition until it is deleted (or drained into a new quorum
// queue and deleted). The in-memory broker accepts the option and
// ignores it.
func WithQuorumQueues() Option { return func(c *config) { c.queueType = quorumQueues } }

// WithClassicQueues keeps every queue classic (unless a Queue asks for
// Quorum), also when the broker is dialled with several addresses: for a
// cluster whose durable queues were declared as classic queues before
// (RabbitMQ cannot change a queue's type), or one where a quorum queue's
// costs (see "Quorum queues" in the package documentation) outweigh its
// availability. The default with one address.
func WithClassicQueues() Option { return func(c *config) { c.queueType = classicQueues } }

// quorumByDefault decides, for a broker dialled with n addresses, whether
// durable queues are quorum queues.
func (c *config) quorumByDefault(n int) bool {
	switch c.queueType {
	case quorumQueues:
		return true
	case classicQueues:
		return false
	}
	return n > 1
}

// quorumQueue returns q as the RabbitMQ broker declares it: when durable
// queues are quorum queues (WithQuorumQueues, or several addresses), as a
// quorum queue with the arguments described there, when q qualifies;
// madeQuorum reports whether that made it one. An
// explicit quorum queue with arguments that quorum queues do not accept is
// an error wrapping ErrInvalidConfig.
func (c *config) quorumQueue(q Queue) (_ Queue, madeQuorum bool, _ error) {
	if q.Quorum {
		if _, ok := q.Args["x-max-priority"]; ok {
			return q, false, fmt.Errorf("%w: a quorum queue cannot have priorities (x-max-priority)", ErrInvalidConfig)
		}
		if _, ok := q.Args["x-queue-mode"]; ok {
			q.Args = copyArgs(q.Args)
			delete(q.Args, "x-queue-mode")
		}
		return q, false, nil
	}
	if !c.quorum || !q.Durable || q.Exclusive || q.AutoDelete {
		return q, false, nil
	}
	if _, typed := q.Args["x-queue-type"]; typed {
		return q, false, nil
	}
	if _, prio := q.Args["x-max-priority"]; prio {
		return q, false, nil
	}
	args := copyArgs(q.Args)
	if args == nil {
		args = make(map[string]any)
	}
	delete(args, "x-queue-mode")
	_, dlx := args["x-dead-letter-exchange"]
	if q.DeadLetterExchange != "" || q.DeadLetterKey != "" || dlx {
		if _, ok := args["x-delivery-limit"]; !ok {
			args["x-delivery-limit"] = int64(DefaultDeliveryLimit)
		}
		overflow, set := args["x-overflow"].(string)
		if _, ok := args["x-dead-letter-strategy"]; !ok && (!set || overflow == "reject-publish") {
			args["x-dead-letter-strategy"] = "at-least-once"
			args["x-overflow"] = "reject-publish"
		}
	}
	if len(args) == 0 {
		args = nil
	}
	q.Quorum, q.Args = true, args
	return q, true, nil
}

// quorumHint adds to a refused declaration of a queue that
// WithQuorumQueues made a quorum queue, when the queue exists as another
// type, what to do about it.
func quorumHint(err error) error {
	if err == nil || !strings.Contains(err.Error(), "x-queue-type") {
		return err
	}
	return fmt.Errorf("%w (WithQuorumQueues declares it as a quorum queue, and RabbitMQ cannot change the type of an existing queue: delete it, or move its messages to a new queue, first)", err)
}
