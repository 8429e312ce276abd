package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/logx"
)

// Option configures a DB (see Open).
type Option func(*config)

// config holds every setting of a DB; defaults gives the safe defaults.
type config struct {
	logger      *slog.Logger
	timeout     time.Duration
	dialTimeout time.Duration
	appName     string
}

// Default timeouts of a DB.
const (
	// DefaultTimeout bounds an operation whose context has no deadline.
	DefaultTimeout = 10 * time.Second
	// DefaultDialTimeout bounds the wait for a reachable server: the TCP
	// connect and the search for a server to send an operation to.
	DefaultDialTimeout = 5 * time.Second
)

func defaults() config {
	return config{
		logger:      logx.Discard(),
		timeout:     DefaultTimeout,
		dialTimeout: DefaultDialTimeout,
		appName:     "patbus",
	}
}

func newConfig(opts []Option) (config, error) {
	c := defaults()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var problems []string
	if c.timeout <= 0 {
		problems = append(problems, "timeout must be positive")
	}
	if c.dialTimeout <= 0 {
		problems = append(problems, "dial timeout must be positive")
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("store: %w: %v", patbus.ErrInvalidConfig, problems)
	}
	return c, nil
}

// WithLogger sets the logger for what the store does on its own (opening
// and closing, indexes, Dedup's pruning). Nil, the default, discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = logx.OrDiscard(l) }
}

// WithTimeout bounds each operation whose context has no deadline of its
// own (default DefaultTimeout). A context with a deadline is used as it
// is. It must be positive.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithDialTimeout bounds how long an operation waits for a reachable
// server, and each TCP connect (default DefaultDialTimeout): a server that
// is down fails an operation after this long, or when its context ends,
// whichever comes first. It must be positive.
func WithDialTimeout(d time.Duration) Option { return func(c *config) { c.dialTimeout = d } }

// WithAppName sets the name the connections give the server, which it
// shows in its logs and currentOp (default "patbus").
func WithAppName(name string) Option { return func(c *config) { c.appName = name } }
