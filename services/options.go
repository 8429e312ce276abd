package services

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/logx"
	"github.com/patbus/patbus/rpc"
)

// Defaults of the options.
const (
	// DefaultTimeout bounds an act whose context has no deadline.
	DefaultTimeout = 5 * time.Second
	// DefaultHeartbeat is how often an instance announces itself in the
	// catalog. An instance silent for MissedHeartbeats intervals is dropped.
	DefaultHeartbeat = 5 * time.Second
	// MissedHeartbeats is how many heartbeats an instance may miss before
	// callers drop it from their catalog.
	MissedHeartbeats = 3
	// DefaultPrefetch bounds the requests one instance handles at once.
	DefaultPrefetch = rpc.DefaultPrefetch
	// DefaultMaxMessageSize bounds the body of an act and of its reply.
	DefaultMaxMessageSize = bus.DefaultMaxMessageSize
	// DefaultActExchange is the topic exchange acts travel on (DESIGN.md
	// section 4), rpc.ActExchange.
	DefaultActExchange = "patbus.act"
	// DefaultRegistryExchange is the fanout exchange of the catalog
	// (DESIGN.md section 6).
	DefaultRegistryExchange = "patbus.registry"
	// DefaultDrainTimeout bounds the graceful stop of Run.
	DefaultDrainTimeout = 10 * time.Second
)

// Option configures a Service.
type Option func(*config)

type config struct {
	broker          bus.Broker
	logger          *slog.Logger
	timeout         time.Duration
	prefetch        int
	heartbeat       time.Duration
	preferLocal     bool
	directToQueue   bool
	maxMessageSize  int
	actExchange     string
	registry        string
	queueExpires    time.Duration
	directReply     bool
	confirmReplies  bool
	middleware      []patbus.Middleware
	drainTimeout    time.Duration
	consul          bool
	consulAddr      string
	healthTTL       time.Duration
	deregisterAfter time.Duration
	inlineLocal     bool
}

func defaults() config {
	return config{
		logger:          logx.Discard(),
		timeout:         DefaultTimeout,
		prefetch:        DefaultPrefetch,
		heartbeat:       DefaultHeartbeat,
		preferLocal:     true,
		maxMessageSize:  DefaultMaxMessageSize,
		actExchange:     DefaultActExchange,
		registry:        DefaultRegistryExchange,
		drainTimeout:    DefaultDrainTimeout,
		healthTTL:       DefaultHealthTTL,
		deregisterAfter: DefaultDeregisterAfter,
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
	if c.heartbeat <= 0 {
		problems = append(problems, fmt.Errorf("heartbeat must be positive, got %v", c.heartbeat))
	}
	if c.maxMessageSize <= 0 {
		problems = append(problems, fmt.Errorf("max message size must be positive, got %d", c.maxMessageSize))
	}
	if c.actExchange == "" || c.registry == "" {
		problems = append(problems, errors.New("exchange names must not be empty"))
	}
	if c.healthTTL < 100*time.Millisecond {
		problems = append(problems, fmt.Errorf("health TTL must be at least 100ms, got %v", c.healthTTL))
	}
	if c.deregisterAfter <= 0 {
		problems = append(problems, fmt.Errorf("deregister-after must be positive, got %v", c.deregisterAfter))
	}
	if c.drainTimeout <= 0 {
		problems = append(problems, fmt.Errorf("drain timeout must be positive, got %v", c.drainTimeout))
	}
	if c.queueExpires < 0 {
		problems = append(problems, fmt.Errorf("queue expiry must not be negative, got %v", c.queueExpires))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}

// WithBroker sets the broker the service talks on. Services that should see
// each other share one broker value (in-memory) or one RabbitMQ. The
// service does not close a broker given here. Nil (the default) gives the
// service a private in-memory broker that it owns and closes: it can act
// only on itself.
func WithBroker(b bus.Broker) Option { return func(c *config) { c.broker = b } }

// WithLogger sets the logger; nil (and the default) means discard. Every
// line logged about an act carries the attribute "tx".
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = logx.OrDiscard(l) }
}

// WithTimeout bounds an act whose context has no deadline. Default
// DefaultTimeout (5s). A context deadline always wins. The caller of a
// local act that times out this way has its error at most a thousandth
// of d after the deadline: the acts of a service share their deadline
// timers, one per thousandth of d, rather than each having one.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithPrefetch bounds the requests from the broker that one instance
// handles at once. Default DefaultPrefetch.
func WithPrefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// WithHeartbeat sets how often the instance announces itself in the
// catalog. Callers drop an instance after MissedHeartbeats silent
// intervals (its own announced interval). Default DefaultHeartbeat (5s).
func WithHeartbeat(d time.Duration) Option { return func(c *config) { c.heartbeat = d } }

// WithPreferLocal chooses what happens when a local action and a remote
// service have the very same pattern: true (the default) runs the local
// action in-process; false sends the act through the broker, so that load
// spreads over every instance and every act can be seen on the exchange.
func WithPreferLocal(prefer bool) Option { return func(c *config) { c.preferLocal = prefer } }

