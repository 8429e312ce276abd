// Package rpc is request/reply over a bus.Broker: a Client that calls and a
// Server that answers, matched by correlation id, as DESIGN.md section 4
// describes. It works the same on RabbitMQ and on the in-memory broker.
//
// # Calls
//
// A Client declares one exclusive reply queue ("patbus.reply.<random>") and
// consumes it for its whole life, with automatic acknowledgement (a reply
// is at most once by nature: a lost one ends its call with a timeout). Each
// Call publishes the request to Request.Exchange with Request.Key (as in
// bus and amqp091-go, "" is AMQP's default exchange, where the key is a
// queue name; package services publishes acts on its topic exchange
// patbus.act), mandatory, with publisher confirms, a fresh correlation id,
// the reply queue as reply-to, the pattern as the message type, the tx id
// inside traceparent (none when the call starts a chain: its tx is then
// its correlation id), the deadline in the header patbus-deadline and the
// time left before it as the message expiration (WIRE.md: every header
// costs both ends and the broker, so there are as few as that). It then
// waits for whichever comes first: the reply, a return from the broker (no queue bound for the key:
// ErrNoRoute at once, never a timeout), a nack, the deadline, or Close.
// Replies whose correlation id nobody waits for any more are dropped.
// When the reply queue's connection is lost while a call waits, the queue
// and any reply in it go with it: the call fails at once with a *CallError
// wrapping ErrInterrupted (the request may have run) instead of waiting for
// its deadline; the bus declares the queue again for the next calls.
//
// # Direct reply-to
//
// With WithDirectReplyTo a Client declares no reply queue: it publishes its
// requests through a bus.DirectReply (RabbitMQ's direct reply-to: a channel
// of its own that consumes amq.rabbitmq.reply-to; the in-memory broker
// emulates it) and reads the replies there, matched by correlation id as
// above. Servers need no change: they reply to whatever reply-to says.
// Replies are at most once and live only as long as that channel: when it
// is lost, the calls waiting on it fail at once with a *CallError wrapping
// ErrInterrupted and bus.ErrDisconnected (the handler may have run), and
// the next Call opens
// a new one, waiting for the reconnect within its context. The default
// stays the exclusive reply queue, which measured as fast or slightly
// faster (BenchmarkInterleaved reports both).
//
// # Serving
//
// A Server consumes one queue (declared and bound by the caller) on the
// consumer engine that every patbus consumer runs (package patbus,
// Handler and Middleware): a prefetch bounds the requests in flight, the
// handlers run on a pool of that many goroutines, never on the broker's
// delivery goroutine, each request is read once into a patbus.Message
// (ServerRequest), panics are recovered, and the middleware given with
// WithMiddleware runs around the handler. The handler's context carries
// the tx id and the caller's deadline; it answers by returning the reply
// body (HandlerFunc) or setting the message's Reply. The reply is
// published first (to the default exchange, key = reply-to, not
// mandatory) and only then the request acked: an instance that dies
// mid-request leaves the request to another instance. Reply and ack go out
// in order on the request's own channel, which the Server consumes on the
// publishing connection (bus.ConsumeOptions.Replies): RabbitMQ takes a
// channel's methods in order, so the reply needs no confirm. Against a
// confirmed reply that cut the CPU per request by more than a quarter,
// in RabbitMQ and in the Go process alike (BenchmarkThroughput64).
// WithConfirmedReplies confirms each reply before the ack instead.
// Requests that arrive past their deadline are acked without running.
//
// # Errors
//
// Errors travel as data: a handler's error becomes an Error object in the
// reply body (code, message, details, service, version, tx, pattern) with
// the header patbus-status "error", and Call returns it as a *Error
// (patbus.Error), so errors.As finds it and patbus.Code reads its code.
// Panics become code "panic". Failures without a remote
// answer are *CallError values naming the pattern, the target and how long
// the caller waited, wrapping ErrNoRoute, ErrTimeout, ErrClosed or a bus
// error.
//
// # Lifecycle
//
// Server.Shutdown stops intake and waits for in-flight requests (reply, then
// ack); if its context ends first, it cancels the handlers and gives their
// requests back to the queue. Server.Close does that at once. Client.Close fails the calls still waiting with ErrClosed. Neither
// closes the broker.
//
// The wire format, for producers in other languages, is in WIRE.md at the
// root of the repository.
package rpc
