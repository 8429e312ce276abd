package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/rpc"
)

// Act sends a message and returns the reply. The message is input (a JSON
// object: a struct, a map[string]any, a *Message, or JSON as
// json.RawMessage, []byte or string; nil is {}) merged with the pairs of
// pattern, which win over the input's own values. Pattern values enter the
// message typed as Seneca's jsonic types them (patterns.Pair.JSON: "a:1"
// gives {"a":1}, "b:true" {"b":true}, "c:x" {"c":"x"}); matching compares
// values as strings anyway (DESIGN.md section 2). Numbers in the input keep
// their exact digits (no float64 rounding of large integers).
//
// The message resolves against one router of local actions and the
// patterns remote services announce (see the package documentation for the
// rules, $$target, $$version and default$). A local action runs in-process,
// synchronously, with ctx; a remote one is called over the broker.
//
// ctx carries the tx id (a fresh one if it has none) and the deadline
// (WithTimeout's default when it has none). Errors: a pattern that does not
// parse wraps patterns.ErrInvalidPattern; input that is not a JSON object
// wraps ErrInvalidInput; a message too large for the broker wraps
// bus.ErrTooLarge; no action anywhere wraps ErrNoRoute (unless the message
// has default$); a failed action is a *patbus.Error (errors.As) with its code
// and message. Act starts the service (Ready) if it has not started.
func (s *Service) Act(ctx context.Context, pattern string, input any) (*Reply, error) {
	pp, err := s.parsed.get(pattern)
	if err != nil {
		return nil, err
	}
	return s.act(ctx, pp.p, pp.pairs, pp.values, input)
}

// ActPattern is Act with a parsed pattern.
func (s *Service) ActPattern(ctx context.Context, p patterns.Pattern, input any) (*Reply, error) {
	return s.act(ctx, p, p.Pairs(), nil, input)
}

// act runs an act on p, whose pairs are given, with their values as JSON
// (Pair.JSON) when known.
func (s *Service) act(ctx context.Context, p patterns.Pattern, pairs []patterns.Pair, values []any, input any) (*Reply, error) {
	if s.state.Load() != stateRunning {
		if err := s.Ready(ctx); err != nil {
			return nil, err
		}
	}
	data, err := toObject(input)
	if err != nil {
		return nil, fmt.Errorf("services: act %s: %w", p, err)
	}
	for i, pr := range pairs {
		if values != nil {
			data[pr.Key] = values[i]
		} else {
			data[pr.Key] = pr.JSON()
		}
	}
	if v, ok := data[keyVersion]; ok {
		if _, err := s.pins.get(pin(v)); err != nil {
			return nil, fmt.Errorf("services: act %s: %w", p, err)
		}
	}
	tx := wire.Tx(ctx)
	root := tx == ""
	if root {
		tx = wire.NewID()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("services: act %s: %w", p, ctxErr(err))
	}
	res, ok := s.resolve(s.snap.Load(), data)
	if !ok {
		if _, has := ctx.Deadline(); !has {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.cfg.timeout)
			defer cancel()
		}
		res, ok = s.routeAfterDiscovery(ctx, data)
		if !ok && ctx.Err() != nil {
			return nil, fmt.Errorf("services: act %s: no service heard of before the deadline: %w: %w", p, ErrTimeout, ctx.Err())
		}
	}
	if !ok {
		if rep, ok := defaultReply(data, tx); ok {
			s.logAct(ctx, slog.LevelDebug, "services: act answered with default$", tx, p, "")
			return rep, nil
		}
		s.logAct(ctx, slog.LevelDebug, "services: act has no route", tx, p, "")
		if sick := s.criticalFor(s.snap.Load(), data); len(sick) > 0 {
			return nil, fmt.Errorf("services: no healthy service for pattern %s (%s: %w): %w",
				p, strings.Join(sick, ", "), errUnhealthy, ErrNoRoute)
		}
		return nil, fmt.Errorf("services: no service for pattern %s: %w", p, ErrNoRoute)
	}
	if res.local != nil {
		s.logAct(ctx, slog.LevelDebug, "services: act (local)", tx, p, res.local.canon)
		return s.runLocal(ctx, res.local, data, nil, tx)
	}
	if wire.Tx(ctx) != tx {
		ctx = wire.WithTx(ctx, tx)
	}
	return s.runRemote(ctx, res, p, data, tx, root || wire.ClaimFreshTx(ctx, tx))
}

