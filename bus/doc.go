// Package bus is patbus's broker abstraction: the one place that talks to
// RabbitMQ, and an in-memory broker with the same semantics that is the
// embedded default.
//
// # The interface
//
// Broker declares exchanges, queues and bindings, publishes with confirms and
// mandatory returns, and consumes with prefetch and manual acks (or, where
// at most once is enough, such as replies, automatic acks:
// ConsumeOptions.NoAck). rpc, pubsub and workers are written once against
// it.
//
// # Choosing a broker
//
// Open returns the RabbitMQ broker for an amqp:// or amqps:// address and the
// in-memory broker for an empty one.
//
// # RabbitMQ: connections
//
// Dial opens two connections, one for publishing ("<name>-pub") and one for
// consuming ("<name>-sub"), so that a broker that blocks publishers (memory
// or disk alarm) never stalls deliveries and acks. The exception is a
// consumer made with ConsumeOptions.Replies (an RPC server's): it runs on
// the publishing connection, where Reply sends each reply and the ack
// after it on the delivery's channel, in order, with no confirm to wait
// for. A memory alarm then holds its acks (and its Cancel) back, but its
// replies could not go out anyway, and the other consumers' acks still
// flow. Such a consumer declares its queue again if it finds it gone when
// it resumes, since the topology replay runs on the other connection.
//
// Each connection has the configured heartbeat, dial timeout and name;
// amqps:// addresses use TLS 1.2 or later with the host name verified.
// Passwords are removed from every error and log line.
//
// Several addresses (the nodes of a cluster) are tried in turn, starting
// at a random one, on the first dial and on every reconnect, so that
// clients spread over the nodes, and the clients of a node that dies move
// to the others instead of all to the first address. A reconnect waits a
// random moment (below the minimum backoff) before its first attempt, and
// each failed round a backoff with jitter. Each connection is logged once
// ("connected") with its address, the cluster name and, where the broker
// announces it in its server properties, the node name.
//
// amqp091-go writes every publish, ack and confirm with a system call of
// its own. patbus puts a coalescing writer under each connection
// (WithWriteCoalescing, on by default): writes land in a buffer, and one
// goroutine per connection hands whatever has accumulated to the socket in
// one write. Under load a write carries many frames, which saves system
// calls on both ends and lets RabbitMQ parse frames in batches; with one
// caller it costs a goroutine wake-up, no measurable latency. A writer waits
// only when a megabyte is queued, and a failed write closes the socket, so
// that the connection ends at once.
//
// Declarations run on the consuming connection, so exclusive queues belong
// to the connection their consumers use. A queue declared without a name
// gets a name chosen by patbus ("patbus.gen-…"), not by the broker, so that
// it can be declared again under the same name after a reconnect. A
// refused declaration (ErrPrecondition, ErrNotFound) closes only the
// declaration channel, which is replaced on the next call.
//
// # RabbitMQ: reconnects, generations and confirms
//
// patbus owns the reconnection; amqp091-go's automatic recovery is off (it
// was seen to ack the wrong message after a reconnect and to lose
// confirms). When a connection closes, a supervisor dials again with
// exponential backoff and jitter, forever unless WithMaxReconnects says
// otherwise (the broker then closes itself: calls fail with ErrClosed). On
// the new consuming connection it first declares again every exchange,
// queue (exclusive ones too, under the same name) and binding made through
// the broker and not deleted since; only then do consumers resume, each on
// a fresh channel, feeding the same Subscription.
//
// Every channel gets a generation number, and every Delivery carries the
// generation of the channel it came on. Delivery tags start again at 1 on
// each channel, so an ack of an old delivery sent on the new channel could
// remove a different message. It is never sent: Ack and Nack of a delivery
// whose generation is not the consumer's current one do nothing and return
// ErrStaleDelivery (the broker has already requeued that message and will
// deliver it again). Deliveries of a lost channel not yet received from
// Deliveries are dropped for the same reason.
//
// Publishing uses a pool of channels in confirm mode (WithPublishChannels),
// each with a bounded window of unconfirmed messages (WithConfirmWindow).
// Publish returns once the message is written; its Confirmation resolves
// when the broker answers. A basic.return is matched to its publish by
// message id (an internal header when MessageID is empty or shared with
// another message in flight on the channel), not by arrival order, and the Confirmation then resolves with *ReturnError when the ack
// that follows arrives. Every unconfirmed message has a deadline
// (WithConfirmTimeout): when it passes, or when the channel or connection
// is lost, the message counts as unconfirmed and is published again on a
// fresh channel. A Confirmation therefore resolves as confirmed only on a
// broker ack, and with ErrUnconfirmed only when the broker is closed first;
// delivery is at least once, so consumers may see a message twice and
// should deduplicate by message id where that matters. Publishes made while
// the connection is down, or while RabbitMQ blocks publishers, wait bounded
// by their context and then fail with ErrDisconnected or ErrBlocked. When a
// channel is idle, RabbitMQ has not blocked publishers and the body is
// small (16 KiB at most), Publish writes from the caller's goroutine
// (saving two goroutine hand-offs), on the first idle channel of the pool:
// one channel takes the load until it is busy, because RabbitMQ confirms
// per channel and batches confirms less when publishes are spread thin.
// Otherwise, and always while publishers are blocked, the write happens on
// the channel's own goroutine, so no Publish waits past its context for a
// blocked socket. The one exception: on a link that stalls silently (no
// blocked notice), a small fast-path write can wait until the heartbeat
// declares the connection dead, about two heartbeat intervals, once a
// megabyte waits for the socket. While publishers are blocked, confirm
// deadlines are suspended.
//
// When the broker goes away both connections go with it, and the consuming
// one may be seen lost only after the publishing one is back. The
// supervisor then restores the consuming connection and its topology
// first, so that the queues declared through the broker are back before
// anything is published (an exclusive queue that the broker still holds
// for the old connection comes back a moment later, when it lets go).
//
// # Direct reply-to
//
// Both brokers also implement DirectReplier, an optional capability found
// by type assertion: DirectReply returns a requester's end of RabbitMQ's
// direct reply-to. On RabbitMQ it is a channel of its own on the
// publishing connection, in confirm mode (so mandatory returns and
// confirms work for the requests), that consumes the pseudo-queue
// amq.rabbitmq.reply-to with automatic ack before anything is published;
// its Publish sets ReplyTo to that name, which the broker rewrites to
// "amq.rabbitmq.reply-to.<token>". Whoever answers publishes to the default
// exchange with that key, not Mandatory (RabbitMQ 3.x returns a mandatory
// direct reply although it delivers it). Replies are at most once and tied
// to the channel: it is not re-established; when it is lost, its
// Deliveries close, Err wraps ErrDisconnected, requests not yet confirmed
// resolve with ErrUnconfirmed, and the caller opens a new DirectReply. The
// in-memory broker emulates it with a hidden queue
// "amq.rabbitmq.reply-to.<random>" deleted on Close.
package bus
