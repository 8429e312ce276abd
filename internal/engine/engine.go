package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/logx"
	"github.com/patbus/patbus/internal/wire"
)

// Settle settles a delivery once its handler chain returned err. ctx is
// the handler's context (its deadline is the message's); Closing(ctx)
// tells whether the consumer is being closed under the handler. Settle
// runs on the consumer's goroutine and must settle d (ack, nack, or reply
// then ack) before it returns.
type Settle func(ctx context.Context, d *bus.Delivery, m *patbus.Message, err error)

// Config describes a Consumer.
type Config struct {
	// Kind of the messages consumed.
	Kind patbus.Kind
	// Queue to consume; it must exist.
	Queue string
	// Consume holds the consumer options (Exclusive, NoAck, Replies,
	// Tag); Prefetch is taken from the field below.
	Consume bus.ConsumeOptions
	// Prefetch bounds the unsettled deliveries; Concurrency the handlers
	// that run at once (zero: Prefetch). Concurrency may not exceed
	// Prefetch.
	Prefetch    int
	Concurrency int
	// Handler is the package's own handler, innermost in the chain.
	Handler patbus.Handler
	// Middleware runs outside Handler, the first outermost, inside the
	// engine's recovery, expiry and logging.
	Middleware []patbus.Middleware
	// Settle settles each delivery; required.
	Settle Settle
	// Expire makes a message that arrives after its deadline fail with
	// patbus.ErrExpired before the program's middleware and the handler
	// run (for requests, whose caller has given up).
	Expire bool
	// MaxAttempts is copied into every Message (work queues).
	MaxAttempts int
	// Logger for panics, the consumer's end and, at debug level, every
	// message handled. Nil means discard.
	Logger *slog.Logger
	// Name names the consumer in log lines ("rpc server", "subscription").
	Name string
}

// Consumer is one running consumer. Its methods are safe for concurrent
// use.
type Consumer struct {
	cfg   Config
	sub   bus.Subscription
	chain patbus.Handler
	log   *slog.Logger

	base   context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	relay  relay
	done   chan struct{}

	mu      sync.Mutex
	stopped bool // Shutdown or Close was called
	endOnce sync.Once
}

// errClosing is the cause of a handler context canceled by Close, or by a
// Shutdown that ran out of time.
var errClosing = fmt.Errorf("%w: consumer closing", patbus.ErrClosed)

// Closing reports whether ctx, a handler's context, was canceled because
// its consumer is closing (rather than by the message's deadline).
func Closing(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), errClosing)
}

// Start consumes cfg.Queue on b and starts the handler goroutines. ctx
// bounds the start only; its values reach the handlers' contexts.
func Start(ctx context.Context, b bus.Broker, cfg Config) (*Consumer, error) {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = cfg.Prefetch
	}
	switch {
	case b == nil, cfg.Handler == nil, cfg.Settle == nil:
		return nil, fmt.Errorf("%w: engine: broker, handler and settle are required", patbus.ErrInvalidConfig)
	case cfg.Prefetch < 1 || cfg.Concurrency < 1 || cfg.Concurrency > cfg.Prefetch:
		return nil, fmt.Errorf("%w: engine: prefetch %d and concurrency %d", patbus.ErrInvalidConfig, cfg.Prefetch, cfg.Concurrency)
	}
	opts := cfg.Consume
	opts.Prefetch = cfg.Prefetch
	sub, err := b.Consume(ctx, cfg.Queue, opts)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, sub: sub, log: logx.OrDiscard(cfg.Logger), done: make(chan struct{})}
	if c.cfg.Name == "" {
		c.cfg.Name = "consumer"
	}
	c.base, c.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	c.chain = c.build()
	deliveries := sub.Deliveries()
	c.wg.Add(cfg.Concurrency)
	for i := 0; i < cfg.Concurrency; i++ {
		go c.loop(deliveries, make(chan struct{}, 1))
	}
	go func() {
		c.wg.Wait()
		c.ended()
		close(c.done)
	}()
	return c, nil
}

// build assembles the chain: recover, expire, log, the program's
// middleware, the handler.
func (c *Consumer) build() patbus.Handler {
	mw := make([]patbus.Middleware, 0, 3+len(c.cfg.Middleware))
	mw = append(mw, recoverPanics(c.log, c.cfg.Name))
	if c.cfg.Expire {
		mw = append(mw, expire)
	}
	mw = append(mw, logHandled(c.log, c.cfg.Name))
	mw = append(mw, c.cfg.Middleware...)
	return patbus.Chain(c.cfg.Handler, mw...)
}

