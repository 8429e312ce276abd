// Package patbus holds what every patbus package shares: the tx id that
// ties a chain of acts together, the error model (sentinels, codes and the
// Error that travels on the wire), and the one shape of a consumed
// message, its Handler and Middleware.
//
// patbus is a message-bus-first microservice framework: a service does not
// call host:port, it acts a pattern such as "role:user,cmd:login", and
// whichever service added the best-matching pattern answers, as in
// Seneca. Every act, event and work item is a message on RabbitMQ (or on
// the in-memory broker, which behaves the same in one process). The
// packages, from the bottom up:
//
//   - patterns: pattern syntax, Seneca's matcher (Patrun) and routing keys;
//   - bus: the broker (RabbitMQ through amqp091-go, or in memory);
//   - rpc, pubsub, workers: request/reply, events, work queues;
//   - services: Seneca's add, act, prior and use, with a catalog on the bus.
//
// # Tx
//
// Tx, WithTx and NewTx read, set and make the tx id (Seneca's tx$). Every
// handler's context carries the tx of its message; whatever a handler
// sends with that context carries it on.
//
// # Errors
//
// Errors from every package wrap the sentinels here (each package exports
// the same values under its own name: services.ErrNoRoute is ErrNoRoute).
// A handler's failure travels as an *Error with a code; Code gives the
// code of any error a patbus package returns, so one switch tells every
// failure apart:
//
//	switch patbus.Code(err) {
//	case patbus.CodeNoRoute:   // nobody serves the pattern
//	case patbus.CodeTimeout:   // no answer before the deadline
//	case patbus.CodeNotFound:  // the handler said so
//	}
//
// # Handlers and middleware
//
// Every consumer runs one engine: it reads each delivery into a Message
// (the headers decoded once, by one codec), bounds the handlers running
// at once, recovers panics, gives the handler a context with the tx and
// the deadline, logs, runs the middleware the program added
// (WithMiddleware in each package), then the handler, and acks, retries
// or dead-letters by what the handler returned. A Middleware is a
// func(next Handler) Handler, as net/http's wrappers are.
package patbus
