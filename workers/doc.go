// Package workers is patbus's work-queue primitive: durable queues of
// persistent JSON items, handlers that ack only after they succeed, retries
// with backoff through retry queues, and a dead-letter queue after the last
// attempt. It is written once against bus.Broker and runs on RabbitMQ and on
// the in-memory broker alike.
//
// # Queues
//
// New declares, for a queue named Q:
//
//   - Q, the durable work queue;
//   - Q.retry.<delay>, one durable retry queue per backoff step (for example
//     Q.retry.1s, Q.retry.2s), each with a queue-wide message TTL of <delay>
//     whose expired messages are dead-lettered back to Q through the default
//     exchange. One queue per step is needed because RabbitMQ's classic
//     queues expire per-message TTLs only at the head of the queue;
//   - Q.dead, the durable dead-letter queue.
//
// # Enqueueing
//
// Enqueue JSON-encodes the data and publishes it persistent and mandatory to
// Q through the default exchange; it returns only once the broker confirmed
// the message, so a nil error means the broker has taken responsibility for
// it. One Enqueue after the other waits one broker round trip (and fsync)
// per item; for throughput, call Enqueue from many goroutines, or use
// EnqueueBatch (publishes many items, then waits for all their confirms) or
// EnqueueAsync (returns the pending bus.Confirmation, so that the caller
// keeps a window of unconfirmed items, as RabbitMQ's publisher-confirm
// tutorial does).
//
// # Working
//
// Start runs a handler over the queue with WithConcurrency goroutines and at
// most WithPrefetch unacknowledged items. An item is acked after its handler
// returns nil. When the handler fails, the item goes on like this:
//
//   - attempts left: a copy with the attempt count raised (header
//     HeaderAttempt) and the error text (HeaderError) is published, confirmed,
//     to the retry queue of that attempt's backoff step, and only then is the
//     original acked. After the delay the copy returns to Q. At least once,
//     never lost: if the copy cannot be published the original is handed back
//     to Q unchanged.
//   - last attempt failed, or the handler returned Poison(err): a copy with
//     HeaderError, HeaderAttempt (the attempts made) and HeaderDeadReason is
//     published, confirmed, to Q.dead, then the original is acked.
//   - an item whose body is not JSON, or that a Typed handler cannot decode
//     into its type, goes straight to Q.dead (reason "decode"); the worker
//     keeps running.
//
// A handler that panics counts as a failure. Retry(err) asks for a retry
// explicitly; any other error retries as well.
//
// An item that comes back after its worker stopped or lost its connection
// (Redelivered) keeps its attempt count: attempts count handler failures,
// not deliveries. An item that kills its process (a crash the handler's
// recover cannot see) is therefore delivered again and again; quorum queues
// (WithQuorum) with a delivery limit are the broker-side guard for that.
//
// Delivery is at least once: a worker that loses its connection after its
// handler succeeded, or after a retry copy was confirmed but before the ack
// reached the broker, sees the item again. Handlers should be idempotent
// (Item.ID is stable across retries and redeliveries).
//
// # Stopping
//
// Shutdown stops taking items, lets the handlers finish what they hold (acks,
// retries, dead letters included) and releases the consumer; it returns
// ctx.Err() if ctx ends first, after cancelling the handlers' context.
// Close stops at once: the handlers' context is cancelled and whatever is not
// acked goes back to the queue (a handler that fails because of the
// cancellation hands its item back without using up an attempt). Both wait
// for the handler goroutines to return, so handlers must honour their
// context. Neither closes the broker, which belongs to the caller.
package workers