// WithBrokerOnly is WithPreferLocal(false): every act travels through the
// broker, even one the service could answer itself.
func WithBrokerOnly() Option { return WithPreferLocal(false) }

// WithDirectToQueue publishes each remote act straight to the queue of
// the service version it resolved to, through AMQP's default exchange
// (the catalog names every version's queue), instead of on the act
// exchange with the routing key of its pattern. The broker has no routing
// to do, which costs it less (see the benchmarks in the README); but such
// acts are invisible on the act exchange: a queue bound there (patbus
// tail, an audit tap, a foreign consumer) does not see them. The default,
// every act on the act exchange, is the shape the whole system is built
// around.
func WithDirectToQueue() Option { return func(c *config) { c.directToQueue = true } }

// WithMaxMessageSize bounds the body of an act sent over the broker and of
// the replies this instance sends. A larger act fails with an error
// wrapping bus.ErrTooLarge. Default DefaultMaxMessageSize.
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMessageSize = n } }

// WithExchanges replaces the names of the act exchange (topic) and the
// registry exchange (fanout); the act queue of a service is then
// "<act>.<name>@<version>" and an instance's registry queue
// "<registry>.<instance>". Services that should see each other must use the
// same names. Defaults DefaultActExchange and DefaultRegistryExchange. Use
// it to keep separate systems (or tests) apart on one RabbitMQ.
func WithExchanges(act, registry string) Option {
	return func(c *config) { c.actExchange, c.registry = act, registry }
}

// WithQueueExpires lets RabbitMQ delete the service version's shared act
// queue after it has had no consumer for d (x-expires). Zero (the default)
// keeps it until it is deleted by hand. Every instance of a version must
// use the same value.
func WithQueueExpires(d time.Duration) Option { return func(c *config) { c.queueExpires = d } }

// WithDirectReplyTo makes the service's acts over the broker receive their
// replies through RabbitMQ's direct reply-to instead of the service's own
// exclusive reply queue (rpc.WithDirectReplyTo: no reply queue to declare;
// replies die with the channel, and acts waiting on a lost channel fail at
// once). The default, the exclusive reply queue, measured as fast or
// slightly faster.
func WithDirectReplyTo() Option { return func(c *config) { c.directReply = true } }

// WithConfirmedReplies makes the service confirm each reply with the
// broker before it acks the request (rpc.WithConfirmedReplies): a reply
// the broker refuses then gives the request back while its caller still
// waits. By default reply and ack go out in order on the request's
// channel, which costs less and loses only a refused reply (its caller
// times out).
func WithConfirmedReplies() Option { return func(c *config) { c.confirmReplies = true } }

// WithMiddleware adds middleware around the service's actions for the
// acts that reach it over the broker, the first outermost, inside the
// engine's own panic recovery, expiry and logging (package patbus,
// Middleware): the place for tracing, metrics and the program's own
// concerns. Acts that run in-process (a local action) do not pass through
// it.
func WithMiddleware(mw ...patbus.Middleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, mw...) }
}

// WithDrainTimeout bounds how long Run lets the requests in flight finish
// once it was told to stop; what has not finished by then goes back to the
// queue, for another instance. Default DefaultDrainTimeout (10s).
func WithDrainTimeout(d time.Duration) Option { return func(c *config) { c.drainTimeout = d } }

// WithConsul makes the service use Consul at addr ("127.0.0.1:8500"; ""
// means the standard CONSUL_HTTP_ADDR and the other CONSUL_* variables)
// for health and versions only (the catalog of patterns stays on the bus):
// each instance registers itself with its version (meta "version" and a
// tag "v<version>") and act queue (meta "queue") and a TTL check that it
// keeps passing from its real state (critical while its broker connection
// is down or its act consumer has stopped), and deregisters first thing
// when it stops; and the service routes its acts only to versions with an
// instance Consul does not know as critical. Without it, the catalog's
// heartbeats alone decide. A Consul that is down or refuses never stops a
// service: it starts anyway, retries in the background, routes on the last
// known health and says so once in its log.
func WithConsul(addr string) Option {
	return func(c *config) { c.consul, c.consulAddr = true, addr }
}

// WithHealthTTL sets the TTL of the instance's check in Consul: an
// instance that stops updating it (killed, hung) turns critical within it.
// The instance updates it three times per TTL. Default DefaultHealthTTL.
func WithHealthTTL(d time.Duration) Option { return func(c *config) { c.healthTTL = d } }

// WithDeregisterAfter sets how long an instance may stay critical in
// Consul before Consul removes it by itself (Consul's minimum is a
// minute). Default DefaultDeregisterAfter.
func WithDeregisterAfter(d time.Duration) Option { return func(c *config) { c.deregisterAfter = d } }

// WithInlineLocalActs runs the handler of a local act (an action of this
// service, acted on in-process) on the caller's goroutine instead of
// handing it to one of the service's runner goroutines. That saves the
// hand-over between goroutines (see the benchmarks), but a handler that
// ignores its context then holds its caller until it returns, past the
// act's deadline (the caller still gets the timeout error then). By
// default the caller gets its timeout at the deadline whatever the
// handler does.
func WithInlineLocalActs() Option { return func(c *config) { c.inlineLocal = true } }
