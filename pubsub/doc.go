// Package pubsub is patbus's event primitive: events emitted by pattern on
// the topic exchange patbus.events, subscriptions by pattern in groups (one
// copy per group) or as broadcasts (one copy per instance), and the RabbitMQ
// classics — fanout, direct and topic routing with raw keys — as first-class
// helpers. It is written once against bus.Broker and runs on RabbitMQ and on
// the in-memory broker alike.
//
// # Events by pattern
//
// Emit(ctx, "role:user,evt:login", data) publishes on the durable topic
// exchange patbus.events (EventsExchange). The routing key is the pattern's
// (patterns.Key: "evt:login.role:user"); only the pattern routes, never the
// data. The body is data's JSON object with the pattern's pairs added
// (typed as Seneca's jsonic types them, patterns.Pair.JSON: "id:5" adds
// {"id":5}): a
// pair data already holds with the same value (compared as strings, as
// Patrun compares) is kept; a different value is an error wrapping
// ErrInvalidData. The canonical pattern also travels in the header
// wire.HeaderPattern. Events are published persistent, and Emit returns
// once the broker confirmed the event. An event with no subscriber is
// dropped by the broker, as RabbitMQ does; that is not an error.
//
// Subscribe(ctx, "role:user,evt:*", h, Group("audit")) binds with the
// pattern's binding key (patterns.BindingKey): its exact pairs in sorted
// order with '#' before, between and after them ("#.role:user.#"), so every
// event whose pattern holds those pairs, and perhaps more, arrives. Glob
// pairs are left out of the binding and checked by the subscriber with
// Pattern.Match on the event's body; events that do not match are acked and
// skipped. Route on what you put in the pattern: an exact pair that only
// the data holds does not route.
//
// # Groups and broadcasts
//
// Group(name) subscribes through the durable queue "<exchange>.<name>"
// (patbus.events.<name> for events), shared by every instance of the group:
// each event reaches one instance of each group. The queue and its bindings
// outlive the instances, and events are persistent, so a group whose
// instances fall over loses nothing: the events wait in the queue. Every
// instance of a group must subscribe the same pattern (or the same keys);
// one PubSub refuses a second subscription to a group with a different one.
// A binding that a group no longer uses stays on its queue until removed by
// hand (its events are acked and skipped).
//
// Broadcast() (the default) gives each subscription its own exclusive,
// auto-delete queue with a client-chosen name: every instance gets a copy,
// and the queue goes away with the subscription or the connection.
//
// # The RabbitMQ classics
//
// PublishFanout/SubscribeFanout (every subscriber gets every message),
// PublishDirect/SubscribeDirect (routing key equals a binding key) and
// PublishTopic/SubscribeTopic (raw topic keys: "*.error", "#.info") declare
// the named exchange (durable) of the right kind, publish persistent and
// confirmed, and subscribe with the same Group and Broadcast options.
//
// # Handlers and failures
//
// A Handler gets an Event (pattern, routing key, body, headers, tx) and a
// context carrying the event's tx id (wire.Tx). A subscription runs
// Concurrency handlers at once (default 1, so events arrive in order) with
// at most WithPrefetch unacknowledged. An event is acked after its handler
// returns nil. When the handler fails or panics, the event is requeued once;
// if it fails again (or fails after a redelivery), it is rejected: a group's
// queue dead-letters it to "<queue>.dead" (declared with the group), a
// broadcast queue drops it with an error log.
//
// # Stopping
//
// Subscription.Shutdown stops intake, lets running handlers finish and ack,
// and releases the consumer; Subscription.Close stops at once (the handlers'
// context is cancelled and unacked events go back to the queue). A
// broadcast queue is deleted when its subscription stops. PubSub.Shutdown
// and PubSub.Close do the same for every subscription the PubSub made. The
// broker is never closed by this package.
package pubsub
