package pubsub

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/logx"
)

// Defaults of the options.
const (
	// DefaultPrefetch bounds the events a subscription holds without
	// having settled them.
	DefaultPrefetch = 32
	// DefaultConcurrency is how many handlers of a subscription run at
	// once: one, which keeps the order of the queue.
	DefaultConcurrency = 1
)

// Option configures a PubSub (New) or one subscription (Subscribe and the
// classic Subscribe methods): one type for both, as in packages rpc and
// workers. The options given to New are the defaults of every
// subscription the PubSub makes; those given to a Subscribe call override
// them for that subscription (WithMiddleware adds to New's middleware).
// An option that does not apply where it is given is ignored: New ignores
// Group and Broadcast. Options are validated at once, every problem
// reported in one error wrapping ErrInvalidConfig.
type Option func(*config)

type config struct {
	logger      *slog.Logger
	prefetch    int
	concurrency int
	middleware  []patbus.Middleware
	transient   bool
	group       string
	emptyGroup  bool // Group("") was given: reported by check
}

func defaults() config {
	return config{logger: logx.Discard(), prefetch: DefaultPrefetch, concurrency: DefaultConcurrency}
}

// with returns c with opts applied. The middleware slice is never shared
// with c's, so subscriptions cannot add to each other's.
func (c config) with(opts []Option) config {
	c.middleware = slices.Clip(c.middleware)
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// check lists what is wrong with c.
func (c config) check() []error {
	var problems []error
	if c.prefetch < 1 {
		problems = append(problems, fmt.Errorf("prefetch %d must be at least 1", c.prefetch))
	}
	if c.concurrency < 1 {
		problems = append(problems, fmt.Errorf("concurrency %d must be at least 1", c.concurrency))
	}
	if c.emptyGroup {
		problems = append(problems, errors.New("empty group name"))
	}
	return problems
}

// invalid wraps problems into one error wrapping ErrInvalidConfig, or
// returns nil when there are none.
func invalid(problems []error) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("pubsub: %w: %w", ErrInvalidConfig, errors.Join(problems...))
}

// WithLogger sets the logger of the PubSub (given to New) or of one
// subscription; nil (and the default) means discard. Subscriptions log
// rejected events and failed settlements, panics with their stack, the
// end of a consumer nobody stopped, and at debug level every event
// handled.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = logx.OrDiscard(l) }
}

// WithPrefetch bounds the events a subscription holds without having
// settled them. Default DefaultPrefetch; a larger concurrency
// (WithConcurrency) raises it to match.
func WithPrefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// WithConcurrency sets how many handlers of a subscription run at once.
// Default DefaultConcurrency (one, which keeps the order of the queue).
// The prefetch is raised to it when smaller.
func WithConcurrency(n int) Option { return func(c *config) { c.concurrency = n } }

// WithMiddleware adds middleware to the subscriptions' handler chain, the
// first outermost, inside the engine's panic recovery and logging
// (patbus.Middleware). Given to New it wraps the handler of every
// subscription; given to Subscribe it wraps that subscription's handler,
// inside New's middleware. Middleware sees only the events the
// subscription handles: those a pattern's globs do not match are skipped
// before it.
func WithMiddleware(mw ...patbus.Middleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, mw...) }
}

// WithTransient makes group queues (and their dead-letter queues)
// non-durable and, given to New, published messages non-persistent:
// faster, but a broker restart loses them. Exchanges stay durable. Meant
// for tests and for events that are worthless after a restart.
func WithTransient() Option { return func(c *config) { c.transient = true } }

// Group makes the subscription one instance of the named group: the
// group's instances share the durable queue "<exchange>.<name>" and each
// event reaches one of them. The name must not be empty. New ignores it.
func Group(name string) Option {
	return func(c *config) { c.group, c.emptyGroup = name, name == "" }
}

// Broadcast gives the subscription its own exclusive queue, so that it
// gets a copy of every event it is bound for. It is the default; it undoes
// an earlier Group. New ignores it.
func Broadcast() Option { return func(c *config) { c.group, c.emptyGroup = "", false } }
