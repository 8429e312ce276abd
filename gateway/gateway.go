package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/services"
)

// Actor sends acts: what the gateway acts through. *services.Service
// satisfies it. Act must be safe for concurrent use; it must honour ctx's
// deadline and cancellation, and ctx carries the request's tx id
// (patbus.Tx).
type Actor interface {
	Act(ctx context.Context, pattern string, input any) (*services.Reply, error)
}

// Gateway is an HTTP server that turns requests into acts by a route map.
// It is an http.Handler, usable in any server; Run and Serve run it in its
// own http.Server with the timeouts of its options, and Shutdown drains
// it. All its methods are safe for concurrent use.
type Gateway struct {
	actor  Actor
	cfg    config
	log    *slog.Logger
	routes []Route
	checks []Check
	mux    *http.ServeMux
	srv    *http.Server

	draining atomic.Bool   // Shutdown or Close began: /readyz answers 503
	stopOnce sync.Once     // Shutdown and Close stop the server once
	stopped  chan struct{} // closed when that stop has finished
	stopErr  error         // what it returned, read after stopped
}

// New returns a gateway that serves routes by acting through actor. It
// checks the route map and the options and reports every problem at once,
// in an error wrapping patbus.ErrInvalidConfig: a set without a pin or
// with an invalid one, a pin with several "*" values, a path in a syntax
// the gateway does not take, two routes for one verb and path (the health
// endpoints included).
//
// The readiness checks are those of WithReadiness; without that option,
// those the actor offers: its Ready method and a BrokerCheck of its
// Broker, where it has them (*services.Service has both).
func New(actor Actor, routes []RouteSet, opts ...Option) (*Gateway, error) {
	cfg, err := newConfig(opts)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if actor == nil {
		errs = append(errs, fmt.Errorf("gateway: %w: nil actor", patbus.ErrInvalidConfig))
	}
	compiled, err := compile(routes)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	g := &Gateway{
		actor:   actor,
		cfg:     cfg,
		log:     cfg.log,
		routes:  compiled,
		mux:     http.NewServeMux(),
		stopped: make(chan struct{}),
	}
	g.checks = cfg.checks
	if !cfg.checksSet {
		g.checks = defaultChecks(actor)
	}
	if err := g.register(); err != nil {
		return nil, err
	}
	g.srv = &http.Server{
		Addr:              cfg.addr,
		Handler:           g,
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       cfg.idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.log.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// register adds the routes and the health endpoints to the mux.
func (g *Gateway) register() error {
	seen := map[string]string{} // method and path with unnamed parameters -> what took it
	var errs []error
	add := func(method, muxPath, what string, h http.HandlerFunc) {
		key := method + " " + shape(muxPath)
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s and %s both route %s", prev, what, key))
			return
		}
		seen[key] = what
		if err := handle(g.mux, method+" "+muxPath, h); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	if g.cfg.healthPath != "" {
		add("GET", g.cfg.healthPath, "the health endpoint", g.serveHealth)
	}
	if g.cfg.readyPath != "" {
		add("GET", g.cfg.readyPath, "the readiness endpoint", g.serveReady)
	}
	for i := range g.routes {
		rt := &g.routes[i]
		what := fmt.Sprintf("route set %d action %q (%s %s)", rt.Set, rt.Key, rt.Method, rt.Path)
		add(rt.Method, rt.mux, what, func(w http.ResponseWriter, r *http.Request) { g.serveRoute(rt, w, r) })
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway: route map: %w: %w", patbus.ErrInvalidConfig, err)
	}
	return nil
}

// shape writes a mux path with its wildcards unnamed, so that /a/{x} and
// /a/{y} compare equal.
func shape(p string) string {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		out = append(out, p[i])
		if p[i] == '{' && i+1 < len(p) && p[i+1] != '$' {
			for i+1 < len(p) && p[i+1] != '}' {
				i++
			}
		}
	}
	return string(out)
}

// handle registers h on mux, turning the panic with which ServeMux refuses
// a pattern (two patterns that conflict) into an error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Routes returns the routes of the route map, in order: set by set, each
// set's actions by key, each action's verbs in the order GET, HEAD, POST,
// PUT, PATCH, DELETE, OPTIONS. The slice is a copy.
func (g *Gateway) Routes() []Route {
	return append([]Route(nil), g.routes...)
}

// ServeHTTP answers one request: the health endpoints, a route of the
// route map (see the package documentation), or a JSON error: 404 for a
// path no route has, 405 with an Allow header for a verb the path's routes
// do not take. Every response carries the request's tx id in X-Request-Id.
// A panic in ServeHTTP is recovered, logged and answered 500 if nothing was
// written yet (http.ErrAbortHandler goes on up, as net/http expects).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tx, minted := requestTx(r)
	w.Header().Set(HeaderRequestID, tx)
	rw := &response{ResponseWriter: w, tx: tx, minted: minted}
	defer g.recover(rw, r)
	g.mux.ServeHTTP(rw, r)
}

