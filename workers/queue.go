package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
)

// Queue is a durable work queue with its retry and dead-letter queues. It
// enqueues items, reports its depth (Stats) and runs one worker over them
// (Start or Work). A Queue is safe for concurrent use. It does not own the
// broker: Shutdown and Close leave the broker open.
type Queue struct {
	b       bus.Broker
	name    string
	dead    string
	delays  []time.Duration // delay before retry n+1, for the failure of attempt n (index n-1)
	retryQs map[time.Duration]string
	cfg     config
	log     *slog.Logger
	copies  copyHolds // items whose redelivery is being counted

	mu     sync.Mutex
	c      *engine.Consumer // the worker, once started
	closed bool             // Shutdown or Close was called
	done   chan struct{}    // closed once the worker's handlers have returned
	ended  error            // why the worker ended by itself, set before done is closed
}

// New declares the work queue named queue, its retry queues and its
// dead-letter queue (see the package documentation) and returns the Queue.
// It checks every option at once (an error wrapping ErrInvalidConfig names
// all the problems). The names must fit AMQP's 255 bytes. Declaring an
// existing queue with other settings fails with an error wrapping
// bus.ErrPrecondition. Several Queue values, in one process or many, may
// stand for the same queues: each runs its own worker, and the broker
// shares the items among them. ctx bounds the declarations, also while the
// broker is unreachable.
func New(ctx context.Context, b bus.Broker, queue string, opts ...Option) (*Queue, error) {
	cfg, err := newConfig(opts)
	var problems []error
	if err != nil {
		problems = append(problems, err)
	}
	if b == nil {
		problems = append(problems, fmt.Errorf("%w: nil broker", ErrInvalidConfig))
	}
	if queue == "" {
		problems = append(problems, fmt.Errorf("%w: empty queue name", ErrInvalidConfig))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	q := &Queue{
		b:       b,
		name:    queue,
		dead:    queue + ".dead",
		retryQs: map[time.Duration]string{},
		cfg:     cfg,
		log:     cfg.logger.With("queue", queue),
		done:    make(chan struct{}),
	}
	d := cfg.backoffInitial
	for n := 1; n < cfg.maxAttempts; n++ {
		q.delays = append(q.delays, d)
		if _, ok := q.retryQs[d]; !ok {
			q.retryQs[d] = retryQueueName(queue, d)
		}
		if d < cfg.backoffMax {
			d *= 2
			if d > cfg.backoffMax {
				d = cfg.backoffMax
			}
		}
	}
	for _, n := range append(q.RetryQueues(), queue, q.dead) {
		if len(n) > bus.MaxNameLen {
			return nil, fmt.Errorf("%w: queue name %.40q… is longer than %d bytes", ErrInvalidConfig, n, bus.MaxNameLen)
		}
	}
	if err := q.declare(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// deliveryLimit is the quorum work queue's x-delivery-limit: generous, so
// that redeliveries after ordinary restarts do not reach it.
func (q *Queue) deliveryLimit() int {
	return max(20, 4*q.cfg.maxAttempts)
}

// retryQueueName names the retry queue of one backoff step.
func retryQueueName(queue string, d time.Duration) string {
	return queue + ".retry." + d.String()
}

func (q *Queue) declare(ctx context.Context) error {
	base := bus.Queue{Durable: true, Quorum: q.cfg.quorum}
	work := base
	work.Name = q.name
	if q.cfg.quorum {
		// The broker-side guard against items that kill their worker: after
		// this many deliveries RabbitMQ dead-letters the item itself
		// (without patbus's reason headers; x-death says why).
		work.DeadLetterExchange = ""
		work.DeadLetterKey = q.dead
		work.Args = map[string]any{"x-delivery-limit": int64(q.deliveryLimit())}
	}
	if _, err := q.b.DeclareQueue(ctx, work); err != nil {
		return fmt.Errorf("workers: declare queue %s: %w", q.name, err)
	}
	dead := base
	dead.Name = q.dead
	if _, err := q.b.DeclareQueue(ctx, dead); err != nil {
		return fmt.Errorf("workers: declare dead-letter queue %s: %w", q.dead, err)
	}
	for d, name := range q.retryQs {
		rq := base
		rq.Name = name
		rq.MessageTTL = d
		rq.DeadLetterExchange = ""
		rq.DeadLetterKey = q.name
		if _, err := q.b.DeclareQueue(ctx, rq); err != nil {
			return fmt.Errorf("workers: declare retry queue %s: %w", name, err)
		}
	}
	return nil
}

// Name returns the work queue's name.
func (q *Queue) Name() string { return q.name }

// DeadLetterQueue returns the name of the dead-letter queue (Name()+".dead").
func (q *Queue) DeadLetterQueue() string { return q.dead }

// RetryQueues returns the names of the retry queues, shortest delay first.
func (q *Queue) RetryQueues() []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range q.delays {
		if n := q.retryQs[d]; !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Backoff returns the delay before the retry that follows a failure of the
// given attempt (1-based), and false when that attempt is the last one.
func (q *Queue) Backoff(attempt int) (time.Duration, bool) {
	if attempt < 1 || attempt > len(q.delays) {
		return 0, false
	}
	return q.delays[attempt-1], true
}

// Delete deletes the work, retry and dead-letter queues with whatever they
// hold. It is meant for tests and tools.
func (q *Queue) Delete(ctx context.Context) error {
	var errs []error
	for _, n := range append([]string{q.name, q.dead}, q.RetryQueues()...) {
		if err := q.b.DeleteQueue(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("workers: delete queue %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}