// loop is one handler goroutine: when it holds the relay's turn it
// receives a delivery, passes the turn on and serves the delivery.
func (c *Consumer) loop(deliveries <-chan *bus.Delivery, turn chan struct{}) {
	defer c.wg.Done()
	for c.relay.take(turn) {
		d, ok := <-deliveries
		if !ok {
			c.relay.close()
			return
		}
		c.relay.pass()
		c.serve(d)
	}
}

// serve runs one delivery through the chain and settles it.
func (c *Consumer) serve(d *bus.Delivery) {
	if c.base.Err() != nil {
		// Closing: a delivery received now (one another handler gave
		// back, say) goes back unread, for another consumer.
		if err := d.Nack(true); err != nil {
			c.log.Debug("patbus: requeue after close", "consumer", c.cfg.Name, "queue", c.cfg.Queue, "err", err)
		}
		return
	}
	m := read(d, c.cfg.Kind, c.cfg.Queue)
	m.MaxAttempts = c.cfg.MaxAttempts
	ctx := wire.WithTx(c.base, m.Tx)
	if !m.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, m.Deadline)
		defer cancel()
	}
	err := c.chain.Handle(ctx, m)
	c.cfg.Settle(ctx, d, m, err)
}

// read turns a delivery into the Message a handler sees.
func read(d *bus.Delivery, kind patbus.Kind, queue string) *patbus.Message {
	f := wire.Read(d.Headers)
	m := &patbus.Message{
		Kind:          kind,
		ID:            d.MessageID,
		Pattern:       f.Pattern,
		Tx:            f.Tx,
		Traceparent:   f.Traceparent,
		Deadline:      f.Deadline,
		Attempt:       f.Attempt,
		LastError:     f.Error,
		Exchange:      d.Exchange,
		RoutingKey:    d.RoutingKey,
		Queue:         queue,
		CorrelationID: d.CorrelationID,
		ReplyTo:       d.ReplyTo,
		ContentType:   d.ContentType,
		Redelivered:   d.Redelivered,
		Timestamp:     d.Timestamp,
		Headers:       d.Headers,
		Body:          d.Body,
	}
	if m.Pattern == "" && (kind == patbus.KindAct || kind == patbus.KindEvent && d.Exchange == wire.EventsExchange) {
		// The pattern of a request, or of an event emitted by pattern,
		// travels as its AMQP type when it fits. (A classic publisher's
		// type, on another exchange, means whatever it means to it.)
		m.Pattern = d.Type
	}
	if m.Tx == "" {
		// A request without a tx header starts a chain named by its own
		// id (WIRE.md); anything else without one starts a fresh chain.
		if kind == patbus.KindAct && d.MessageID != "" {
			m.Tx = d.MessageID
		} else {
			m.Tx = wire.NewID()
		}
	}
	return m
}

// Queue returns the queue consumed.
func (c *Consumer) Queue() string { return c.cfg.Queue }

// Done is closed once every handler goroutine has returned: after
// Shutdown or Close, or when the consumer ended by itself (its queue was
// deleted, the broker closed), which Err then explains.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Err reports why the consumer ended by itself; nil while it runs and
// after Shutdown or Close.
func (c *Consumer) Err() error {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return nil
	}
	return c.sub.Err()
}

// ended logs, once, why the consumer ended when nobody stopped it.
func (c *Consumer) ended() {
	c.endOnce.Do(func() {
		if err := c.Err(); err != nil {
			c.log.Warn("patbus: consumer ended", "consumer", c.cfg.Name, "queue", c.cfg.Queue, "err", err)
		}
	})
}

func (c *Consumer) markStopped() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

// Shutdown stops taking messages, lets the running handlers finish and
// settle, hands back what was received and not started, and releases the
// consumer. If ctx ends first, it cancels the handlers' context, waits for
// the handlers to return (their messages go back to the queue) and
// returns ctx.Err(). Shutdown is idempotent.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.markStopped()
	err := c.sub.Cancel(ctx)
	if err != nil {
		c.cancel(errClosing)
		now, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.sub.Cancel(now)
	}
	// Done closes after the handler goroutines returned: waiting for it
	// (not for them) means Done is closed when Shutdown returns.
	<-c.done
	c.cancel(errClosing)
	switch {
	case err == nil, errors.Is(err, bus.ErrClosed) && ctx.Err() == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// Close stops at once: the handlers' context is canceled, the consumer
// released, and whatever is not settled goes back to the queue. It waits
// for the handlers to return. Close is idempotent.
func (c *Consumer) Close() error {
	c.markStopped()
	c.cancel(errClosing)
	now, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.sub.Cancel(now)
	<-c.done
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, bus.ErrClosed) {
		return err
	}
	return nil
}
