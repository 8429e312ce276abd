package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// worker is one running consumer of a Queue.
type worker struct {
	q   *Queue
	h   Handler
	sub bus.Subscription
	log *slog.Logger

	// ctx is the handlers' context: cancelled by Close, or when a graceful
	// stop runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	// hardCtx bounds the publishing of retry and dead-letter copies; it is
	// cancelled only by Close.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	stopping chan struct{} // closed when intake stops
	stopOnce sync.Once
	wg       sync.WaitGroup

	endMu sync.Mutex
	ended error // why the consumer ended by itself, if it did
}

// Start starts the worker: WithConcurrency goroutines that take items from
// the queue and run h on them, at most WithPrefetch unacknowledged at a time.
// It returns once the consumer is registered; ctx bounds only that. A Queue
// runs one worker at a time: Start on a running Queue returns ErrRunning,
// after Shutdown or Close it returns ErrClosed. Stop it with Shutdown or
// Close. If the broker is closed under it, the worker stops by itself.
func (q *Queue) Start(ctx context.Context, h Handler) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidConfig)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if q.w != nil {
		return ErrRunning
	}
	sub, err := q.b.Consume(ctx, q.name, bus.ConsumeOptions{Prefetch: q.cfg.prefetch})
	if err != nil {
		return fmt.Errorf("workers: consume %s: %w", q.name, err)
	}
	w := &worker{
		q:        q,
		h:        h,
		sub:      sub,
		log:      q.cfg.logger.With("queue", q.name),
		stopping: make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.hardCtx, w.hardCancel = context.WithCancel(context.Background())
	q.w = w
	w.wg.Add(q.cfg.concurrency)
	for i := 0; i < q.cfg.concurrency; i++ {
		go w.loop()
	}
	return nil
}

// Work runs h over the queue, as Start does, until ctx ends; then it stops
// gracefully (Shutdown, bounded by WithShutdownTimeout) and returns nil, or
// the error of the graceful stop. It returns ErrClosed at once if the queue
// is shut down or closed from elsewhere, an error wrapping the consumer's
// (bus.ErrNotFound when the work queue was deleted, bus.ErrClosed when the
// broker closed) if the consumer ends by itself, closing the Queue (New
// declares the queues again), and the start error if Start fails.
func (q *Queue) Work(ctx context.Context, h Handler) error {
	if err := q.Start(ctx, h); err != nil {
		return err
	}
	q.mu.Lock()
	w := q.w
	q.mu.Unlock()
	if w == nil {
		return ErrClosed
	}
	select {
	case <-ctx.Done():
	case <-w.done():
		if err := w.endErr(); err != nil {
			_ = q.Close()
			return fmt.Errorf("workers: consumer of %s ended: %w", q.name, err)
		}
		return ErrClosed
	}
	sctx, cancel := context.WithTimeout(context.Background(), q.cfg.shutdownTimeout)
	defer cancel()
	return q.Shutdown(sctx)
}

// done is closed when the worker's goroutines are told to stop or have
// stopped by themselves.
func (w *worker) done() <-chan struct{} { return w.stopping }

// Shutdown stops the worker gracefully: it takes no more items, lets the
// running handlers finish (their acks, retries and dead letters included),
// hands back the items it had not started, and releases the consumer. If ctx
// ends first, it cancels the handlers' context, waits for them to return and
// returns ctx.Err(); what they had not acked goes back to the queue. After
// Shutdown, Enqueue still works but Start returns ErrClosed. Shutdown is
// idempotent.
func (q *Queue) Shutdown(ctx context.Context) error {
	w := q.markClosed()
	if w == nil {
		return nil
	}
	w.stop()
	err := w.sub.Cancel(ctx)
	if err != nil {
		w.cancel()
		w.hardCancel()
		_ = w.sub.Cancel(context.Background())
	}
	w.wg.Wait()
	w.cancel()
	w.hardCancel()
	if err != nil {
		return fmt.Errorf("workers: shutdown of %s: %w", q.name, err)
	}
	return nil
}

// Close stops the worker at once: the handlers' context is cancelled, the
// consumer released, and whatever is not acked goes back to the queue. It
// waits for the handlers to return. Close is idempotent and never closes the
// broker.
func (q *Queue) Close() error {
	w := q.markClosed()
	if w == nil {
		return nil
	}
	w.stop()
	w.cancel()
	w.hardCancel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = w.sub.Cancel(ctx)
	w.wg.Wait()
	return nil
}

// markClosed marks the queue closed and returns its worker, if it still has
// one to stop.
func (q *Queue) markClosed() *worker {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	w := q.w
	q.w = nil
	return w
}

func (w *worker) stop() { w.stopOnce.Do(func() { close(w.stopping) }) }

// endErr reports why the consumer ended by itself; nil if it did not.
func (w *worker) endErr() error {
	w.endMu.Lock()
	defer w.endMu.Unlock()
	return w.ended
}

// loop is one handler goroutine.
func (w *worker) loop() {
	defer w.wg.Done()
	deliveries := w.sub.Deliveries()
	for {
		select {
		case <-w.stopping:
			return
		case d, ok := <-deliveries:
			if !ok {
				if err := w.sub.Err(); err != nil {
					w.log.Warn("workers: consumer ended", "err", err)
					w.endMu.Lock()
					w.ended = err
					w.endMu.Unlock()
				}
				w.stop()
				return
			}
			w.handle(d)
		}
	}
}

// handle runs the handler on one delivery and settles it.
func (w *worker) handle(d *bus.Delivery) {
	q := w.q
	it := newItem(q.name, q.cfg.maxAttempts, d)
	var err error
	if !validJSONBody(d) {
		err = fmt.Errorf("%w: body is not valid JSON", ErrDecode)
	} else {
		ctx := w.ctx
		if it.Tx != "" {
			ctx = wire.WithTx(ctx, it.Tx)
		}
		err = w.call(ctx, it)
	}
	if err == nil {
		w.settle(d, d.Ack(), "ack")
		return
	}
	switch {
	case errors.Is(err, ErrDecode):
		w.deadLetter(d, it, ReasonDecode, err)
	case errors.Is(err, ErrPoison):
		w.deadLetter(d, it, ReasonPoison, err)
	case w.ctx.Err() != nil:
		// Closing: the failure may be the cancellation itself. Hand the
		// item back without using up an attempt.
		w.settle(d, d.Nack(true), "nack")
	case it.Attempt >= q.cfg.maxAttempts:
		w.deadLetter(d, it, ReasonMaxAttempts, err)
	default:
		w.retry(d, it, err)
	}
}

// call runs the handler, turning a panic into an error.
func (w *worker) call(ctx context.Context, it *Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("workers: handler panicked", "id", it.ID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return w.h.HandleItem(ctx, it)
}

// settle logs a failed ack or nack: the broker will deliver the item again.
func (w *worker) settle(d *bus.Delivery, err error, what string) {
	if err != nil {
		w.log.Warn("workers: "+what+" failed; the item will be delivered again", "id", d.MessageID, "err", err)
	}
}
