package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// maxQueueName is AMQP's limit on a short string such as a queue name.
const maxQueueName = 255

// Queue is a durable work queue with its retry and dead-letter queues. It
// enqueues items and runs one worker over them (Start or Work). A Queue is
// safe for concurrent use. It does not own the broker: Close and Shutdown
// leave the broker open.
type Queue struct {
	b       bus.Broker
	name    string
	dead    string
	delays  []time.Duration // delay before retry n+1, for the failure of attempt n (index n-1)
	retryQs map[time.Duration]string
	cfg     config

	mu     sync.Mutex
	w      *worker
	closed bool
}

// New declares the work queue named queue, its retry queues and its
// dead-letter queue (see the package documentation) and returns the Queue.
// The names must fit AMQP's 255 bytes. Declaring an existing queue with
// other settings fails with an error wrapping bus.ErrPrecondition.
func New(b bus.Broker, queue string, opts ...Option) (*Queue, error) {
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
		if len(n) > maxQueueName {
			return nil, fmt.Errorf("%w: queue name %.40q… is longer than %d bytes", ErrInvalidConfig, n, maxQueueName)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.publishTimeout)
	defer cancel()
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

// Enqueue publishes data as a persistent JSON item on the queue and returns
// once the broker has confirmed it: a nil error means the broker has taken
// responsibility for the item. data is encoded with encoding/json; a []byte
// or json.RawMessage is sent as it is and must hold valid JSON. The context's
// tx id (wire.Tx) travels with the item; with none, a fresh one is made.
// If ctx ends before the confirm, the error wraps bus.ErrUnconfirmed: the
// item may still arrive. Enqueue does not depend on a running worker.
func (q *Queue) Enqueue(ctx context.Context, data any) error {
	c, err := q.publish(ctx, data)
	if err != nil {
		return err
	}
	if err := c.Wait(ctx); err != nil {
		return fmt.Errorf("workers: enqueue on %s: %w", q.name, err)
	}
	return nil
}

// EnqueueBatch enqueues every item as Enqueue does, but publishes them all
// before it waits for the confirms, so many are in flight at once. It
// returns nil when every item was confirmed; otherwise errors.Join of one
// *ItemError per item that failed (items not mentioned were confirmed). An
// item that fails to encode is reported and the others are still sent.
func (q *Queue) EnqueueBatch(ctx context.Context, items ...any) error {
	confs := make([]*bus.Confirmation, len(items))
	var errs []error
	for i, data := range items {
		c, err := q.publish(ctx, data)
		if err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
			if ctx.Err() != nil {
				// Nothing further can be sent; report the rest as not sent.
				for j := i + 1; j < len(items); j++ {
					errs = append(errs, &ItemError{Index: j, Err: fmt.Errorf("workers: not sent: %w", ctx.Err())})
				}
				break
			}
			continue
		}
		confs[i] = c
	}
	for i, c := range confs {
		if c == nil {
			continue
		}
		if err := c.Wait(ctx); err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
		}
	}
	return errors.Join(errs...)
}

// EnqueueAsync publishes data as Enqueue does but does not wait for the
// broker's confirm: it returns once the item has been handed to the broker,
// with the Confirmation that resolves when the broker confirms it (nil), or
// fails with an error wrapping bus.ErrNacked, bus.ErrUnroutable or
// bus.ErrUnconfirmed. Keeping a window of confirmations outstanding, as
// RabbitMQ's publisher-confirm tutorial does, gives the best throughput;
// an item is only safe once its Confirmation resolved with nil.
func (q *Queue) EnqueueAsync(ctx context.Context, data any) (*bus.Confirmation, error) {
	return q.publish(ctx, data)
}

// publish encodes and publishes one item without waiting for the confirm.
func (q *Queue) publish(ctx context.Context, data any) (*bus.Confirmation, error) {
	body, err := encode(data)
	if err != nil {
		return nil, err
	}
	tx := wire.Tx(ctx)
	if tx == "" {
		tx = wire.NewID()
	}
	msg := bus.Message{
		Headers: map[string]any{
			wire.HeaderTx:          tx,
			wire.HeaderTraceparent: wire.Traceparent(tx),
		},
		ContentType: wire.ContentTypeJSON,
		MessageID:   wire.NewID(),
		Persistent:  true,
		Mandatory:   true,
		Timestamp:   time.Now(),
		Body:        body,
	}
	c, err := q.b.Publish(ctx, "", q.name, msg)
	if err != nil {
		return nil, fmt.Errorf("workers: enqueue on %s: %w", q.name, err)
	}
	return c, nil
}

// encode turns data into a JSON body.
func encode(data any) ([]byte, error) {
	switch v := data.(type) {
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: raw message is not valid JSON", ErrEncode)
		}
		return v, nil
	case []byte:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: []byte is not valid JSON", ErrEncode)
		}
		return v, nil
	}
	body, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return body, nil
}
