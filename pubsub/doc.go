// Package pubsub is patbus's event primitive: events emitted by pattern on
// the topic exchange patbus.events, subscriptions by pattern in groups
// (one copy per group) or as broadcasts (one copy per instance), and the
// RabbitMQ classics (fanout, direct and topic routing with raw keys) as
// first-class helpers. It is written once against bus.Broker and runs on
// RabbitMQ and on the in-memory broker alike.
//
// # Events by pattern
//
// Emit(ctx, "role:user,evt:login", data) publishes on the durable topic
// exchange patbus.events (EventsExchange). The routing key is the
// pattern's (patterns.Key: "evt:login.role:user"); only the pattern
// routes, never the data. The body is data's JSON object with the
// pattern's pairs added (typed as Seneca's jsonic types them,
// patterns.Pair.JSON: "id:5" adds {"id":5}): a pair data already holds
// with the same value (compared as strings, as Patrun compares) is kept; a
// different value is an error wrapping ErrInvalidInput. A PubSub parses
// each pattern string once and keeps what it worked out (a bounded
// cache), so emitting the same pattern again costs no parsing.
//
// Every event is published persistent (unless WithTransient) and carries,
// besides its JSON body:
//
//   - the canonical pattern as the message's AMQP type (in the header
//     patbus-pattern when it is longer than 255 bytes);
//   - when the context carries a tx id (patbus.Tx: the event belongs to a
//     chain), that id, written compactly: a tx id that is a W3C trace id
//     travels only as the trace id of the header traceparent, any other
//     also in patbus-tx. An event that starts a chain carries no tx header
//     (every header costs the broker on every message), and its
//     subscribers make a fresh tx;
//   - a fresh message id, a UUID: delivery is at least once, so a
//     subscriber that must not handle an event twice deduplicates by
//     Event.ID.
//
// Emit returns once the broker confirmed the event. EmitAsync returns the
// pending bus.Confirmation instead, so that a producer keeps a window of
// events in flight, and EmitBatch publishes many events and then waits for
// all their confirms: both give far more events per second than one Emit
// after another. An event with no subscriber is dropped by the broker, as
// RabbitMQ does; that is not an error.
//
// Subscribe(ctx, "role:user,evt:*", h, Group("audit")) binds with the
// pattern's binding key (patterns.BindingKey): its exact pairs in sorted
// order with '#' before, between and after them ("#.role:user.#"), so
// every event whose pattern holds those pairs, and perhaps more, arrives.
// Glob pairs are left out of the binding and checked by the subscriber
// with Pattern.Match on the event's body, before the middleware and the
// handler run; events that do not match are acked and skipped. Route on
// what you put in the pattern: an exact pair that only the data holds
// does not route.
//
// # Groups and broadcasts
//
// Group(name) subscribes through the durable queue "<exchange>.<name>"
// (patbus.events.<name> for events), shared by every instance of the
// group: each event reaches one instance of each group. The queue and its
// bindings outlive the instances, and events are persistent, so a group
// whose instances fall over loses nothing: the events wait in the queue.
// Every instance of a group must subscribe the same pattern (or the same
// keys); one PubSub refuses a second subscription to a group with a
// different one. A binding that a group no longer uses stays on its queue
// until removed by hand (its events are acked and skipped).
//
// Broadcast() (the default) gives each subscription its own exclusive,
// auto-delete queue with a client-chosen name: every instance gets a
// copy, and the queue goes away with the subscription or the connection.
//
// # The RabbitMQ classics
//
// PublishFanout/SubscribeFanout (every subscriber gets every message),
// PublishDirect/SubscribeDirect (routing key equals a binding key) and
// PublishTopic/SubscribeTopic (raw topic keys: "*.error", "#.info")
// declare the named exchange (durable) of the right kind, publish
// persistent and confirmed with a tx and a UUID message id, and subscribe
// with the same options as Subscribe.
//
// # Handlers, middleware and failures
//
// A subscription runs the consumer engine that every patbus consumer
// runs. For each delivery it reads the patbus headers once into an Event
// (patbus.Message: pattern, routing key, id, tx, body, headers), gives the
// handler a context that carries the event's tx id (patbus.Tx), so that
// whatever the handler emits or acts belongs to the same chain, recovers
// panics, logs, then runs the pattern check, the program's middleware
// (WithMiddleware, patbus.Middleware: New's outermost, then the
// subscription's) and the Handler. Handlers are patbus.Handler values:
// Typed(fn) decodes each body into fn's type, HandlerFunc adapts a
// function that takes the Event.
//
// At most WithConcurrency handlers of one subscription run at once
// (default one, so events are handled in the order of their queue), with
// at most WithPrefetch events held unsettled. What the chain returns
// settles the event:
//
//   - nil acks it;
//   - a failure wrapping ErrInvalidInput (a body that does not decode, as
//     Typed and Event.Decode report it) rejects it at once: a retry
//     cannot succeed;
//   - any other failure, or a panic, requeues it once; if it fails again
//     (or fails after a redelivery), it is rejected;
//   - a handler canceled because its subscription is closing gives the
//     event back to the queue.
//
// A rejected event of a group goes to the dead-letter queue
// "<queue>.dead" (declared with the group); a broadcast queue drops it
// with an error log.
//
// # Options
//
// New and Subscribe take the same Option type: WithLogger, WithPrefetch,
// WithConcurrency, WithMiddleware and WithTransient given to New are the
// defaults of every subscription the PubSub makes, and given to Subscribe
// they override them for that subscription; Group and Broadcast apply to
// subscriptions only. Options are validated at once: one error, wrapping
// ErrInvalidConfig, lists every problem.
//
// # Stopping
//
// Subscription.Shutdown stops intake, lets running handlers finish and
// their events be settled, and releases the consumer; if its context ends
// first, it cancels the handlers' context, waits for them (their events go
// back to the queue) and returns ctx.Err(). Subscription.Close stops at
// once. Done is closed once a subscription has stopped serving, and Err
// says why it ended when nobody stopped it (its queue deleted, the broker
// closed). PubSub.Shutdown and PubSub.Close do the same for every
// subscription the PubSub made, and refuse further calls with ErrClosed.
// The broker is never closed by this package.
package pubsub