func (g *Gateway) recover(w *response, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	g.log.Error("gateway: panic serving a request", "panic", v, "method", r.Method, "path", r.URL.Path,
		"tx", w.tx, "stack", string(debug.Stack()))
	if !w.wrote {
		w.routed = true
		writeError(w, http.StatusInternalServerError, ErrorBody{Code: patbus.CodePanic, Message: fixedMessage(patbus.CodeInternal, 500), Tx: w.tx})
	}
}

// own returns the gateway's writer of the request, marked as answered by
// a route or health endpoint (so its 404 and 405 are not rewritten).
func own(w http.ResponseWriter, r *http.Request) *response {
	rw, _ := w.(*response)
	if rw == nil {
		// ServeHTTP always hands the mux its own writer; this is for a
		// handler reached some other way.
		tx, minted := requestTx(r)
		rw = &response{ResponseWriter: w, tx: tx, minted: minted}
	}
	rw.routed = true
	return rw
}

// serveRoute acts on rt for one request and writes the reply.
func (g *Gateway) serveRoute(rt *Route, w http.ResponseWriter, r *http.Request) {
	rw := own(w, r)
	input, rerr := g.input(rt, rw, r)
	if rerr != nil {
		if rerr.status == http.StatusRequestEntityTooLarge {
			rw.Header().Set("Connection", "close")
		}
		writeError(rw, rerr.status, ErrorBody{Code: rerr.code, Message: rerr.message, Tx: rw.tx})
		return
	}
	var ctx context.Context
	if rw.minted {
		// A tx of the gateway's own is unique: the act may use it as
		// its request id and send it in no header (wire.ClaimFreshTx).
		ctx = wire.WithFreshTx(r.Context(), rw.tx)
	} else {
		ctx = patbus.WithTx(r.Context(), rw.tx)
	}
	if g.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.timeout)
		defer cancel()
	}
	rep, err := g.actor.Act(ctx, rt.Pattern, json.RawMessage(input))
	if err == nil && rep == nil {
		err = fmt.Errorf("gateway: the actor returned no reply and no error: %w", patbus.ErrBadReply)
	}
	if err != nil {
		status, body := bodyFor(err, rw.tx)
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelWarn
		}
		g.log.Log(ctx, level, "gateway: act failed", "method", r.Method, "path", r.URL.Path, "pattern", rt.Pattern,
			"status", status, "code", body.Code, "err", err, "tx", rw.tx)
		writeError(rw, status, body)
		return
	}
	body := rep.Body
	if len(body) == 0 {
		body = []byte("null")
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(body)
}

// input builds the act's input: {"args":{"params":…,"query":…,"body":…}}.
func (g *Gateway) input(rt *Route, w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("the query string does not parse")
	}
	// encoding/json would make U+FFFD of invalid UTF-8, so that
	// /user/%FF and /user/%FE would name one id: such a request is
	// refused, as such a body is.
	params := make(map[string]string, len(rt.params))
	for _, name := range rt.params {
		v := r.PathValue(name)
		if !utf8.ValidString(v) {
			return nil, badRequest("the path parameter %s is not valid UTF-8", name)
		}
		params[name] = v
	}
	q := make(map[string]any, len(query))
	for k, vs := range query {
		if !utf8.ValidString(k) || slices.ContainsFunc(vs, func(v string) bool { return !utf8.ValidString(v) }) {
			return nil, badRequest("the query string is not valid UTF-8")
		}
		if len(vs) == 1 {
			q[k] = vs[0]
		} else {
			q[k] = vs
		}
	}
	body, rerr := readBody(w, r, g.cfg.maxBody, g.cfg.maxDepth)
	if rerr != nil {
		return nil, rerr
	}
	pj, err := json.Marshal(params)
	if err != nil {
		return nil, badRequest("the path parameters do not encode")
	}
	qj, err := json.Marshal(q)
	if err != nil {
		return nil, badRequest("the query does not encode")
	}
	out := make([]byte, 0, len(`{"args":{"params":,"query":,"body":}}`)+len(pj)+len(qj)+len(body))
	out = append(out, `{"args":{"params":`...)
	out = append(out, pj...)
	out = append(out, `,"query":`...)
	out = append(out, qj...)
	out = append(out, `,"body":`...)
	out = append(out, body...)
	out = append(out, "}}"...)
	return out, nil
}
