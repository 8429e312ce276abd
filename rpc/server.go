package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
	"github.com/patbus/patbus/internal/wire"
)

// ServerRequest is a request as a handler sees it: the patbus.Message of
// kind act, with its pattern, tx, deadline, body and headers read once by
// the engine. A handler answers by returning the reply body (HandlerFunc)
// or by setting Reply.
type ServerRequest = patbus.Message

// Handler answers requests: the engine's patbus.Handler. Its Handle sets
// the request's Reply to the reply body (JSON) and returns nil, or returns
// an error: a *patbus.Error chooses the code, message and details the
// caller sees; other errors get the code patbus.Code gives them ("internal"
// for errors it does not know, "timeout" for errors wrapping
// context.DeadlineExceeded); a panic is recovered, logged and answered with
// code "panic".
//
// Handle runs on a goroutine of the Server's pool, never on the broker's
// delivery goroutine; up to the prefetch of them run at once. Its context
// carries the tx id (patbus.Tx) and the caller's deadline, and is canceled
// when the Server is closed.
type Handler = patbus.Handler

// HandlerFunc adapts a function that returns the reply body to Handler.
type HandlerFunc func(ctx context.Context, req *ServerRequest) ([]byte, error)

// Handle calls f and sets the request's Reply to what it returned.
func (f HandlerFunc) Handle(ctx context.Context, req *ServerRequest) error {
	reply, err := f(ctx, req)
	req.Reply = reply
	return err
}

// Server consumes one queue and answers its requests. Every instance of a
// service version consumes the same queue; the broker hands each request to
// one of them.
//
// It runs the engine (package doc): for each request the handler runs
// through the middleware, then the reply is published to the default
// exchange with the request's reply-to as key and its correlation id, and
// only then the request acked (bus.Reply): if the instance dies before it
// replied, the broker delivers the request again, to another instance. By
// default reply and ack go out in that order on the request's own channel;
// WithConfirmedReplies waits for the broker's confirm of the reply instead,
// and a reply the broker refused (a nack) then gives the request back while
// its caller still waits. A confirmed reply's request is acked without the
// confirm once the caller's deadline has passed (nobody waits for the reply
// any more) or after the reply confirm timeout (WithReplyConfirmTimeout).
// A request whose deadline has passed when it arrives is acked without
// running the handler. A request without reply-to is handled and acked
// without a reply.
type Server struct {
	b     bus.Broker
	queue string
	h     Handler
	cfg   config
	appID string // the replies' app-id: service@version

	mu      sync.Mutex
	started bool
	stopped bool
	c       *engine.Consumer
	done    chan struct{} // closed once the consumer's handlers have returned
}

// NewServer returns a Server for queue, which the caller declares and binds.
// It checks its arguments and options and does nothing else: Start begins
// consuming.
func NewServer(b bus.Broker, queue string, h Handler, opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var problems []error
	if b == nil {
		problems = append(problems, errors.New("nil broker"))
	}
	if queue == "" {
		problems = append(problems, errors.New("empty queue name"))
	}
	if h == nil {
		problems = append(problems, errors.New("nil handler"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	s := &Server{b: b, queue: queue, h: h, cfg: cfg, appID: wire.AppID(cfg.service, cfg.version), done: make(chan struct{})}
	if len(s.appID) > bus.MaxNameLen || strings.Contains(cfg.service, "@") {
		// Too long for the property, or not to be split back at its
		// last "@": named in headers instead.
		s.appID = ""
	}
	return s, nil
}

// Queue returns the queue the Server consumes.
func (s *Server) Queue() string { return s.queue }

// Start begins consuming and returns; the handlers run on a pool of
// goroutines as large as the prefetch. ctx bounds the start only, but its
// values reach the handlers' contexts. Use Shutdown or Close to stop. A
// Server starts once: Start again returns an error, Start after Close an
// error wrapping ErrClosed.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("%w: server for queue %s", ErrClosed, s.queue)
	}
	if s.started {
		return fmt.Errorf("rpc: server for queue %s already started", s.queue)
	}
	c, err := engine.Start(ctx, s.b, engine.Config{
		Kind:       patbus.KindAct,
		Queue:      s.queue,
		Consume:    bus.ConsumeOptions{Replies: !s.cfg.confirmReplies},
		Prefetch:   s.cfg.prefetch,
		Handler:    patbus.HandlerFunc(s.serve),
		Middleware: s.cfg.middleware,
		Settle:     s.settle,
		Expire:     true,
		Logger:     s.cfg.logger,
		Name:       "rpc server",
	})
	if err != nil {
		return fmt.Errorf("rpc: consume %s: %w", s.queue, err)
	}
	s.started, s.c = true, c
	go func() {
		<-c.Done()
		close(s.done)
	}()
	return nil
}

// Done is closed once the Server has stopped serving: after Shutdown or
// Close has finished with the handlers, or when its consumer ended by
// itself (the queue was deleted, the broker closed), which Err then
// explains. It is never closed for a Server that did not start.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err reports why the consumer ended by itself (an error wrapping
// bus.ErrNotFound when the queue was deleted, bus.ErrClosed when the broker
// closed); nil while it serves and after Shutdown or Close.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	return s.c.Err()
}

