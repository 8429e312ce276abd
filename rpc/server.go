package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// ServerRequest is a request as a handler sees it.
type ServerRequest struct {
	// Pattern is the header patbus-pattern ("" if absent).
	Pattern string
	// Body is the request body, JSON.
	Body []byte
	// Headers are the request's application headers.
	Headers map[string]any
	// Tx is the tx id (header patbus-tx); the handler's context carries it
	// too (wire.Tx). A fresh one when the request had none.
	Tx string
	// Deadline is the caller's deadline (header patbus-deadline), zero if
	// none; the handler's context carries it too.
	Deadline time.Time
	// Redelivered is true when the broker delivered the request before
	// (another instance may have handled it already).
	Redelivered bool
	// CorrelationID and Key (the routing key) as the request arrived.
	CorrelationID string
	Key           string
}

// Handler answers requests. ServeRPC returns the reply body (JSON) or an
// error; return a *Error to choose the code, message and details the caller
// sees. Other errors become code "internal" with the error's text, errors
// wrapping context.DeadlineExceeded code "timeout"; a panic is recovered,
// logged and answered with code "panic".
//
// ServeRPC runs on a goroutine of the Server's pool, never on the broker's
// delivery goroutine; up to the prefetch of them run at once. Its context
// carries the tx id (wire.Tx) and the caller's deadline, and is canceled
// when the Server is closed.
type Handler interface {
	ServeRPC(ctx context.Context, req *ServerRequest) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *ServerRequest) ([]byte, error)

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, req *ServerRequest) ([]byte, error) {
	return f(ctx, req)
}

// Server consumes one queue and answers its requests. Every instance of a
// service version consumes the same queue; the broker hands each request to
// one of them.
//
// For each request it runs the handler, publishes the reply to the default
// exchange with the request's reply-to as key and its correlation id, and
// only then acks the request (bus.Reply): if the instance dies before it
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

	mu       sync.Mutex
	started  bool
	stopped  bool
	sub      bus.Subscription
	base     context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	lostOnce sync.Once
	done     chan struct{} // closed once every worker has returned
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
	if len(s.appID) > maxTypeLen || strings.Contains(cfg.service, "@") {
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
	sub, err := s.b.Consume(ctx, s.queue, bus.ConsumeOptions{Prefetch: s.cfg.prefetch, Replies: !s.cfg.confirmReplies})
	if err != nil {
		return fmt.Errorf("rpc: consume %s: %w", s.queue, err)
	}
	s.started = true
	s.sub = sub
	s.base, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	deliveries := sub.Deliveries()
	s.wg.Add(s.cfg.prefetch)
	for i := 0; i < s.cfg.prefetch; i++ {
		go s.work(deliveries)
	}
	go func() {
		s.wg.Wait()
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
	if !s.started || s.stopped {
		return nil
	}
	return s.sub.Err()
}

func (s *Server) work(deliveries <-chan *bus.Delivery) {
	defer s.wg.Done()
	for {
		d, ok := <-deliveries
		if !ok {
			if err := s.sub.Err(); err != nil {
				s.lostOnce.Do(func() {
					s.cfg.logger.Error("rpc: server consumer ended", "queue", s.queue, "err", err)
				})
			}
			return
		}
		s.handle(d)
	}
}

// handle runs one request: handler, reply, ack.
func (s *Server) handle(d *bus.Delivery) {
	log := s.cfg.logger
	if s.base.Err() != nil {
		// Closing: a request received now (one another handler gave
		// back, say) goes back unread, for another instance.
		if err := d.Nack(true); err != nil {
			log.Debug("rpc: requeue after close", "queue", s.queue, "err", err)
		}
		return
	}
	req := &ServerRequest{
		Pattern:       d.Type,
		Body:          d.Body,
		Headers:       d.Headers,
		Tx:            headerString(d.Headers, wire.HeaderTx),
		Redelivered:   d.Redelivered,
		CorrelationID: d.CorrelationID,
		Key:           d.RoutingKey,
	}
	if p := headerString(d.Headers, wire.HeaderPattern); p != "" {
		req.Pattern = p // too long for the type, or an older client
	}
	if req.Tx == "" {
		req.Tx = wire.TxFromTraceparent(headerString(d.Headers, wire.HeaderTraceparent))
	}
	if req.Tx == "" {
		req.Tx = wire.NewID()
	}
	if dl, ok := wire.ParseDeadline(d.Headers[wire.HeaderDeadline]); ok {
		req.Deadline = dl
		if !time.Now().Before(dl) {
			log.Warn("rpc: request arrived after its deadline, dropped",
				"queue", s.queue, "pattern", req.Pattern, "tx", req.Tx,
				"late", time.Since(dl).String())
			s.settle(d, true, req)
			return
		}
	}

	// One context for the handler and the reply: it carries the caller's
	// deadline, past which nobody waits for either.
	ctx := wire.WithTx(s.base, req.Tx)
	if !req.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
		defer cancel()
	}
	var (
		result []byte
		herr   error
	)
	if len(d.Body) > s.cfg.maxMessageSize {
		herr = &Error{Code: CodeTooLarge, Message: fmt.Sprintf(
			"request body of %d bytes exceeds the maximum of %d", len(d.Body), s.cfg.maxMessageSize)}
	} else {
		result, herr = s.serve(ctx, req)
	}
	if s.base.Err() != nil {
		// Closed under the handler: give the request back for another
		// instance rather than answer "canceled".
		if err := d.Nack(true); err != nil {
			log.Debug("rpc: requeue after close", "queue", s.queue, "err", err)
		}
		return
	}
	if d.ReplyTo == "" {
		if herr != nil {
			log.Warn("rpc: request without reply-to failed", "queue", s.queue,
				"pattern", req.Pattern, "tx", req.Tx, "err", herr)
		}
		s.settle(d, true, req)
		return
	}
	s.reply(ctx, d, req, s.replyMessage(d, req, result, herr))
}

