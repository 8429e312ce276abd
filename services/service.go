package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/rpc"
)

// Lifecycle states of a Service.
const (
	stateNew int32 = iota
	stateRunning
	stateFailed
	stateClosed
)

// Service is a named, versioned set of actions on a broker: it adds
// patterns, acts on its own and other services' patterns, and takes part
// in the catalog. All methods are safe for concurrent use.
//
// A Service starts talking on the broker at Ready, or at its first Act or
// WaitFor; Add may be called before and after. Close stops it at once,
// Shutdown gracefully.
type Service struct {
	name     string
	version  string
	ver      version
	instance string
	cfg      config
	broker   bus.Broker
	owns     bool // the broker is private and closed by Close
	quiet    bool // a caller made by NewClient: announces nothing while it serves nothing
	log      *slog.Logger

	// life serialises start, Add's broker work and Close: a one-slot
	// semaphore, so that waiting for it honours a context.
	life  chan struct{}
	state atomic.Int32
	err   error // why the start failed (stateFailed)

	// mu guards everything below, and the catalog.
	mu      sync.Mutex
	locals  []*action
	plugins []pluginEntry
	cat     catalog
	changed chan struct{} // closed and replaced on every change of snap
	client  *rpc.Client
	server  *rpc.Server
	reg     *engine.Consumer // the catalog's consumer

	// Consul (WithConsul): the client; the registration loop's stop and
	// end; and, guarded by mu, the health of the instances Consul tracks.
	consul          *api.Client
	consulTransport *http.Transport    // its connections, closed with the service
	consulCancel    context.CancelFunc // nil while no registration loop runs
	consulDone      chan struct{}      // closed when that loop has ended
	health          map[string]string  // instance id -> Consul status
	healthHeard     bool               // Consul has answered at least once
	healthStale     bool               // Consul is unreachable: health is the last known
	watching        bool               // the health watch runs
	watchCtx        context.Context    // the watch's context, set at start

	snap      atomic.Pointer[snapshot]
	parsed    patternCache
	runner    *localRunner   // runs the handlers of local acts (guard)
	deadlines *deadlineSlots // their default deadlines (guard)
	pins      pinCache
	plans     planCache

	announceNow chan struct{}
	// discoverUntil is when the current discovery round ends (Unix
	// nanoseconds): until then an act that finds no route waits for the
	// catalog rather than fail. A round starts when the instance joins
	// the catalog and again after it was cut off from the broker.
	discoverUntil atomic.Int64
	// closing ends when Close begins: a start or an Add in progress gives
	// up its broker work at once.
	closing  context.Context
	stopAll  context.CancelFunc
	bgCancel context.CancelFunc
	wg       sync.WaitGroup
	left     atomic.Bool
	annMu    sync.Mutex // orders announcements before the leave

	closeOnce sync.Once
	closeErr  error
}