// serve is the innermost handler: the size check, then the program's
// handler.
func (s *Server) serve(ctx context.Context, m *patbus.Message) error {
	if len(m.Body) > s.cfg.maxMessageSize {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf(
			"request body of %d bytes exceeds the maximum of %d", len(m.Body), s.cfg.maxMessageSize)}
	}
	return s.h.Handle(ctx, m)
}

// settle answers the request and acks it, or gives it back.
func (s *Server) settle(ctx context.Context, d *bus.Delivery, m *patbus.Message, herr error) {
	log := s.cfg.logger
	switch {
	case errors.Is(herr, patbus.ErrExpired):
		log.Warn("rpc: request arrived after its deadline, dropped",
			"queue", s.queue, "pattern", m.Pattern, "tx", m.Tx, "late", time.Since(m.Deadline).String())
		s.ack(d, true, m)
		return
	case engine.Closing(ctx):
		// Closed under the handler: give the request back for another
		// instance rather than answer "canceled".
		if err := d.Nack(true); err != nil {
			log.Debug("rpc: requeue after close", "queue", s.queue, "err", err)
		}
		return
	case d.ReplyTo == "":
		if herr != nil {
			log.Warn("rpc: request without reply-to failed", "queue", s.queue,
				"pattern", m.Pattern, "tx", m.Tx, "err", herr)
		}
		s.ack(d, true, m)
		return
	}
	s.reply(ctx, d, m, s.replyMessage(d, m, herr))
}

// replyMessage builds the reply: the result, or the error object.
func (s *Server) replyMessage(d *bus.Delivery, m *patbus.Message, herr error) bus.Message {
	body := m.Reply
	if herr == nil && len(body) > s.cfg.maxMessageSize {
		herr = &Error{Code: CodeTooLarge, Message: fmt.Sprintf(
			"reply body of %d bytes exceeds the maximum of %d", len(body), s.cfg.maxMessageSize)}
	}
	status := wire.StatusOK
	if herr != nil {
		status = wire.StatusError
		e := patbus.AsError(herr)
		if e.Service == "" {
			e.Service, e.Version = s.cfg.service, s.cfg.version
		}
		if e.Tx == "" {
			e.Tx = m.Tx
		}
		if e.Pattern == "" {
			e.Pattern = m.Pattern
		}
		b, err := json.Marshal(e)
		if err != nil {
			// Details that do not encode: send the rest.
			e.Details = map[string]any{"encode_error": err.Error()}
			b, _ = json.Marshal(e)
		}
		body = b
		s.cfg.logger.Debug("rpc: handler failed", "queue", s.queue, "pattern", m.Pattern,
			"tx", m.Tx, "code", e.Code, "err", herr)
	} else if len(body) == 0 {
		body = []byte("null")
	}
	// The caller knows its tx and pattern: the reply carries only what it
	// does not know, and a successful one no header at all (every header
	// costs coding on both ends and parsing in the broker).
	var headers map[string]any
	if status == wire.StatusError {
		headers = map[string]any{wire.HeaderStatus: status}
	}
	if s.appID == "" && (s.cfg.service != "" || s.cfg.version != "") {
		if headers == nil {
			headers = make(map[string]any, 2)
		}
		headers[wire.HeaderService], headers[wire.HeaderVersion] = s.cfg.service, s.cfg.version
	}
	return bus.Message{
		Headers:       headers,
		ContentType:   wire.ContentTypeJSON,
		CorrelationID: d.CorrelationID,
		AppID:         s.appID,
		Body:          body,
	}
}

