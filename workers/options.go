package workers

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/logx"
)

// Defaults used when an option is not given.
const (
	// DefaultPrefetch bounds the unacknowledged items of one worker.
	DefaultPrefetch = 16
	// DefaultMaxAttempts is how often an item is tried before it is
	// dead-lettered.
	DefaultMaxAttempts = 5
	// DefaultBackoffInitial and DefaultBackoffMax bound the delay before a
	// retry: the delay doubles after each failed attempt, from the initial
	// delay up to the maximum.
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = time.Minute
	// DefaultPublishTimeout bounds publishing a retry or dead-letter copy
	// and waiting for its confirm.
	DefaultPublishTimeout = 30 * time.Second
	// DefaultShutdownTimeout bounds the graceful stop at the end of Work.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultMaxRedeliveries is how often the broker may deliver an item
	// again (after its worker crashed or stopped while holding it) before
	// the worker dead-letters it as a crash loop. It is the delivery limit
	// that RabbitMQ 4 gives quorum queues by default.
	DefaultMaxRedeliveries = 20
)

// Option configures a Queue. Options are applied by New, which validates
// them all at once.
type Option func(*config)

type config struct {
	logger          *slog.Logger
	prefetch        int
	concurrency     int
	maxAttempts     int
	backoffInitial  time.Duration
	backoffMax      time.Duration
	publishTimeout  time.Duration
	shutdownTimeout time.Duration
	maxRedeliveries int
	quorum          bool
	middleware      []patbus.Middleware
}

func defaults() config {
	return config{
		logger:          logx.Discard(),
		maxAttempts:     DefaultMaxAttempts,
		backoffInitial:  DefaultBackoffInitial,
		backoffMax:      DefaultBackoffMax,
		publishTimeout:  DefaultPublishTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		maxRedeliveries: DefaultMaxRedeliveries,
	}
}

func newConfig(opts []Option) (config, error) {
	c := defaults()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf(format, args...))
	}
	if c.prefetch < 0 {
		bad("prefetch %d must not be negative", c.prefetch)
	}
	if c.concurrency < 0 {
		bad("concurrency %d must not be negative", c.concurrency)
	}
	switch {
	case c.prefetch == 0 && c.concurrency == 0:
		c.prefetch, c.concurrency = DefaultPrefetch, DefaultPrefetch
	case c.prefetch == 0:
		c.prefetch = c.concurrency
	case c.concurrency == 0:
		c.concurrency = c.prefetch
	}
	if c.concurrency > c.prefetch {
		bad("concurrency %d is more than prefetch %d: the extra handlers would never get an item", c.concurrency, c.prefetch)
	}
	if c.maxAttempts < 1 {
		bad("max attempts %d must be at least 1", c.maxAttempts)
	}
	if c.backoffInitial < time.Millisecond || c.backoffMax < c.backoffInitial {
		bad("backoff must be at least 1ms with initial <= max (got %v, %v)", c.backoffInitial, c.backoffMax)
	}
	if c.publishTimeout <= 0 {
		bad("publish timeout %v must be positive", c.publishTimeout)
	}
	if c.shutdownTimeout <= 0 {
		bad("shutdown timeout %v must be positive", c.shutdownTimeout)
	}
	if c.maxRedeliveries < 1 {
		bad("max redeliveries %d must be at least 1", c.maxRedeliveries)
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}

// WithLogger sets the logger; nil (and the default) means discard. The
// worker logs panics, dead letters, items handed back and the end of its
// consumer; at debug level every item handled and every retry.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = logx.OrDiscard(l) }
}

// WithPrefetch bounds the items a worker holds without having acked them
// (handed to handlers or waiting for one). When only one of WithPrefetch and
// WithConcurrency is given, the other takes the same value; both default to
// DefaultPrefetch. Concurrency may not exceed prefetch.
func WithPrefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// WithConcurrency sets how many handlers run at once, on a pool of that
// many goroutines (never on the broker's delivery goroutine).
func WithConcurrency(n int) Option { return func(c *config) { c.concurrency = n } }

// WithMaxAttempts sets how often an item is tried, the first attempt
// included, before it goes to the dead-letter queue. Default 5; 1 means no
// retries.
func WithMaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = n } }

// WithBackoff sets the delay before the first retry and the cap of the
// doubling delays after it. Each distinct delay gets its own retry queue
// (Q.retry.<delay>), declared by New. Default 1s and 1m.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) { c.backoffInitial, c.backoffMax = initial, max }
}

// WithPublishTimeout bounds publishing a retry or dead-letter copy and
// waiting for the broker's confirm. If it passes, the original item is handed
// back to the queue unchanged. Default 30s.
func WithPublishTimeout(d time.Duration) Option { return func(c *config) { c.publishTimeout = d } }

// WithShutdownTimeout bounds the graceful stop that Work performs when its
// context ends. Default 30s.
func WithShutdownTimeout(d time.Duration) Option { return func(c *config) { c.shutdownTimeout = d } }

// WithMaxRedeliveries bounds crash loops: how often the broker may deliver
// an item again after a worker stopped, crashed or lost its connection
// while holding it. The worker counts these redeliveries in the item's
// header HeaderDeliveries; one more than n dead-letters the item with
// reason "crash-loop", so its handler runs at most n+1 times without
// returning. Redeliveries after a graceful stop that handed the item back
// count as well, so n should stay well above the restarts an item may
// live through. Default DefaultMaxRedeliveries (20); at least 1.
func WithMaxRedeliveries(n int) Option { return func(c *config) { c.maxRedeliveries = n } }

// WithMiddleware adds middleware to the worker's handler chain, the first
// outermost, inside the engine's panic recovery and logging and the
// worker's crash-loop guard (package patbus, Middleware): it sees every
// item the handler is given, with the handler's context, and the error the
// handler returned, before the worker acks, retries or dead-letters the
// item by it. Dedup is such a middleware.
func WithMiddleware(mw ...patbus.Middleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, mw...) }
}

// WithQuorum declares the work, retry and dead-letter queues as quorum
// queues (RabbitMQ; the in-memory broker treats them as durable queues).
// The work queue then also has a delivery limit (x-delivery-limit, the
// larger of 20 and 4×max attempts) and dead-letters to Q.dead through the
// broker: a second guard against crash loops, for an item that is returned
// again and again before a worker could count it (WithMaxRedeliveries
// counts on every kind of queue). A queue declared without WithQuorum
// cannot be declared again with it.
func WithQuorum() Option { return func(c *config) { c.quorum = true } }
