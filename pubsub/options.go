package pubsub

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/patbus/patbus/internal/logx"
)

// DefaultPrefetch bounds the unacknowledged events of one subscription.
const DefaultPrefetch = 32

// Option configures a PubSub. New validates all options at once.
type Option func(*config)

type config struct {
	logger    *slog.Logger
	prefetch  int
	transient bool
}

func newConfig(opts []Option) (config, error) {
	c := config{logger: logx.Discard(), prefetch: DefaultPrefetch}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var problems []error
	if c.prefetch < 1 {
		problems = append(problems, fmt.Errorf("prefetch %d must be at least 1", c.prefetch))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}

// WithLogger sets the logger; nil means discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = logx.OrDiscard(l) }
}

// WithPrefetch bounds the events a subscription holds without having acked
// them. Default DefaultPrefetch; a subscription's Concurrency raises it when
// larger.
func WithPrefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// WithTransient makes group queues (and their dead-letter queues)
// non-durable and published messages non-persistent: faster, but a broker
// restart loses them. Exchanges stay durable. Meant for tests and for events
// that are worthless after a restart.
func WithTransient() Option { return func(c *config) { c.transient = true } }

// SubscribeOption configures one subscription.
type SubscribeOption func(*subConfig)

type subConfig struct {
	group       string
	concurrency int
}

// Group makes the subscription one instance of the named group: the group's
// instances share the durable queue "<exchange>.<name>" and each event
// reaches one of them. The name must not be empty.
func Group(name string) SubscribeOption {
	return func(c *subConfig) {
		c.group = name
		if name == "" {
			c.group = "\x00" // reported by validation
		}
	}
}

// Broadcast gives the subscription its own exclusive queue, so that it gets
// a copy of every event it is bound for. It is the default; it undoes an
// earlier Group.
func Broadcast() SubscribeOption { return func(c *subConfig) { c.group = "" } }

// Concurrency sets how many handlers of the subscription run at once.
// Default 1, which keeps the queue's order.
func Concurrency(n int) SubscribeOption { return func(c *subConfig) { c.concurrency = n } }

func newSubConfig(opts []SubscribeOption) (subConfig, error) {
	c := subConfig{concurrency: 1}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var problems []error
	if c.group == "\x00" {
		problems = append(problems, errors.New("empty group name"))
	}
	if c.concurrency < 1 {
		problems = append(problems, fmt.Errorf("concurrency %d must be at least 1", c.concurrency))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}
