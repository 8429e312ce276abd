// Package services is patbus's service runtime: Seneca's add, act, prior,
// default$ and use, over a bus.Broker, with a catalog that services keep on
// the bus itself.
//
// # A service
//
// A Service has a name and a semantic version. Add gives it actions, each
// for a pattern (package patterns); Act sends a message and returns the
// reply. AddFunc and Call are the typed edges: a handler can be a
// func(context.Context, Req) (Resp, error) and a call can return a Resp.
//
//	svc, _ := services.New("user", "1.0.0", services.WithBroker(b))
//	services.AddFunc(svc, "cmd:login", func(ctx context.Context, in Login) (Result, error) { ... })
//	res, err := services.Call[Result](ctx, caller, "cmd:login", Login{User: "asd", Password: "123"})
//
// Services that should talk share one broker: one value from bus.Open
// (the in-memory broker for "", RabbitMQ for an amqp:// address) given to
// each with WithBroker. A service made without WithBroker gets a private
// in-memory broker and can act only on itself; rather than keep a hidden
// process-wide broker (package-level state that tests and programs with
// two systems would share by accident), patbus reports that mistake at
// once: WaitFor for a pattern only another service could serve fails with
// ErrNoRoute and says so.
//
// A program that only acts (a command-line tool, a gateway) uses
// NewClient: a service named ClientName that announces nothing while it
// serves nothing.
//
// # The message
//
// The message of an act is its input, a JSON object, merged with the pairs
// of the pattern acted on; the pattern's pairs win. Pattern values enter the
// message typed as Seneca's jsonic types them (patterns.Pair.JSON):
// Act(ctx, "role:math,cmd:sum,left:1,right:2", nil) sends
// {"cmd":"sum","left":1,"right":2,"role":"math"}, so a typed handler can
// take left and right as ints. Matching compares values as strings
// (DESIGN.md section 2), so typing never changes which action is chosen.
// Numbers keep their exact digits on their way through (json.Number in
// Message.Data), so integers beyond 2^53 survive. Properties whose names
// end in '$' are metadata and never match.
//
// # Resolution
//
// The caller resolves a message against one router holding its own local
// actions and the patterns that live remote services announced, by the
// Patrun rules. On the winning pattern:
//
//   - a local action runs in-process (unless the service was made with
//     WithBrokerOnly, WithPreferLocal(false): then the act goes through the
//     broker and load spreads over every instance, this one included);
//   - otherwise the newest version (semver precedence) among the services
//     that announced the pattern is called over the broker.
//
// $$target and $$version in a message pin a service and a version. They
// take part in matching like any key (so a pattern may name them:
// "$$target:config-server" catches every act pinned to the config server),
// and then filter who may serve the winning pattern. If the pins leave
// nobody for it, the other patterns the message matches are tried, those
// with the most pairs first. A message that resolves nowhere fails with an
// error wrapping ErrNoRoute at once, without waiting for its deadline; if
// it has a default$ property, the act answers with that value instead
// (Seneca's default$). The same holds when the broker finds no queue for a
// request. Only a new instance waits: until the answers to its first
// discover have had time to arrive (a tenth of its heartbeat, 500ms by
// default), an act that finds no route waits for the catalog (bounded by
// its deadline) before it concludes that nobody serves it.
//
// # Acts over the broker
//
// Each service version consumes one durable queue, "patbus.act.<name>@<version>",
// shared by its instances, bound on the topic exchange "patbus.act" with the
// routing key (patterns.Key) of each of its patterns extended with
// $$target:<name> and $$version:<version>. A caller that resolved a message
// to a service version publishes the request on "patbus.act" with the
// routing key of the resolved pattern extended the same way, and the
// pattern as the message type: every act is visible on the exchange, so a
// queue bound there with "#" (patbus tail, an audit) or with a pattern's
// binding key sees it, and a program in another language can act by
// pattern (WIRE.md). WithDirectToQueue is the explicit opt-out: it
// publishes straight to the version's queue through the default exchange
// (the catalog names it), which spares the broker the topic routing but
// hides the act from the exchange. Either way the instance runs the local
// action of that exact pattern, or else the one the message matches.
// Request and reply follow package rpc (WIRE.md): mandatory publish (no
// queue: ErrNoRoute at once), the deadline in the handler's context, reply
// then ack (a crash mid-request means redelivery to another instance). If the
// queue is deleted under a running service, the service declares it
// again, binds it and serves it; meanwhile acts routed there fail at once
// with ErrNoRoute.
//
// # Priors, plugins and lifecycle
//
// When a pattern is added, the action it would have matched at that moment
// (or the action it replaces) becomes its prior; a handler calls it with
// Prior(ctx, msg). Use adds a Plugin, whose Init runs at once with the
// options given to Use (PluginOptions); plugins that implement PluginCloser
// are closed in reverse order when the service closes.
//
// Ready starts the service on the broker (Act and WaitFor call it); WaitFor
// waits until a pattern can be routed, for callers that start before the
// services they call. Close stops at once; Shutdown leaves the catalog,
// stops taking requests, finishes those in flight, then closes.
//
// # Errors
//
// A failed action reaches the caller as a *patbus.Error (errors.As) with a
// code, message, service, version and tx, whether it ran locally or
// remotely: NewError chooses the code; other errors are "internal",
// panics "panic" (the service keeps running), deadlines "timeout". A
// pattern that does not parse wraps patterns.ErrInvalidPattern, input that
// is not a JSON object ErrInvalidInput, a message too large bus.ErrTooLarge,
// a reply that does not decode ErrBadReply. Failures of the transport are
// *rpc.CallError values naming the pattern, the target and how long the
// caller waited. patbus.Code gives the code of any of them.
//
// # Tracing
//
// Every act carries a tx id (Seneca's tx$): the one in ctx (patbus.Tx;
// patbus.WithTx sets it) or a fresh one. Handlers receive it in their context and in Message.Tx,
// so acts made inside a handler inherit it, across services. Every log line
// about an act carries the attribute "tx".
//
// # The catalog
//
// Services keep the catalog on the fanout exchange "patbus.registry"
// (durable). Each instance consumes its own exclusive, auto-delete queue
// "patbus.registry.<instance>". Messages are JSON objects:
//
//	{"type":"announce","service":"user","version":"1.0.0","instance":"user-3f2a…",
//	 "patterns":["cmd:login"],"queue":"patbus.act.user@1.0.0","heartbeat_ms":5000}
//	{"type":"discover","service":…,"version":…,"instance":…}
//	{"type":"leave","service":…,"version":…,"instance":…}
//
// On start an instance announces itself and sends discover; every instance
// answers discover with an announce, announces again when it adds a
// pattern, and every heartbeat (WithHeartbeat, default 5s). An instance
// silent for MissedHeartbeats of its own heartbeat intervals is dropped; an
// instance that leaves is dropped at once. A service version is routable
// while it has a live instance. Catalog returns what an instance knows.
// "queue" names the version's act queue, to which callers made with
// WithDirectToQueue send its acts straight (an announce without it is
// reached through the act exchange).
package services