// serve calls the handler, turning a panic into an error.
func (s *Server) serve(ctx context.Context, req *ServerRequest) (result []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.cfg.logger.Error("rpc: handler panicked", "queue", s.queue,
				"pattern", req.Pattern, "tx", req.Tx, "panic", fmt.Sprint(v),
				"stack", string(debug.Stack()))
			result, err = nil, &Error{Code: CodePanic, Message: fmt.Sprintf("handler panicked: %v", v)}
		}
	}()
	return s.h.ServeRPC(ctx, req)
}

// replyMessage builds the reply: the result, or the error object.
func (s *Server) replyMessage(d *bus.Delivery, req *ServerRequest, result []byte, herr error) bus.Message {
	if herr == nil && len(result) > s.cfg.maxMessageSize {
		herr = &Error{Code: CodeTooLarge, Message: fmt.Sprintf(
			"reply body of %d bytes exceeds the maximum of %d", len(result), s.cfg.maxMessageSize)}
	}
	status := wire.StatusOK
	body := result
	if herr != nil {
		status = wire.StatusError
		e := toError(herr)
		if e.Service == "" {
			e.Service, e.Version = s.cfg.service, s.cfg.version
		}
		if e.Tx == "" {
			e.Tx = req.Tx
		}
		if e.Pattern == "" {
			e.Pattern = req.Pattern
		}
		b, err := json.Marshal(e)
		if err != nil {
			// Details that do not encode: send the rest.
			e.Details = map[string]any{"encode_error": err.Error()}
			b, _ = json.Marshal(e)
		}
		body = b
		s.cfg.logger.Debug("rpc: handler failed", "queue", s.queue, "pattern", req.Pattern,
			"tx", req.Tx, "code", e.Code, "err", herr)
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
func (s *Server) reply(ctx context.Context, d *bus.Delivery, req *ServerRequest, msg bus.Message) {
	if req.Deadline.IsZero() || time.Until(req.Deadline) > s.cfg.confirmTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.confirmTimeout)
		defer cancel()
	}
	if ctx.Err() != nil && s.base.Err() == nil {
		// The handler ran to the deadline by this host's clock; the
		// caller's may run behind it, so the reply still goes out.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(s.base, s.cfg.confirmTimeout)
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
			"pattern", req.Pattern, "tx", req.Tx, "err", err)
		return
	case ctx.Err() != nil && s.base.Err() == nil:
		// Past the caller's deadline (nobody waits for an answer now) or
		// the confirm timeout.
		s.cfg.logger.Debug("rpc: reply not confirmed before the caller's deadline", "queue", s.queue,
			"pattern", req.Pattern, "tx", req.Tx, "err", err)
	case errors.Is(err, bus.ErrUnconfirmed), errors.Is(err, bus.ErrTooLarge):
		// It may have gone out, or never will: running the handler again
		// would not help.
		s.cfg.logger.Warn("rpc: reply not confirmed", "queue", s.queue, "pattern", req.Pattern,
			"tx", req.Tx, "err", err)
	case req.Deadline.IsZero():
		// Surely not delivered, but with no deadline a request given back
		// could come round for ever.
		s.cfg.logger.Warn("rpc: reply failed", "queue", s.queue, "pattern", req.Pattern,
			"tx", req.Tx, "err", err)
	default:
		// Surely not delivered while the caller still waits: another
		// instance may answer in time.
		s.cfg.logger.Warn("rpc: reply failed, request given back", "queue", s.queue, "pattern", req.Pattern,
			"tx", req.Tx, "err", err)
		ack = false
	}
	s.settle(d, ack, req)
}

// settle acks (ack) or requeues the request.
func (s *Server) settle(d *bus.Delivery, ack bool, req *ServerRequest) {
	var err error
	if ack {
		err = d.Ack()
	} else {
		err = d.Nack(true)
	}
	if err != nil {
		s.cfg.logger.Warn("rpc: settle request", "queue", s.queue, "pattern", req.Pattern,
			"tx", req.Tx, "ack", ack, "err", err)
	}
}

// Shutdown stops taking requests, waits until those in flight have been
// answered and acked, and releases the consumer. If ctx ends first it
// returns ctx.Err() and leaves the handlers running (Close stops them).
// Shutdown before Start just marks the Server stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	if err := s.sub.Cancel(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("rpc: stop consuming %s: %w", s.queue, err)
		}
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		// The waiter goroutine ends with the workers, which Close stops.
		return ctx.Err()
	}
}

// Close stops at once: the consumer is released (requests not yet
// answered go back to the queue, for another instance), the handlers'
// contexts are canceled, and Close waits for the handlers to return; their
// results are discarded. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.cancel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.sub.Cancel(ctx)
	s.wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, bus.ErrClosed) {
		return fmt.Errorf("rpc: stop consuming %s: %w", s.queue, err)
	}
	return nil
}
