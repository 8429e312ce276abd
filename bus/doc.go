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
// Passwords, whatever their length, are removed from every error and log
// line: addresses are shown as url.URL.Redacted shows them, and a password
// that the network or the client library quotes is masked (a short one
// where it stands alone, so that a password "a" does not turn every "a"
// of a message into xxxxx).
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
// # RabbitMQ: clusters and quorum queues
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
// Durable queues that can be quorum queues (neither exclusive nor
// auto-delete) are quorum queues by default when the broker is dialled
// with several addresses, and classic queues when it is dialled with one;
// WithQuorumQueues and WithClassicQueues decide either way, and
// WithQuorumQueues says what a quorum queue is declared with. The
// reasons, measured on two shared cores with RabbitMQ 3.10, 256-byte
// persistent messages and publisher confirms (the benchmarks
// BenchmarkRabbitQueueType, BenchmarkRabbitClusterQueueType and
// BenchmarkRabbitQueueMemory, and the test TestRabbitCluster): in a
// three-node cluster a quorum queue outlives its node. With the node of
// its leader killed under load, a message published after the kill was
// confirmed half a second later (a new leader is elected at once); with
// that node silent (SIGSTOP, a partition), 11 to 15 s later: once the
// other nodes take it for down, after the Erlang net_ticktime (10 s in the
// tests; RabbitMQ's default of 60 s makes it a minute or more), and a
// channel still waiting on the silent leader has given up (see
// WithConfirmTimeout). No confirmed message was lost. A classic queue
// lives on one node and is gone while that node is. In the cluster,
// confirmed publishing and consuming showed no consistent difference
// between the two types (the noise of the machine was larger), while a
// quorum queue holds 5.4 times the memory of a classic one on each node
// and takes 2.6 times as long to declare. On a
// single node there is nothing to replicate to, and those measured costs
// keep classic queues the default there: 5.4 times the memory, 2.2 times
// the declaration time, consuming at 0.86 times the rate (confirmed
// publishing alone ran 1.6 times faster on a quorum queue: a program that
// mostly publishes may choose WithQuorumQueues). A single address in
// front of a cluster (a load balancer) needs WithQuorumQueues.
//
// A quorum queue nacks publishes while it elects a new leader, so in a
// cluster ErrNacked may be transient: a publisher that must not drop a
// message publishes it again after a pause. RabbitMQ 3.10 has a channel
// whose first publish to a quorum queue meets the queue without a leader
// stay broken for that queue for as long as the channel lives: it nacks
// most publishes to it and acks some that it never enqueues, while its
// publishes to other queues go through (a fresh channel works at once).
// The broker therefore retires a publishing channel that nacks eight
// messages in a row for one destination (exchange and routing key), with
// no ack for that destination between them, and goes on with a fresh one
// a second later, once the election is likely over (a channel opened
// during it breaks the same way). Counted per channel, the acks of a
// producer's other queues would keep such a channel alive, and channels
// replaced at once would break one after the other, each acking a few
// messages it dropped: TestRabbitCluster/MixedDestinationsAfterLeaderKill
// loses confirmed messages either way. A queue at its MaxLength then
// costs a channel reopen and a second of that channel's publishing every
// eight nacks. Such a channel can also ack a few messages before the
// nacks that retire it, messages the queue never held: for its first two
// seconds a publishing channel keeps the messages it got acks for (the
// newest 256 per destination), and one retired for nacks on a
// destination in that time publishes what it acked there again, at least
// once, with the same message ids. The other publishing channels still
// on probation (opened with it, after the same reconnect) are retired
// with it and do the same, and an ack that a retired channel gives later
// for that destination publishes its message again too: such a channel
// can ack a message it lost without ever nacking eight in a row. A copy
// published so is owed to a caller already told it was confirmed: when
// it is nacked in turn (the next channel may be broken too), it is
// published again, until a copy is acked or a minute has passed; a copy
// that cannot be placed is logged as an error with its message id. A
// queue at its MaxLength that nacks eight in a row in a channel's first
// two seconds therefore gets copies of what it already held, and keeps
// nacking them for that minute.
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
// a fresh channel, feeding the same Subscription, whose Interrupted channel
// closes at the loss.
//
// The exclusive queues of a client go with its consuming connection (and
// a broker restart takes its transient queues and exchanges), so when the
// client has any (or auto-delete ones), publishing waits until the
// topology is declared again on the new consuming connection, including
// the exclusive queues the old connection still holds (for at most three
// heartbeat intervals, by which time RabbitMQ has dropped the old
// connection): Publish, messages published again, and DirectReply
// requests. The first messages after a reconnect so reach the client's
// own queues, instead of being returned as unroutable or routed to a queue
// on its way out; a Publish whose context ends while it waits fails with
// ErrDisconnected.
//
// The topology remembered is what the program declared and did not
// delete: a declaration whose context ended before the broker answered is
// not remembered (the caller was told it failed), and DeleteQueue,
// DeleteExchange and Unbind forget before they ask the broker (and
// remember again only if it refuses). A remembered queue that goes away
// for another reason (an operator or another program deleted it) is
// declared again with its bindings, and its consumers go on; a refusal of
// that declaration for good (406, 403) ends them with the error.
//
// While the broker is away the log has one warning when the outage begins
// ("connection lost") and one when it ends ("connection restored", with
// its length and the count of failed connection attempts, interrupted
// consumers, failed resubscriptions and messages published again);
// the attempts, lost channels and resumed consumers in between are logged
// at debug level.
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
// another message in flight on the channel), not by arrival order, and
// the Confirmation then resolves with *ReturnError when the ack that
// follows arrives. Every unconfirmed message has a deadline
// (WithConfirmTimeout): when it passes, or when the channel or connection
// is lost, the message counts as unconfirmed and is published again on a
// fresh channel, with what is left of its Expiration (counted from
// Publish); one whose Expiration has passed is not published again, and
// its Confirmation fails with ErrExpired (wrapping ErrUnconfirmed: the
// first copy may have reached a queue). A Confirmation therefore resolves
// as confirmed only on a broker ack, and with ErrUnconfirmed only when the
// broker is closed first or the message expired; delivery is at least
// once, so consumers may see a message twice and should deduplicate by
// message id where that matters. Publishes made while
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
