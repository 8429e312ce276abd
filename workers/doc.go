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
// WithQuorum declares them as quorum queues.
//
// # Enqueueing
//
// Enqueue JSON-encodes the data and publishes it persistent and mandatory to
// Q through the default exchange; it returns only once the broker confirmed
// the message, so a nil error means the broker has taken responsibility for
// it. Each item gets a fresh message id, a random UUID (Item.ID), which it
// keeps across its retries and redeliveries, and, when the producer's
// context carries a tx id (patbus.Tx: the item belongs to a chain), that
// id in its traceparent; an item that starts a chain carries no tx header
// (every header costs the broker on every message) and its worker makes a
// fresh tx. One Enqueue after the
// other waits one broker round trip (and fsync) per item; for throughput,
// call Enqueue from many goroutines, or use EnqueueBatch (publishes many
// items, then waits for all their confirms) or EnqueueAsync (returns the
// pending bus.Confirmation, so that the caller keeps a window of
// unconfirmed items, as RabbitMQ's publisher-confirm tutorial does).
//
// # Working
//
// Start (or Work) runs a handler over the queue on the consumer engine
// that every patbus consumer runs (package patbus, Handler and
// Middleware): WithConcurrency goroutines, at most WithPrefetch
// unacknowledged items, each delivery read once into an Item (the
// patbus.Message of kind work) whose tx id the handler's context carries,
// whichever form the producer sent it in. Each item runs through this
// chain:
//
//	recover → log → crash-loop guard → WithMiddleware's middleware → the handler
//
// An item is acked after the chain returns nil. When it fails, the item
// goes on like this:
//
//   - attempts left: a copy with the attempt count raised (header
//     HeaderAttempt) and the error text (HeaderError) is published, confirmed,
//     to the retry queue of that attempt's backoff step, and only then is the
//     original acked. After the delay the copy returns to Q. At least once,
//     never lost: if the copy cannot be published the original is handed back
//     to Q unchanged.
//   - last attempt failed, or the handler returned Poison(err): a copy with
//     HeaderError, HeaderAttempt (the attempts made) and HeaderDeadReason is
//     published, confirmed, to Q.dead, then the original is acked (reason
//     "max-attempts" or "poison").
//   - an item whose body is not JSON, or that the handler cannot decode
//     (Item.Decode, Typed: an error wrapping ErrInvalidInput), goes straight
//     to Q.dead (reason "decode"); the worker keeps running.
//   - the worker is closing under the handler (Close, or a Shutdown that ran
//     out of time): the item is handed back to Q unchanged, without using an
//     attempt, whatever the handler returned.
//
// A handler that panics counts as a failure (ErrPanic). Retry(err) asks for
// a retry explicitly; any other error retries as well.
//
// # Crash loops
//
// An item that comes back after its worker stopped, crashed or lost its
// connection while holding it (Redelivered) keeps its attempt count:
// attempts count handler failures, not deliveries. An item that kills its
// process (a crash the handler's recover cannot see) would so be delivered
// again and again, to every worker in turn. The crash-loop guard bounds
// that by a count of its own, on every kind of queue: an item the broker
// delivers again is not run at once; a copy with the count in
// HeaderDeliveries raised is published, confirmed, to the back of Q, and
// the original acked. The copy runs as a fresh delivery, marked
// Redelivered for the handler. When the count exceeds WithMaxRedeliveries
// (default 20), the item goes to Q.dead with reason "crash-loop" instead.
// Items handed back by a graceful stop count too, so the limit should stay
// well above the restarts an item may live through. Quorum queues
// (WithQuorum) add the broker's own delivery limit as a second guard.
//
// # Duplicates
//
// Delivery is at least once: a worker that loses its connection after its
// handler succeeded, or after a retry copy was confirmed but before the ack
// reached the broker, sees the item again (Redelivered); a producer whose
// broker client re-sent a publish makes a second message with the same id,
// which arrives with Redelivered false. Handlers should be idempotent, with
// Item.ID as the key. Dedup is middleware that does it for them: given a
// SeenStore (MemorySeen in one process, a database across processes), it
// skips items whose id it has recorded and records an id once its handler
// succeeded, so that failed items are still retried.
//
// # Statistics
//
// Stats reads, through the broker (bus.QueueInspector), the items ready in
// the work queue, in each retry queue and in the dead-letter queue, and the
// work queue's consumers: queue depth and dead letters for command lines and
// metrics.
//
// # Stopping
//
// Shutdown stops taking items, lets the handlers finish what they hold
// (acks, retries, dead letters included) and releases the consumer; if ctx
// ends first it cancels the handlers' context, waits for them, hands their
// items back unchanged and returns ctx.Err(). Close does that at once.
// Work runs until its context ends, then shuts down gracefully, bounded by
// WithShutdownTimeout. Done and Err tell when and why a worker ended by
// itself (its queue deleted, the broker closed). Shutdown, Close and Work
// wait for the handler goroutines to return, so handlers must honour their
// context. None of them closes the broker, which belongs to the caller.
package workers