// reply sends the reply and acks the request (bus.Reply) while the caller
// still waits for it (ctx ends at the caller's deadline). When the reply
// surely failed while the caller still waits, the request goes back to
// the queue, for another instance to answer; otherwise it is acked.
func (s *Server) reply(ctx context.Context, d *bus.Delivery, m *patbus.Message, msg bus.Message) {
	if m.Deadline.IsZero() || time.Until(m.Deadline) > s.cfg.confirmTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.confirmTimeout)
		defer cancel()
	}
	if ctx.Err() != nil && !engine.Closing(ctx) {
		// The handler ran to the deadline by this host's clock; the
		// caller's may run behind it, so the reply still goes out.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), s.cfg.confirmTimeout)
		defer cancel()
	}
	err := bus.Reply(ctx, s.b, d, msg)
	ack := true
	switch {
	case err == nil:
		return
	case errors.Is(err, bus.ErrStaleDelivery):
		// The request went with its channel: the broker delivers it again.
		s.cfg.logger.Debug("rpc: reply lost with the request's channel", "queue", s.queue,
			"pattern", m.Pattern, "tx", m.Tx, "err", err)
		return
	case ctx.Err() != nil && !engine.Closing(ctx):
		// Past the caller's deadline (nobody waits for an answer now) or
		// the confirm timeout.
		s.cfg.logger.Debug("rpc: reply not confirmed before the caller's deadline", "queue", s.queue,
			"pattern", m.Pattern, "tx", m.Tx, "err", err)
	case errors.Is(err, bus.ErrUnconfirmed), errors.Is(err, bus.ErrTooLarge):
		// It may have gone out, or never will: running the handler again
		// would not help.
		s.cfg.logger.Warn("rpc: reply not confirmed", "queue", s.queue, "pattern", m.Pattern,
			"tx", m.Tx, "err", err)
	case m.Deadline.IsZero():
		// Surely not delivered, but with no deadline a request given back
		// could come round for ever.
		s.cfg.logger.Warn("rpc: reply failed", "queue", s.queue, "pattern", m.Pattern,
			"tx", m.Tx, "err", err)
	default:
		// Surely not delivered while the caller still waits: another
		// instance may answer in time.
		s.cfg.logger.Warn("rpc: reply failed, request given back", "queue", s.queue, "pattern", m.Pattern,
			"tx", m.Tx, "err", err)
		ack = false
	}
	s.ack(d, ack, m)
}

// ack acks (ack) or requeues the request.
func (s *Server) ack(d *bus.Delivery, ack bool, m *patbus.Message) {
	var err error
	if ack {
		err = d.Ack()
	} else {
		err = d.Nack(true)
	}
	if err != nil {
		s.cfg.logger.Warn("rpc: settle request", "queue", s.queue, "pattern", m.Pattern,
			"tx", m.Tx, "ack", ack, "err", err)
	}
}

// Shutdown stops taking requests, waits until those in flight have been
// answered and acked, and releases the consumer. If ctx ends first, it
// cancels the handlers' context, waits for them to return (their requests
// go back to the queue, for another instance) and returns ctx.Err().
// Shutdown before Start just marks the Server stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	c := s.stop()
	if c == nil {
		return nil
	}
	if err := c.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("rpc: stop consuming %s: %w", s.queue, err)
	}
	return nil
}

// Close stops at once: the consumer is released (requests not yet
// answered go back to the queue, for another instance), the handlers'
// contexts are canceled, and Close waits for the handlers to return; their
// results are discarded. Close is idempotent.
func (s *Server) Close() error {
	c := s.stop()
	if c == nil {
		return nil
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("rpc: stop consuming %s: %w", s.queue, err)
	}
	return nil
}

// stop marks the Server stopped and returns its consumer, nil if it never
// started.
func (s *Server) stop() *engine.Consumer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if !s.started {
		return nil
	}
	return s.c
}
