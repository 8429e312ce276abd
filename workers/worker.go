package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
	"github.com/patbus/patbus/internal/wire"
)

// errNotJSON is the failure of an item whose body claims to be JSON (or
// claims nothing) and is not.
var errNotJSON = fmt.Errorf("workers: cannot decode item: %w: body is not valid JSON", ErrInvalidInput)

// Start starts the worker and returns once its consumer is registered; ctx
// bounds only that, but its values reach the handlers' contexts. The
// worker runs on the consumer engine that every patbus consumer runs:
// WithConcurrency goroutines take items from the queue, at most
// WithPrefetch unacknowledged at a time, and run each through the engine's
// panic recovery and logging, the crash-loop guard, the middleware given
// with WithMiddleware and h; then the item is acked, retried or
// dead-lettered by what they returned (see the package documentation).
//
// A Queue runs one worker: Start on a running Queue returns ErrRunning;
// after Shutdown or Close, or once the worker ended by itself, it returns
// an error wrapping ErrClosed (New gives a fresh Queue on the same
// queues). Stop the worker with Shutdown or Close. If the work queue is
// deleted or the broker closed under it, the worker ends by itself: Done
// is closed and Err says why.
func (q *Queue) Start(ctx context.Context, h Handler) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidConfig)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("%w: worker of %s stopped", ErrClosed, q.name)
	}
	if q.c != nil {
		select {
		case <-q.c.Done():
			return fmt.Errorf("%w: worker of %s ended", ErrClosed, q.name)
		default:
			return ErrRunning
		}
	}
	mw := make([]patbus.Middleware, 0, 1+len(q.cfg.middleware))
	mw = append(mw, q.guard)
	mw = append(mw, q.cfg.middleware...)
	c, err := engine.Start(ctx, q.b, engine.Config{
		Kind:        patbus.KindWork,
		Queue:       q.name,
		Prefetch:    q.cfg.prefetch,
		Concurrency: q.cfg.concurrency,
		Handler:     checkBody(h),
		Middleware:  mw,
		Settle:      q.settle,
		MaxAttempts: q.cfg.maxAttempts,
		Logger:      q.cfg.logger,
		Name:        "worker",
	})
	if err != nil {
		return fmt.Errorf("workers: consume %s: %w", q.name, err)
	}
	q.c = c
	go func() {
		<-c.Done()
		if err := c.Err(); err != nil {
			q.mu.Lock()
			q.ended = fmt.Errorf("workers: consumer of %s ended: %w", q.name, err)
			q.mu.Unlock()
		}
		close(q.done)
	}()
	return nil
}

// Work runs h over the queue, as Start does, until ctx ends; then it stops
// gracefully (Shutdown, bounded by WithShutdownTimeout) and returns nil, or
// ctx.Err() of that stop when it ran out of time. It returns at once: the
// start error if Start fails; an error wrapping ErrClosed if the worker is
// shut down or closed from elsewhere; and, when the worker's consumer ends
// by itself, Err (wrapping bus.ErrNotFound when the work queue was
// deleted, bus.ErrClosed when the broker closed), after closing the Queue.
func (q *Queue) Work(ctx context.Context, h Handler) error {
	if err := q.Start(ctx, h); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-q.done:
		if err := q.Err(); err != nil {
			_ = q.Close()
			return err
		}
		return fmt.Errorf("%w: worker of %s stopped", ErrClosed, q.name)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.shutdownTimeout)
	defer cancel()
	return q.Shutdown(sctx)
}

// Done is closed once the worker has stopped: after Shutdown or Close has
// finished with its handlers, or when its consumer ended by itself (the
// work queue was deleted, the broker closed), which Err then explains. It
// is never closed for a Queue whose worker did not start.
func (q *Queue) Done() <-chan struct{} { return q.done }

// Err reports why the worker's consumer ended by itself, once Done is
// closed: an error wrapping bus.ErrNotFound when the work queue was
// deleted, bus.ErrClosed when the broker closed. It is nil while the worker
// runs, when Shutdown or Close stopped it, and for a Queue whose worker did
// not start.
func (q *Queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ended
}

// Shutdown stops the worker gracefully: it takes no more items, lets the
// running handlers finish and settle their items (acks, retries and dead
// letters included), hands back the items it had not started, and
// releases the consumer. If ctx ends first, it cancels the handlers'
// context, waits for them to return and returns ctx.Err(); the items they
// held go back to the queue unchanged, without using an attempt. After
// Shutdown, Enqueue and Stats still work but Start returns ErrClosed.
// Shutdown is idempotent and safe to call with Close; it never closes the
// broker.
func (q *Queue) Shutdown(ctx context.Context) error {
	c := q.stop()
	if c == nil {
		return nil
	}
	if err := c.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("workers: shutdown of %s: %w", q.name, err)
	}
	return nil
}

// Close stops the worker at once: the handlers' context is canceled, the
// consumer released, and whatever is not acked goes back to the queue (a
// handler that fails because of the cancellation hands its item back
// without using an attempt). It waits for the handlers to return. Close is
// idempotent and never closes the broker.
func (q *Queue) Close() error {
	c := q.stop()
	if c == nil {
		return nil
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("workers: close of %s: %w", q.name, err)
	}
	return nil
}

// stop marks the Queue stopped and returns its worker, nil if none started.
func (q *Queue) stop() *engine.Consumer {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	return q.c
}

// checkBody is the innermost handler: an item whose body claims to be JSON
// (or claims nothing) and is not fails with errNotJSON; the others go to
// h. Bodies with another content type are the handler's business.
func checkBody(h Handler) Handler {
	return HandlerFunc(func(ctx context.Context, it *Item) error {
		ct := it.ContentType
		if (ct == "" || strings.HasPrefix(ct, wire.ContentTypeJSON)) && !json.Valid(it.Body) {
			return errNotJSON
		}
		return h.Handle(ctx, it)
	})
}

// settle acks, retries, dead-letters or hands back an item by what its
// handler chain returned (the package documentation lists the rules). It
// runs on the handler's goroutine, with the handler's context.
func (q *Queue) settle(ctx context.Context, d *bus.Delivery, it *Item, err error) {
	switch {
	case err == nil:
		q.ack(d, it)
	case errors.Is(err, errRedelivered):
		q.redeliver(ctx, d, it)
	case errors.Is(err, ErrInvalidInput):
		q.deadLetter(ctx, d, it, copyHeaders(d.Headers), ReasonDecode, err)
	case errors.Is(err, ErrPoison):
		q.deadLetter(ctx, d, it, copyHeaders(d.Headers), ReasonPoison, err)
	case engine.Closing(ctx):
		// Closing: the failure may be the cancellation itself. Hand the
		// item back without using an attempt.
		q.requeue(d, it)
	case it.Attempt >= q.cfg.maxAttempts:
		q.deadLetter(ctx, d, it, copyHeaders(d.Headers), ReasonMaxAttempts, err)
	default:
		q.retry(ctx, d, it, err)
	}
}

// ack acks the item; a failed ack means the broker delivers it again.
func (q *Queue) ack(d *bus.Delivery, it *Item) {
	if err := d.Ack(); err != nil {
		q.log.Warn("workers: ack failed; the item will be delivered again", "id", it.ID, "tx", it.Tx, "err", err)
	}
}

// requeue hands the item back to the work queue unchanged.
func (q *Queue) requeue(d *bus.Delivery, it *Item) {
	if err := d.Nack(true); err != nil {
		q.log.Debug("workers: hand back failed; the broker delivers the item again", "id", it.ID, "tx", it.Tx, "err", err)
	}
}