// New returns a service with the name and semantic version (MAJOR.MINOR.PATCH
// with optional -pre-release and +build). The name may hold letters,
// digits, '.', '_' and '-'. Invalid arguments or options give an error
// wrapping ErrInvalidConfig. New does not touch the broker yet.
func New(name, version string, opts ...Option) (*Service, error) {
	cfg, err := newConfig(opts)
	var problems []error
	if err != nil {
		problems = append(problems, err)
	}
	if !validName(name) {
		problems = append(problems, fmt.Errorf("invalid service name %q: use 1-100 letters, digits, '.', '_' or '-'", name))
	}
	ver, verr := parseSemver(version)
	if verr != nil {
		problems = append(problems, fmt.Errorf("invalid version for service %q: %w", name, verr))
	}
	if len(problems) > 0 {
		if err != nil && len(problems) == 1 {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	s := &Service{
		name:        name,
		version:     version,
		ver:         ver,
		instance:    name + "-" + wire.NewID()[:12],
		cfg:         cfg,
		broker:      cfg.broker,
		log:         cfg.logger,
		life:        make(chan struct{}, 1),
		changed:     make(chan struct{}),
		announceNow: make(chan struct{}, 1),
		cat:         newCatalog(),
		parsed:      patternCache{m: map[string]*parsedPattern{}},
		runner:      newLocalRunner(),
		deadlines:   newDeadlineSlots(cfg.timeout),
	}
	s.closing, s.stopAll = context.WithCancel(context.Background())
	if cfg.consul {
		c, t, err := newConsul(cfg.consulAddr)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		s.consul, s.consulTransport = c, t
	}
	if s.broker == nil {
		b, err := bus.NewMemory()
		if err != nil {
			return nil, fmt.Errorf("services: private in-memory broker: %w", err)
		}
		s.broker, s.owns = b, true
	}
	s.snap.Store(&snapshot{exact: map[string]*action{}, local: patterns.NewRouter[*action](), routes: patterns.NewRouter[*route]()})
	return s, nil
}

// The name and version of the services NewClient makes.
const (
	ClientName    = "client"
	ClientVersion = "0.0.0"
)

// NewClient returns a service for a program that only acts, such as a
// command-line tool or an HTTP gateway: it is named ClientName, version
// ClientVersion, and takes part in the catalog only to learn who serves
// what. While it has no actions of its own it announces nothing, so it
// does not show in other services' catalogs; Add still works. The options
// are New's.
func NewClient(opts ...Option) (*Service, error) {
	s, err := New(ClientName, ClientVersion, opts...)
	if err != nil {
		return nil, err
	}
	s.quiet = true
	return s, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 100 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Name returns the service's name.
func (s *Service) Name() string { return s.name }

// Version returns the service's version.
func (s *Service) Version() string { return s.version }

// Instance returns the id of this instance in the catalog.
func (s *Service) Instance() string { return s.instance }

// Logger returns the service's logger, for plugins and handlers.
func (s *Service) Logger() *slog.Logger { return s.log }

// Broker returns the broker the service talks on.
func (s *Service) Broker() bus.Broker { return s.broker }

// queueName is the shared act queue of this service version.
func (s *Service) queueName() string {
	return s.cfg.actExchange + "." + s.name + "@" + s.version
}

// bindingKey is the routing key of p served by this service version.
func (s *Service) bindingKey(p patterns.Pattern) (string, error) {
	return targetKey(p, s.name, s.version)
}

// targetKey is the routing key of p extended with $$target and $$version.
func targetKey(p patterns.Pattern, service, version string) (string, error) {
	return patterns.Key(p.With(keyTarget, service).With(keyVersion, version))
}

// The message keys that pin a service or a version.
const (
	keyTarget  = "$$target"
	keyVersion = "$$version"
)

func (s *Service) lock(ctx context.Context) error {
	select {
	case s.life <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) unlock() { <-s.life }

// Add adds an action for pattern; see AddPattern.
func (s *Service) Add(pattern string, h Handler, opts ...ActionOption) error {
	p, err := parsePattern(pattern)
	if err != nil {
		return err
	}
	return s.AddPattern(p, h, opts...)
}

// AddPattern adds an action for p. Adding the same pattern again replaces
// its action; the action it replaced, or else the one the pattern matched
// (by the Patrun rules), becomes its prior. Once the service runs, Add binds
// the pattern on the broker and announces it in the catalog, and fails if
// that fails. A pattern whose routing key is too long fails with an error
// wrapping patterns.ErrKeyTooLong.
func (s *Service) AddPattern(p patterns.Pattern, h Handler, opts ...ActionOption) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler for pattern %s", ErrInvalidConfig, p)
	}
	key, err := s.bindingKey(p)
	if err != nil {
		return fmt.Errorf("services: add pattern %s: %w", p, err)
	}
	ctx, cancel := context.WithTimeout(s.closing, s.cfg.timeout)
	defer cancel()
	if err := s.lock(ctx); err != nil {
		if s.state.Load() == stateClosed {
			return ErrClosed
		}
		return fmt.Errorf("services: add pattern %s: %w", p, err)
	}
	defer s.unlock()
	switch s.state.Load() {
	case stateClosed:
		return ErrClosed
	case stateRunning:
		if err := s.serveLocked(ctx, []string{key}); err != nil {
			return fmt.Errorf("services: add pattern %s: %w", p, err)
		}
	}
	s.mu.Lock()
	canon := p.String()
	snap := s.snap.Load()
	a := &action{svc: s, pattern: p, canon: canon, handler: h}
	for _, o := range opts {
		if o != nil {
			o(a)
		}
	}
	if old, ok := snap.exact[canon]; ok {
		a.prior = old
		for i, l := range s.locals {
			if l == old {
				s.locals[i] = a
			}
		}
	} else {
		if prior, ok := snap.local.FindPattern(p); ok {
			a.prior = prior
		}
		s.locals = append(s.locals, a)
	}
	s.rebuildLocked()
	s.mu.Unlock()
	if s.state.Load() == stateRunning {
		if err := s.announce(ctx); err != nil {
			return fmt.Errorf("services: announce pattern %s: %w", p, err)
		}
	}
	return nil
}

// Ready starts the service on the broker, if it has not started yet, and
// returns once it takes part in the catalog: the exchanges are declared, the
// service version's queue is bound with its patterns and consumed, and the
// instance has announced itself and asked the others to announce. It
// returns the same error every time if the start failed, and ErrClosed after
// Close. Act and WaitFor call it.
func (s *Service) Ready(ctx context.Context) error {
	switch s.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	if err := s.lock(ctx); err != nil {
		if s.state.Load() == stateClosed {
			return ErrClosed
		}
		return fmt.Errorf("services: start %s@%s: %w", s.name, s.version, err)
	}
	defer s.unlock()
	switch s.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return ErrClosed
	case stateFailed:
		return s.err
	}
	// What starts here (consumers, loops) lives as long as the service:
	// it gets ctx's deadline and cancellation for the start, not ctx's
	// values (those of the first act or request that started it).
	if err := s.startLocked(detached{ctx}); err != nil {
		s.undoStart()
		err = fmt.Errorf("services: start %s@%s: %w", s.name, s.version, err)
		if ctx.Err() != nil || s.closing.Err() != nil {
			// Cut short by its context: the next Ready tries again.
			return err
		}
		s.err = err
		if !s.state.CompareAndSwap(stateNew, stateFailed) {
			return ErrClosed
		}
		return s.err
	}
	if !s.state.CompareAndSwap(stateNew, stateRunning) {
		return ErrClosed
	}
	s.log.Debug("services: started", "service", s.name, "version", s.version, "instance", s.instance)
	return nil
}

func (s *Service) startLocked(ctx context.Context) error {
	if err := s.broker.DeclareExchange(ctx, bus.Exchange{Name: s.cfg.actExchange, Kind: bus.Topic, Durable: true}); err != nil {
		return err
	}
	if err := s.broker.DeclareExchange(ctx, bus.Exchange{Name: s.cfg.registry, Kind: bus.Fanout, Durable: true}); err != nil {
		return err
	}
	copts := []rpc.Option{rpc.WithLogger(s.log), rpc.WithTimeout(s.cfg.timeout), rpc.WithMaxMessageSize(s.cfg.maxMessageSize)}
	if s.cfg.directReply {
		copts = append(copts, rpc.WithDirectReplyTo())
	}
	client, err := rpc.NewClient(ctx, s.broker, copts...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.client = client
	locals := append([]*action(nil), s.locals...)
	s.mu.Unlock()
	if len(locals) > 0 {
		keys, err := s.bindingKeys(locals)
		if err != nil {
			return err
		}
		if err := s.serveLocked(ctx, keys); err != nil {
			return err
		}
	}
	if err := s.joinCatalog(ctx); err != nil {
		return err
	}
	return nil
}

// bindingKeys returns the act queue's routing keys for actions.
func (s *Service) bindingKeys(actions []*action) ([]string, error) {
	keys := make([]string, 0, len(actions))
	for _, a := range actions {
		k, err := s.bindingKey(a.pattern)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// serveLocked makes sure the act queue exists, is bound with keys and is
// consumed by the rpc server.
func (s *Service) serveLocked(ctx context.Context, keys []string) error {
	q := s.queueName()
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	if srv == nil {
		if _, err := s.broker.DeclareQueue(ctx, bus.Queue{Name: q, Durable: true, Expires: s.cfg.queueExpires}); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := s.broker.Bind(ctx, bus.Binding{Exchange: s.cfg.actExchange, Queue: q, Key: k}); err != nil {
			return err
		}
	}
	if srv != nil {
		return nil
	}
	sopts := []rpc.Option{rpc.WithLogger(s.log), rpc.WithPrefetch(s.cfg.prefetch),
		rpc.WithService(s.name, s.version), rpc.WithMaxMessageSize(s.cfg.maxMessageSize),
		rpc.WithMiddleware(s.cfg.middleware...)}
	if s.cfg.confirmReplies {
		sopts = append(sopts, rpc.WithConfirmedReplies())
	}
	srv, err := rpc.NewServer(s.broker, q, rpc.HandlerFunc(s.serveRPC), sopts...)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		_ = srv.Close()
		return err
	}
	s.mu.Lock()
	if s.closing.Err() != nil {
		// Close began and may have looked for the server already.
		s.mu.Unlock()
		_ = srv.Close()
		return ErrClosed
	}
	s.server = srv
	s.mu.Unlock()
	s.wg.Add(1)
	go s.watchServer(srv)
	return nil
}

// watchServer declares the act queue again, with its bindings, and serves
// it with a new rpc server when srv's consumer ends because the queue was
// deleted (by an operator, a policy, another program): an instance whose
// queue is gone would stay in the catalog and answer nothing. Meanwhile
// acts routed to it fail at once with the no-route error.
func (s *Service) watchServer(srv *rpc.Server) {
	defer s.wg.Done()
	select {
	case <-srv.Done():
	case <-s.closing.Done():
		return
	}
	if err := srv.Err(); !errors.Is(err, bus.ErrNotFound) {
		return // stopped by the service, or the broker closed
	}
	s.log.Warn("services: act queue deleted, declaring it again", "service", s.name,
		"version", s.version, "queue", s.queueName())
	for attempt := 1; ; attempt++ {
		err := s.serveAgain(srv)
		if err == nil || errors.Is(err, bus.ErrClosed) || s.closing.Err() != nil {
			return
		}
		s.log.Warn("services: serving the act queue again failed", "service", s.name,
			"version", s.version, "attempt", attempt, "err", err)
		t := time.NewTimer(min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second))
		select {
		case <-t.C:
		case <-s.closing.Done():
			t.Stop()
			return
		}
	}
}

// serveAgain replaces the ended server old with a new one on a queue
// declared again.
func (s *Service) serveAgain(old *rpc.Server) error {
	_ = old.Close()
	ctx, cancel := context.WithTimeout(s.closing, s.cfg.timeout)
	defer cancel()
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if s.state.Load() != stateRunning {
		return nil // closed, or the start failed
	}
	s.mu.Lock()
	if s.server == old {
		s.server = nil
	}
	locals := append([]*action(nil), s.locals...)
	s.mu.Unlock()
	keys, err := s.bindingKeys(locals)
	if err != nil {
		return err
	}
	return s.serveLocked(ctx, keys)
}

// detached is a context with the deadline, cancellation and error of the
// one it wraps but none of its values: its Err is exactly the wrapped
// one's (DeadlineExceeded at the deadline), where a copy of the deadline
// on a fresh context could race the wrapped one's cancellation and report
// Canceled instead.
type detached struct{ context.Context }

func (detached) Value(any) any { return nil }

// undoStart stops what a failed start started, so that the service does
// not go on half started (serving acts, announcing itself) while its own
// Ready fails, and can start again.
func (s *Service) undoStart() {
	s.deregister(context.Background())
	s.mu.Lock()
	srv, client, reg, cancel := s.server, s.client, s.reg, s.bgCancel
	s.server, s.client, s.reg, s.bgCancel = nil, nil, nil, nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	if cancel != nil {
		cancel()
	}
	if reg != nil {
		_ = reg.Close()
	}
	s.wg.Wait()
	if client != nil {
		_ = client.Close()
	}
	s.mu.Lock()
	if _, ok := s.cat.instances[s.instance]; ok {
		delete(s.cat.instances, s.instance)
		s.rebuildLocked()
	}
	s.mu.Unlock()
}

// stopHeartbeat ends the heartbeat loop (and the health watchers): a
// service that stops announces itself no more.
func (s *Service) stopHeartbeat() {
	s.mu.Lock()
	cancel := s.bgCancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Shutdown stops the service gracefully: it leaves the catalog (callers
// stop routing to it), stops taking requests, waits for the requests in
// flight to be answered, then closes as Close does. If ctx ends first it
// closes at once (unanswered requests go back to the queue for another
// instance) and returns ctx.Err().
func (s *Service) Shutdown(ctx context.Context) error {
	if s.state.Load() == stateRunning {
		s.deregister(ctx)
		s.stopHeartbeat() // a heartbeat stuck on an away broker must not hold up the leave
		s.leave(ctx)
	}
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	if cerr := s.close(ctx); err == nil {
		err = cerr
	}
	return err
}

// Close stops the service at once: it leaves the catalog, stops consuming
// (requests not yet answered go back to the queue, for another instance),
// closes its plugins in the reverse order of Use, and closes the broker if
// the service owns it. Acts after Close fail with ErrClosed. Close is
// idempotent.
func (s *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.timeout)
	defer cancel()
	return s.close(ctx)
}

func (s *Service) close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		// Make a start or an Add in progress give up, and wait for it,
		// but not forever.
		s.stopAll()
		locked := s.lock(ctx) == nil
		wasRunning := s.state.Load() == stateRunning
		s.state.Store(stateClosed)
		if locked {
			s.unlock()
		}
		s.deregister(ctx)
		if wasRunning {
			s.stopHeartbeat()
			s.leave(ctx)
		}
		var errs []error
		s.mu.Lock()
		srv, client, reg, cancel := s.server, s.client, s.reg, s.bgCancel
		s.mu.Unlock()
		if srv != nil {
			if err := srv.Close(); err != nil && !errors.Is(err, rpc.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if cancel != nil {
			cancel()
		}
		if reg != nil {
			_ = reg.Close()
		}
		s.wg.Wait()
		s.closeConsul()
		if client != nil {
			if err := client.Close(); err != nil && !errors.Is(err, rpc.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if err := s.closePlugins(ctx); err != nil {
			errs = append(errs, err)
		}
		if s.owns {
			if err := s.broker.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.runner.stop()
		s.discoverUntil.Store(0)
		s.mu.Lock()
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("services: close %s@%s: %w", s.name, s.version, errors.Join(errs...))
		}
	})
	return s.closeErr
}

// parsePattern parses a pattern; failures wrap patterns.ErrInvalidPattern.
func parsePattern(pattern string) (patterns.Pattern, error) {
	p, err := patterns.Parse(pattern)
	if err != nil {
		if errors.Is(err, patterns.ErrInvalidPattern) {
			return p, fmt.Errorf("services: %w", err)
		}
		return p, fmt.Errorf("services: %w: %w", patterns.ErrInvalidPattern, err)
	}
	return p, nil
}

func txOf(ctx context.Context) string { return wire.Tx(ctx) }

// parsedPattern is a parsed pattern with its pairs, as Act uses them.
type parsedPattern struct {
	p      patterns.Pattern
	pairs  []patterns.Pair
	values []any // the pairs' Pair.JSON, made once: each would cost an allocation per act
}

// patternCache remembers the patterns Act has parsed, up to
// maxCachedPatterns of them (after that, further ones are parsed each
// time), so that an act on a literal pattern does not parse it again.
type patternCache struct {
	mu sync.RWMutex
	m  map[string]*parsedPattern
}

const maxCachedPatterns = 1024

func (c *patternCache) get(pattern string) (*parsedPattern, error) {
	c.mu.RLock()
	pp, ok := c.m[pattern]
	c.mu.RUnlock()
	if ok {
		return pp, nil
	}
	p, err := parsePattern(pattern)
	if err != nil {
		return nil, err
	}
	pp = &parsedPattern{p: p, pairs: p.Pairs()}
	pp.values = make([]any, len(pp.pairs))
	for i, pr := range pp.pairs {
		pp.values[i] = pr.JSON()
	}
	c.mu.Lock()
	if len(c.m) < maxCachedPatterns {
		c.m[pattern] = pp
	}
	c.mu.Unlock()
	return pp, nil
}
