package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/logx"
)

// Defaults of the options.
const (
	// DefaultAddr is the address Run listens on.
	DefaultAddr = ":8080"
	// DefaultTimeout bounds each act.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBodyBytes bounds a request body: 1 MiB.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxDepth bounds the nesting of arrays and objects in a JSON
	// body.
	DefaultMaxDepth = 64
	// DefaultReadHeaderTimeout bounds the reading of a request's headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds the reading of a whole request, body
	// included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds a request from the end of its headers to
	// the end of its response, the act included; it must exceed the act
	// timeout.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout bounds how long a keep-alive connection waits for
	// its next request.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultShutdownTimeout bounds the drain when Run's context ends.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultReadyTimeout bounds the readiness checks of one /readyz
	// request.
	DefaultReadyTimeout = 2 * time.Second
	// DefaultHealthPath and DefaultReadyPath are the paths of the health
	// endpoints.
	DefaultHealthPath = "/healthz"
	DefaultReadyPath  = "/readyz"
)

// Option configures a Gateway.
type Option func(*config)

type config struct {
	addr              string
	log               *slog.Logger
	timeout           time.Duration
	maxBody           int64
	maxDepth          int
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	readyTimeout      time.Duration
	healthPath        string
	readyPath         string
	checks            []Check
	checksSet         bool
}

func defaults() config {
	return config{
		addr:              DefaultAddr,
		log:               logx.Discard(),
		timeout:           DefaultTimeout,
		maxBody:           DefaultMaxBodyBytes,
		maxDepth:          DefaultMaxDepth,
		readHeaderTimeout: DefaultReadHeaderTimeout,
		readTimeout:       DefaultReadTimeout,
		writeTimeout:      DefaultWriteTimeout,
		idleTimeout:       DefaultIdleTimeout,
		shutdownTimeout:   DefaultShutdownTimeout,
		readyTimeout:      DefaultReadyTimeout,
		healthPath:        DefaultHealthPath,
		readyPath:         DefaultReadyPath,
	}
}

func newConfig(opts []Option) (config, error) {
	c := defaults()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"timeout", c.timeout}, {"read header timeout", c.readHeaderTimeout}, {"read timeout", c.readTimeout},
		{"write timeout", c.writeTimeout}, {"idle timeout", c.idleTimeout},
	} {
		if d.d < 0 {
			bad("%s %v is negative", d.name, d.d)
		}
	}
	if c.shutdownTimeout <= 0 {
		bad("shutdown timeout %v is not positive", c.shutdownTimeout)
	}
	if c.readyTimeout <= 0 {
		bad("ready timeout %v is not positive", c.readyTimeout)
	}
	if c.timeout > 0 && c.writeTimeout > 0 && c.writeTimeout <= c.timeout {
		bad("write timeout %v does not exceed the act timeout %v: a slow act would lose its answer", c.writeTimeout, c.timeout)
	}
	if c.maxBody <= 0 {
		bad("max body bytes %d is not positive", c.maxBody)
	}
	if c.maxDepth <= 0 || c.maxDepth > 10000 {
		bad("max depth %d is not in 1..10000", c.maxDepth)
	}
	for _, p := range []string{c.healthPath, c.readyPath} {
		if p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "{}: \t")) {
			bad("health path %q is not a plain path", p)
		}
	}
	if c.healthPath != "" && c.healthPath == c.readyPath {
		bad("health and ready paths are both %q", c.healthPath)
	}
	for i, ch := range c.checks {
		if ch == nil {
			bad("readiness check %d is nil", i)
		}
	}
	if c.log == nil {
		c.log = logx.Discard()
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("gateway: %w: %w", patbus.ErrInvalidConfig, err)
	}
	return c, nil
}

// WithAddr sets the TCP address Run listens on. Default DefaultAddr
// (":8080").
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithLogger sets the logger; nil (and the default) means discard. Failed
// acts answered with a status of 500 or more are logged at Warn with their
// tx, recovered panics at Error.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithTimeout bounds each act: the act's context gets this deadline (and
// the request's own cancellation). Zero leaves the deadline to the Actor
// (services.WithTimeout). Default DefaultTimeout (10s).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxBodyBytes bounds the body of a request: a longer one is answered
// 413 without being read further. Default DefaultMaxBodyBytes (1 MiB).
func WithMaxBodyBytes(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithMaxDepth bounds the nesting of arrays and objects in a JSON body; a
// deeper body is answered 400. Default DefaultMaxDepth (64), at most 10000.
func WithMaxDepth(n int) Option { return func(c *config) { c.maxDepth = n } }

// WithReadHeaderTimeout sets http.Server.ReadHeaderTimeout: a client that
// takes longer to send its request headers is cut off. Zero means no
// limit. Default DefaultReadHeaderTimeout (5s).
func WithReadHeaderTimeout(d time.Duration) Option {
	return func(c *config) { c.readHeaderTimeout = d }
}

// WithReadTimeout sets http.Server.ReadTimeout: a client that takes longer
// to send a whole request, body included, is cut off. Zero means no limit.
// Default DefaultReadTimeout (30s).
func WithReadTimeout(d time.Duration) Option { return func(c *config) { c.readTimeout = d } }

// WithWriteTimeout sets http.Server.WriteTimeout, which runs from the end
// of a request's headers to the end of its response; it must exceed the
// act timeout (WithTimeout). Zero means no limit. Default
// DefaultWriteTimeout (30s).
func WithWriteTimeout(d time.Duration) Option { return func(c *config) { c.writeTimeout = d } }

// WithIdleTimeout sets http.Server.IdleTimeout, how long a keep-alive
// connection may wait for its next request. Zero means ReadTimeout's
// value, as in net/http. Default DefaultIdleTimeout (120s).
func WithIdleTimeout(d time.Duration) Option { return func(c *config) { c.idleTimeout = d } }

// WithShutdownTimeout bounds the drain that Run and Serve perform when
// their context ends. Default DefaultShutdownTimeout (30s).
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) { c.shutdownTimeout = d }
}

// WithReadiness replaces the readiness checks that /readyz runs (see
// Check and BrokerCheck); with no checks /readyz is ready whenever the
// gateway is not shutting down. Without this option the checks are those
// the Actor offers (see New).
func WithReadiness(checks ...Check) Option {
	return func(c *config) { c.checks, c.checksSet = checks, true }
}

// WithReadyTimeout bounds the readiness checks of one /readyz request.
// Default DefaultReadyTimeout (2s).
func WithReadyTimeout(d time.Duration) Option { return func(c *config) { c.readyTimeout = d } }

// WithHealthPaths sets the paths of the liveness and readiness endpoints;
// "" turns one off. Default DefaultHealthPath ("/healthz") and
// DefaultReadyPath ("/readyz").
func WithHealthPaths(health, ready string) Option {
	return func(c *config) { c.healthPath, c.readyPath = health, ready }
}
