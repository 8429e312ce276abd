// Package gateway is patbus's REST gateway: an HTTP server on net/http that
// turns requests into acts by a route map in seneca-web's shape, and acts'
// replies and errors into responses.
//
// # Route maps
//
// A route map is a list of route sets (RouteSet), written in Go or read
// from JSON (ParseRoutes, LoadRoutes), as seneca-web takes them:
//
//	[{"prefix": "/user", "pin": "module:user,if:*",
//	  "map": {"list":   {"GET": true, "name": ""},
//	          "load":   {"GET": true, "name": "", "suffix": "/:id"},
//	          "edit":   {"PUT": true, "name": "", "suffix": "/:id"},
//	          "create": {"POST": true, "name": ""},
//	          "delete": {"DELETE": true, "name": "", "suffix": "/:id"}}}]
//
// gives GET /user, GET /user/:id, PUT /user/:id, POST /user and DELETE
// /user/:id, acting "if:list,module:user", "if:load,module:user" and so on.
// The rules are seneca-web's (its lib/mapper.js), with two keys of an
// action that its mapper does not read and the reference system's route
// map (examples/system/gateway/routes.json) uses: name and suffix.
//
//   - Each key of map is an action. The pin's pair whose value is "*"
//     takes the key as its value; that is the pattern acted on. A pin
//     without "*" is acted as it is by every action of its set.
//   - The path is prefix/name/postfix/suffix, joined and cleaned as
//     Node's path.join does (empty parts vanish, "//" becomes "/", a
//     trailing slash stays). The name is the key unless the action gives
//     name; name "" leaves it out. An alias replaces the whole path:
//     prefix, name, postfix and suffix are then ignored.
//   - An action names its verbs: GET, POST, PUT, DELETE, PATCH, HEAD,
//     OPTIONS, several at once. An action that names none, such as
//     seneca-web's `true` or the zero Action, is GET.
//   - Path parameters are Express's ":name" segments; their values arrive
//     in args.params.
//
// Where the gateway differs from seneca-web (with the Express adapter):
//
//   - An object that names no verb is GET; seneca-web maps it to no route.
//     A verb set to false is off; seneca-web looks only at the key. An
//     object whose verbs are all false, a verb given twice (in two cases)
//     and a null name are refused. A map
//     value other than true or an object (false, null, 0, a string) is
//     refused; seneca-web makes any of them GET.
//   - An alias gives the path /alias, as seneca-web's code does (its
//     documentation's table shows "/" for the alias "/home").
//   - A set without a pin, an empty key, a pin with more than one "*" and
//     two actions for one verb and path are configuration errors, where
//     seneca-web skips the first two silently, replaces only the first "*"
//     and lets Express serve the first of the last.
//   - middleware, auth, secure, redirect and autoreply are refused in a
//     route map: wrap the Gateway (an http.Handler) in middleware instead.
//   - Paths take ":name" parameters as whole segments only; Express's other
//     path syntax (a parameter inside a segment, "?", "+", "*", regular
//     expressions) is refused. Matching is http.ServeMux's (Go 1.22
//     patterns): case-sensitive, a trailing slash as written (Express is
//     case-insensitive and lenient about the trailing slash by default),
//     and where two paths match a request the more specific one wins
//     (/user/list before /user/:id), where Express takes the first
//     registered; two paths neither of which is more specific (/a/:x/b and
//     /a/c/:y) are a configuration error. A path that is not clean
//     ("/user//7") is redirected (307) to its clean form, with net/http's
//     short HTML body: the one response whose body is not JSON.
//   - args holds params, query and body; seneca-web's args.route and
//     args.user, and request$ and response$, are not sent: an act may cross
//     the broker, and they would not survive it.
//   - The body must be JSON (Express's body parsers also take forms); the
//     query is url.ParseQuery's, without qs's nesting ("a[b]=1" is the
//     name "a[b]"), and a query that does not parse (a bad escape, a ';')
//     is refused where qs would guess.
//   - A reply is always 200 with the action's JSON; errors have statuses
//     (below), where seneca-web leaves them to Express (500).
//
// # The act
//
// A request on a route acts the route's pattern with the input
//
//	{"args": {"params": {"id": "7"}, "query": {"q": "x"}, "body": {...}}}
//
// (type Request, for actions to decode). The body is the request's JSON,
// never decoded into Go values by the gateway, so numbers keep their
// digits: an action that decodes args.body into json.RawMessage or with
// json.Number sees 123456789012345678901234567890 and 1e400 as they were
// sent (the services runtime keeps them exact on its way too; white
// space and the order of keys may change there). A request without a body
// has {}. The act's context carries the request's cancellation, the
// deadline of WithTimeout, and the request's tx id (patbus.WithTx): the
// trace id of its W3C traceparent header, else its X-Request-Id (1 to 128
// visible ASCII characters), else a fresh one. Every response carries the
// tx id in X-Request-Id, and error bodies repeat it.
//
// The reply's body (services.Reply.Body) is the response body as it is:
// status 200, Content-Type application/json ("null" for an empty reply).
//
// # Errors
//
// A failed act is answered with the status HTTPStatus gives its code
// (patbus.Code): invalid_input 400, unauthorized 401, forbidden 403,
// not_found 404, conflict 409, too_large 413, no_route and unavailable (and
// no_action, closed, rejected) 503, timeout 504, canceled 499, anything
// else 500. The body is an ErrorBody:
//
//	{"code":"not_found","message":"no user 7","tx":"4bf92f3577b34da6a3ce929d0e0e4736"}
//
// The message (and details) are the action's own for statuses below 500
// (for input a typed action cannot decode, the services runtime's, which
// names the JSON path and the kinds of value, never Go types);
// for 500 and above they are a fixed text for the code, and the error
// itself goes to the log with the tx. Failures of the request itself have
// the same body: a path no route has is 404 (not_found), a verb its routes
// do not take 405 (method_not_allowed) with an Allow header.
//
// # Bad input
//
// A body longer than WithMaxBodyBytes (1 MiB) is answered 413 without
// being read further: at once when Content-Length says so (a client that
// sent "Expect: 100-continue" never sends it), else as soon as the limit
// is passed, and the connection is closed. A body needs Content-Type
// application/json (or another "+json" type; charset, if given, utf-8),
// else 415; a body that is not well-formed JSON in UTF-8, or that nests
// arrays and objects deeper than WithMaxDepth (64), is answered 400, as
// is a query string that does not parse and a path parameter or query
// that is not UTF-8 once unescaped. Run and Serve cut off slow
// clients with http.Server's ReadHeaderTimeout, ReadTimeout, WriteTimeout
// and IdleTimeout (options, with defaults). A panic while serving is
// recovered, logged and answered 500; no goroutine is started per request.
//
// # Health
//
// GET /healthz answers 200 while the process serves HTTP. GET /readyz
// answers 200 when every readiness check passes and 503 (unavailable)
// otherwise, and always 503 once Shutdown has begun. The checks are
// WithReadiness's, or by default those the Actor offers: its Ready method
// and BrokerCheck of its Broker (a *services.Service has both), so that
// /readyz turns 503 when the broker connection is lost or closed.
//
// # Cost
//
// BenchmarkGateway compares a GET through the gateway with a plain
// net/http handler doing the same work. On a shared two-core machine the
// gateway served 0.5 to 0.6 times the plain handler's requests per second
// when the action ran in-process (p50 60-80µs against 35µs, one client),
// about 0.4 over the in-memory broker, and 0.05 to 0.08 over RabbitMQ with
// one client (the broker's round trip, p50 0.45-0.73ms) and 0.2 to 0.3
// with 64. Most of the gateway's own time goes to the services runtime's
// JSON passes over the act, not to HTTP.
//
// # Running
//
// A Gateway is an http.Handler: it can be mounted in any server. Run
// (listening on WithAddr) and Serve (on a listener) run it in its own
// http.Server with its timeouts; when their context ends, or on Shutdown,
// they stop taking connections and drain the requests in flight; Close
// stops at once. The Actor is never closed by the gateway.
package gateway