func (s *Service) logAct(ctx context.Context, level slog.Level, msg, tx string, p patterns.Pattern, matched string, attrs ...slog.Attr) {
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs = append(attrs, slog.String("tx", tx), slog.String("service", s.name), slog.String("pattern", p.String()))
	if matched != "" {
		attrs = append(attrs, slog.String("matched", matched))
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}

// runRemote calls the chosen provider over the broker. A root act (ctx had
// no tx, or a fresh one nothing has claimed: wire.ClaimFreshTx) uses its tx
// as the request's id, so that it travels without a tx header
// (rpc.Request.ID).
func (s *Service) runRemote(ctx context.Context, res resolution, p patterns.Pattern, data map[string]any, tx string, root bool) (*Reply, error) {
	body, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("services: act %s: %w: %w", p, ErrInvalidInput, err)
	}
	if len(body) > s.cfg.maxMessageSize {
		return nil, fmt.Errorf("services: act %s: message of %d bytes exceeds %d: %w", p, len(body), s.cfg.maxMessageSize, bus.ErrTooLarge)
	}
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if client == nil {
		return nil, ErrClosed
	}
	pr := res.remote
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.timeout)
		defer cancel()
	}
	s.logAct(ctx, slog.LevelDebug, "services: act (remote)", tx, p, res.route.canon, slog.String("target", pr.target))
	start := time.Now()
	// Every act goes on the act exchange with its pattern's key; only an
	// explicit WithDirectToQueue sends it straight to the version's queue.
	exchange, key := s.cfg.actExchange, pr.key
	if s.cfg.directToQueue && pr.queue != "" {
		exchange, key = "", pr.queue
	}
	req := rpc.Request{Exchange: exchange, Key: key, Pattern: res.route.canon, Target: pr.target, Body: body}
	if root {
		req.ID = tx
	}
	rep, err := client.Call(ctx, req)
	// An interrupted act (its answer lost with a connection) may have
	// run: it is sent again only when its action says that is harmless,
	// while the deadline allows.
	for attempt := 2; err != nil && pr.idempotent && errors.Is(err, patbus.ErrInterrupted) && ctx.Err() == nil; attempt++ {
		s.logAct(ctx, slog.LevelInfo, "services: act interrupted; sending it again (idempotent)", tx, p, res.route.canon,
			slog.String("target", pr.target), slog.Int("attempt", attempt))
		rep, err = client.Call(ctx, req)
	}
	if err != nil {
		if errors.Is(err, rpc.ErrNoRoute) {
			if rep, ok := defaultReply(data, tx); ok {
				return rep, nil
			}
		}
		s.logAct(ctx, slog.LevelDebug, "services: act failed", tx, p, res.route.canon,
			slog.String("target", pr.target), slog.Duration("took", time.Since(start)), slog.String("error", err.Error()))
		return nil, err
	}
	out := &Reply{Body: rep.Body, Service: rep.Service, Version: rep.Version, Tx: tx}
	if out.Service == "" {
		out.Service, out.Version = pr.service, pr.version
	}
	return out, nil
}

// runLocal runs a local action in-process and encodes its result.
func (s *Service) runLocal(ctx context.Context, a *action, data map[string]any, raw []byte, tx string) (*Reply, error) {
	actx := newActContext(ctx, tx, a, s.cfg.timeout)
	defer actx.release()
	body, rerr, cause := s.exec(actx, a, data, raw, tx, true)
	if rerr != nil {
		return nil, &localError{remote: rerr, cause: cause}
	}
	return &Reply{Body: body, Service: s.name, Version: s.version, Tx: tx, Local: true}, nil
}

// exec runs a's handler on msg with panic recovery and encodes the
// result; on failure it returns the wire error and the handler's own
// error. ctx is the act's context (actContext). The handler runs under
// guard when local is set (an act made in this process, whose caller
// waits), on the calling goroutine otherwise (an act from the broker, on
// the rpc server's pool).
func (s *Service) exec(ctx *actContext, a *action, data map[string]any, raw []byte, tx string, local bool) ([]byte, *patbus.Error, error) {
	msg := &Message{Data: data, Pattern: a.pattern, Tx: tx, raw: raw, svc: s, hasBody: raw != nil}
	var res any
	var err error
	switch {
	case !local || s.cfg.inlineLocal:
		res, err = s.invoke(ctx, a, msg)
		if err == nil && local && ctx.Err() != nil {
			err = lateError(a, ctx)
		}
	default:
		j := s.runner.job()
		j.s, j.ctx, j.a, j.tx, j.msg = s, ctx, a, tx, msg
		res, err = s.guard(ctx, j)
	}
	if err != nil {
		return nil, s.toRemote(err, tx, a.canon), err
	}
	body, err := json.Marshal(res)
	if err != nil {
		err = fmt.Errorf("services: encode reply of %s: %w", a.canon, err)
		return nil, s.toRemote(err, tx, a.canon), err
	}
	return body, nil, nil
}

// invoke calls a's handler, turning a panic into an error.
func (s *Service) invoke(ctx context.Context, a *action, msg *Message) (res any, err error) {
	defer s.recoverPanic(ctx, a, msg.Tx, &err)
	return a.handler.Handle(ctx, msg)
}

// serveRPC answers an act that arrived from the broker: the local action
// named exactly by the pattern header, else the one the message matches.
func (s *Service) serveRPC(ctx context.Context, req *rpc.ServerRequest) ([]byte, error) {
	tx := req.Tx
	if tx == "" {
		ctx, tx = wire.EnsureTx(ctx)
	}
	invalid := func(err error) error {
		return &patbus.Error{Code: CodeInvalidInput, Message: err.Error(), Service: s.name, Version: s.version, Tx: tx, Pattern: req.Pattern}
	}
	snap := s.snap.Load()
	// An empty header is a producer that sent none (WIRE.md), not the
	// catch-all pattern {}: match the message then.
	a, ok := snap.exact[req.Pattern]
	ok = ok && req.Pattern != ""
	typed := false
	if ok {
		_, typed = a.handler.(decodesOnly)
	}
	var data map[string]any
	if typed {
		// Decoded once, by the handler, into its own type.
		if err := checkObject(req.Body); err != nil {
			return nil, invalid(err)
		}
	} else {
		var err error
		if data, err = decodeObject(req.Body); err != nil {
			return nil, invalid(err)
		}
		if !ok {
			a, ok = snap.local.Find(data)
		}
	}
	if !ok {
		return nil, &patbus.Error{Code: CodeNoAction, Message: "services: no action for pattern " + req.Pattern, Service: s.name, Version: s.version, Tx: tx, Pattern: req.Pattern}
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "services: serving act", slog.String("tx", tx), slog.String("service", s.name),
			slog.String("pattern", req.Pattern), slog.String("matched", a.canon), slog.Bool("redelivered", req.Redelivered))
	}
	actx := newActContext(ctx, tx, a, 0)
	body, rerr, _ := s.exec(actx, a, data, req.Body, tx, false)
	if rerr != nil {
		return nil, rerr
	}
	return body, nil
}
