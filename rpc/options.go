package rpc

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/logx"
)

// Defaults of the options.
const (
	// DefaultTimeout bounds a Call whose context has no deadline.
	DefaultTimeout = 5 * time.Second
	// DefaultPrefetch is the Server's bound on requests in flight (handlers
	// running at once) per instance. Measured with 64 callers on one
	// instance: with handlers that answer at once (services'
	// BenchmarkRemotePrefetch) the rate rises to 32 and stays flat from
	// there (8: 0.73x of the best, 16: 0.88x, 32 to 256: 0.9-1.0x); with
	// handlers that wait on MongoDB (the example system's
	// BenchmarkLoadUser) 64 served about 18 % more than 32, with a lower
	// p50 and a p99 about 15 % higher. Larger ones let an instance hold
	// requests another instance could answer.
	DefaultPrefetch = 64
	// DefaultMaxMessageSize is the largest request or reply body, the bus
	// default.
	DefaultMaxMessageSize = bus.DefaultMaxMessageSize
	// DefaultReplyConfirmTimeout bounds how long a Server waits for the
	// broker to confirm a reply before it acks the request anyway.
	DefaultReplyConfirmTimeout = 10 * time.Second
)

// Option configures a Client or a Server. Options that concern only one of
// them are accepted and ignored by the other.
type Option func(*config)

type config struct {
	logger         *slog.Logger
	timeout        time.Duration
	prefetch       int
	service        string
	version        string
	maxMessageSize int
	confirmTimeout time.Duration
	directReply    bool
	confirmReplies bool
	middleware     []patbus.Middleware
}

func defaults() config {
	return config{
		logger:         logx.Discard(),
		timeout:        DefaultTimeout,
		prefetch:       DefaultPrefetch,
		maxMessageSize: DefaultMaxMessageSize,
		confirmTimeout: DefaultReplyConfirmTimeout,
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
	if c.timeout <= 0 {
		problems = append(problems, fmt.Errorf("timeout must be positive, got %v", c.timeout))
	}
	if c.prefetch <= 0 {
		problems = append(problems, fmt.Errorf("prefetch must be positive, got %d", c.prefetch))
	}
	if c.maxMessageSize <= 0 {
		problems = append(problems, fmt.Errorf("max message size must be positive, got %d", c.maxMessageSize))
	}
	if c.confirmTimeout <= 0 {
		problems = append(problems, fmt.Errorf("reply confirm timeout must be positive, got %v", c.confirmTimeout))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}

// WithLogger sets the logger; nil (and the default) means discard. The
// Server logs panics, requests that arrive past their deadline and broker
// failures; the Client logs dropped replies at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = logx.OrDiscard(l) }
}

// WithTimeout sets the Client's timeout for a Call whose context has no
// deadline. Default DefaultTimeout (5s). A context deadline always wins.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithPrefetch sets the Server's bound on requests in flight: the consumer
// prefetch and the number of handlers that run at once. Default
// DefaultPrefetch (64).
func WithPrefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// WithService names the Server's service and version: they are sent as the
// replies' app-id ("name@version", WIRE.md) and filled into the errors it
// returns.
func WithService(name, version string) Option {
	return func(c *config) { c.service, c.version = name, version }
}

// WithMaxMessageSize bounds request and reply bodies. A Call with a larger
// body fails before sending with a *CallError wrapping bus.ErrTooLarge; a
// Server answers a larger request, or a handler's larger result, with an
// error of code "too_large". Default DefaultMaxMessageSize.
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMessageSize = n } }

// WithReplyConfirmTimeout bounds how long the Server waits for the broker's
// confirm of a reply before it acks the request anyway; it never waits past
// the caller's deadline. Default DefaultReplyConfirmTimeout. It applies to
// the replies that are confirmed: all of them with WithConfirmedReplies,
// otherwise those over 16 KiB and those sent while the broker blocks
// publishers (bus.Reply).
func WithReplyConfirmTimeout(d time.Duration) Option {
	return func(c *config) { c.confirmTimeout = d }
}

// WithDirectReplyTo makes the Client receive its replies through
// RabbitMQ's direct reply-to instead of its own exclusive reply queue (the
// default): no reply queue is declared; requests are published on a
// channel of their own (bus.DirectReply) that consumes the pseudo-queue
// amq.rabbitmq.reply-to, and carry that name as reply-to (the broker turns
// it into "amq.rabbitmq.reply-to.<token>"). Servers need no change: they
// reply to the default exchange with the reply-to as key, not mandatory.
//
// Replies are at most once and tied to that channel: when it is lost (a
// connection failure), the calls waiting on it fail at once with a
// *CallError wrapping bus.ErrDisconnected (the handler may still have run),
// and the next Call opens a new channel. The broker must implement
// bus.DirectReplier (both bus brokers do); otherwise NewClient fails with
// an error wrapping ErrInvalidConfig. Servers ignore this option.
func WithDirectReplyTo() Option { return func(c *config) { c.directReply = true } }

// WithConfirmedReplies makes the Server publish each reply with a publisher
// confirm and ack the request only once the broker has confirmed it; a
// reply the broker refuses (a full reply queue that rejects publishes)
// then gives the request back to the queue while the caller still waits.
//
// By default the Server consumes on the publishing connection
// (bus.ConsumeOptions.Replies) and sends each reply and then the ack on
// the request's own channel (bus.Reply): in order, so a request is still
// never acked before its reply is with the broker, and a connection lost
// in between means redelivery; but a refused reply is lost without notice
// and its caller times out. The default costs RabbitMQ and the Server
// less per request (see the package benchmarks). Clients ignore this
// option.
func WithConfirmedReplies() Option { return func(c *config) { c.confirmReplies = true } }

// WithMiddleware adds middleware to the Server's handler chain, the first
// outermost, inside the engine's own panic recovery, expiry and logging
// (package patbus, Middleware). Clients ignore it.
func WithMiddleware(mw ...patbus.Middleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, mw...) }
}
