package services

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
)

// catalog is what the registry has told this instance: every live
// instance of every service, this one included.
type catalog struct {
	instances map[string]*instanceInfo
	seq       uint64
	order     map[string]uint64 // canonical pattern -> when first seen
}

type instanceInfo struct {
	id, service, version string
	ver                  version
	queue                string // its act queue, as announced
	patterns             []patterns.Pattern
	canon                []string
	heartbeat            time.Duration
	lastSeen             time.Time
	self                 bool
	consul               bool            // registered in Consul under its id
	idempotent           map[string]bool // canonical patterns whose acts may be sent again
}

func newCatalog() catalog {
	return catalog{instances: map[string]*instanceInfo{}, order: map[string]uint64{}}
}

func (c *catalog) seen(canon string) uint64 {
	if n, ok := c.order[canon]; ok {
		return n
	}
	c.seq++
	c.order[canon] = c.seq
	return c.seq
}

// Kinds of registry messages.
const (
	regAnnounce = "announce"
	regDiscover = "discover"
	regLeave    = "leave"
)

// registryMessage is the JSON body of every message on the registry
// exchange (documented in the package doc).
type registryMessage struct {
	Type        string   `json:"type"`
	Service     string   `json:"service"`
	Version     string   `json:"version"`
	Instance    string   `json:"instance"`
	Patterns    []string `json:"patterns,omitempty"`
	Queue       string   `json:"queue,omitempty"`
	HeartbeatMS int64    `json:"heartbeat_ms,omitempty"`
	// Consul says the instance is registered in Consul under its
	// instance id, so that callers that watch Consul route by its health.
	Consul bool `json:"consul,omitempty"`
	// Idempotent lists the patterns whose actions may run twice for one
	// act (services.Idempotent): a caller sends such an act again when it
	// was interrupted.
	Idempotent []string `json:"idempotent,omitempty"`
}

// joinCatalog declares the instance's registry queue, starts consuming it,
// announces the instance and asks every other to announce.
func (s *Service) joinCatalog(ctx context.Context) error {
	q := s.cfg.registry + "." + s.instance
	if _, err := s.broker.DeclareQueue(ctx, bus.Queue{Name: q, Exclusive: true, AutoDelete: true}); err != nil {
		return err
	}
	if err := s.broker.Bind(ctx, bus.Binding{Exchange: s.cfg.registry, Queue: q}); err != nil {
		return err
	}
	reg, err := engine.Start(ctx, s.broker, engine.Config{
		Kind:        patbus.KindCatalog,
		Queue:       q,
		Consume:     bus.ConsumeOptions{Exclusive: true},
		Prefetch:    bus.DefaultPrefetch,
		Concurrency: 1, // in order: an announce and the leave after it
		Handler: patbus.HandlerFunc(func(_ context.Context, m *patbus.Message) error {
			s.handleRegistry(m.Body)
			return nil
		}),
		Settle: func(_ context.Context, d *bus.Delivery, _ *patbus.Message, _ error) { _ = d.Ack() },
		Logger: s.log,
		Name:   "catalog",
	})
	if err != nil {
		return err
	}
	bg, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.reg, s.bgCancel, s.watchCtx = reg, cancel, bg
	s.mu.Unlock()
	s.startConsul()
	s.wg.Add(1)
	go s.heartbeatLoop(bg)
	s.startDiscovery()
	if err := s.announce(ctx); err != nil {
		return err
	}
	return s.publishRegistry(ctx, registryMessage{Type: regDiscover, Service: s.name, Version: s.version, Instance: s.instance})
}

// announce records this instance's patterns in its own catalog and
// publishes them.
func (s *Service) announce(ctx context.Context) error {
	s.mu.Lock()
	if s.quiet && len(s.locals) == 0 {
		s.mu.Unlock()
		return nil
	}
	canon := make([]string, len(s.locals))
	pats := make([]patterns.Pattern, len(s.locals))
	var idem []string
	for i, a := range s.locals {
		canon[i], pats[i] = a.canon, a.pattern
		if a.idempotent {
			idem = append(idem, a.canon)
		}
	}
	self := &instanceInfo{id: s.instance, service: s.name, version: s.version, ver: s.ver,
		queue: s.queueName(), patterns: pats, canon: canon, heartbeat: s.cfg.heartbeat, lastSeen: time.Now(), self: true,
		consul: s.consul != nil}
	for _, c := range idem {
		if self.idempotent == nil {
			self.idempotent = map[string]bool{}
		}
		self.idempotent[c] = true
	}
	s.upsertLocked(self)
	s.mu.Unlock()
	s.annMu.Lock()
	defer s.annMu.Unlock()
	if s.left.Load() {
		return nil
	}
	return s.publishRegistry(ctx, registryMessage{Type: regAnnounce, Service: s.name, Version: s.version,
		Instance: s.instance, Patterns: canon, Queue: s.queueName(), HeartbeatMS: s.cfg.heartbeat.Milliseconds(),
		Consul: s.consul != nil, Idempotent: idem})
}

func (s *Service) publishRegistry(ctx context.Context, m registryMessage) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return bus.PublishAndWait(ctx, s.broker, s.cfg.registry, "", bus.Message{
		ContentType: wire.ContentTypeJSON,
		Headers:     map[string]any{wire.HeaderService: s.name, wire.HeaderVersion: s.version},
		Body:        body,
	})
}

// leave tells the others this instance is gone and forgets it locally.
func (s *Service) leave(ctx context.Context) {
	s.annMu.Lock()
	defer s.annMu.Unlock()
	if !s.left.CompareAndSwap(false, true) {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.publishRegistry(lctx, registryMessage{Type: regLeave, Service: s.name, Version: s.version, Instance: s.instance}); err != nil {
		s.log.Warn("services: could not announce leave", "service", s.name, "instance", s.instance, "error", err)
	}
}

// upsertLocked records an instance and rebuilds the snapshot if what it
// serves changed.
func (s *Service) upsertLocked(in *instanceInfo) {
	old, ok := s.cat.instances[in.id]
	s.cat.instances[in.id] = in
	if ok && old.service == in.service && old.version == in.version && old.queue == in.queue && slices.Equal(old.canon, in.canon) &&
		old.consul == in.consul && maps.Equal(old.idempotent, in.idempotent) {
		return
	}
	s.rebuildLocked()
}

func (s *Service) handleRegistry(body []byte) {
	var m registryMessage
	if err := json.Unmarshal(body, &m); err != nil || m.Instance == "" {
		s.log.Debug("services: ignoring bad registry message", "service", s.name)
		return
	}
	switch m.Type {
	case regDiscover:
		if m.Instance != s.instance {
			select {
			case s.announceNow <- struct{}{}:
			default:
			}
		}
	case regLeave:
		if m.Instance == s.instance {
			return
		}
		s.mu.Lock()
		if _, ok := s.cat.instances[m.Instance]; ok {
			delete(s.cat.instances, m.Instance)
			s.rebuildLocked()
		}
		s.mu.Unlock()
	case regAnnounce:
		if m.Instance == s.instance {
			return // recorded when it was sent
		}
		ver, err := parseSemver(m.Version)
		if err != nil || !validName(m.Service) {
			s.log.Debug("services: ignoring announce with bad name or version", "from", m.Instance)
			return
		}
		in := &instanceInfo{id: m.Instance, service: m.Service, version: m.Version, ver: ver, queue: m.Queue,
			heartbeat: time.Duration(m.HeartbeatMS) * time.Millisecond, lastSeen: time.Now(), consul: m.Consul}
		if in.heartbeat <= 0 {
			in.heartbeat = DefaultHeartbeat
		}
		for _, c := range m.Patterns {
			p, err := patterns.Parse(c)
			if err != nil {
				continue
			}
			in.patterns = append(in.patterns, p)
			in.canon = append(in.canon, p.String())
		}
		for _, c := range m.Idempotent {
			if p, err := patterns.Parse(c); err == nil {
				if in.idempotent == nil {
					in.idempotent = map[string]bool{}
				}
				in.idempotent[p.String()] = true
			}
		}
		s.mu.Lock()
		if in.consul {
			s.watchLocked()
		}
		s.upsertLocked(in)
		s.mu.Unlock()
	}
}

func (s *Service) heartbeatLoop(ctx context.Context) {
	defer s.wg.Done()
	beat := time.NewTicker(s.cfg.heartbeat)
	defer beat.Stop()
	every := s.cfg.heartbeat / 4
	if every > time.Second {
		every = time.Second
	}
	if every < 5*time.Millisecond {
		every = 5 * time.Millisecond
	}
	reap := time.NewTicker(every)
	defer reap.Stop()
	send := func() {
		actx, cancel := context.WithTimeout(ctx, s.cfg.heartbeat+time.Second)
		defer cancel()
		if err := s.announce(actx); err != nil && ctx.Err() == nil {
			s.log.Warn("services: heartbeat failed", "service", s.name, "instance", s.instance, "error", err)
		}
	}
	conn, _ := s.broker.(bus.Connectivity)
	cutOff := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			send()
		case <-s.announceNow:
			send()
		case now := <-reap.C:
			if conn != nil && !conn.Connected() {
				// Cut off from the broker: the silence of the others
				// says nothing about them now.
				cutOff = true
				continue
			}
			if cutOff {
				cutOff = false
				s.rediscover(ctx, now)
			}
			s.reap(now)
		}
	}
}

// rediscover runs after the instance was cut off from the broker: every
// instance it knew gets a fresh grace of MissedHeartbeats of its
// heartbeats, a discover asks them all to announce, and a new discovery
// round makes acts that find no route wait for the answers.
func (s *Service) rediscover(ctx context.Context, now time.Time) {
	s.mu.Lock()
	for _, in := range s.cat.instances {
		if !in.self && in.lastSeen.Before(now) {
			in.lastSeen = now
		}
	}
	s.mu.Unlock()
	s.startDiscovery()
	s.log.Info("services: back on the broker; discovering the catalog again", "service", s.name, "instance", s.instance)
	dctx, cancel := context.WithTimeout(ctx, s.cfg.heartbeat+time.Second)
	defer cancel()
	if err := s.publishRegistry(dctx, registryMessage{Type: regDiscover, Service: s.name, Version: s.version, Instance: s.instance}); err != nil && ctx.Err() == nil {
		s.log.Warn("services: discover failed", "service", s.name, "instance", s.instance, "error", err)
	}
	if err := s.announce(dctx); err != nil && ctx.Err() == nil {
		s.log.Warn("services: announce failed", "service", s.name, "instance", s.instance, "error", err)
	}
}

// reap drops the instances that missed MissedHeartbeats heartbeats.
func (s *Service) reap(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped := false
	for id, in := range s.cat.instances {
		if in.self {
			continue
		}
		if now.Sub(in.lastSeen) > MissedHeartbeats*in.heartbeat {
			delete(s.cat.instances, id)
			dropped = true
			s.log.Debug("services: instance expired", "service", s.name, "instance", id, "of", in.service+"@"+in.version)
		}
	}
	if dropped {
		s.rebuildLocked()
	}
}

// WaitFor starts the service (Ready) and waits until it can route pattern:
// a local action or a live remote service matches it (with its $$target and
// $$version pins). It is for callers that start before the services they
// call; it returns ctx's error, wrapped, if ctx ends first.
//
// A service made without WithBroker has a private in-memory broker that
// no other service can reach: WaitFor for a pattern it does not serve
// itself fails at once with an error wrapping ErrNoRoute that says so,
// instead of waiting for a service that can never come.
func (s *Service) WaitFor(ctx context.Context, pattern string) error {
	p, err := parsePattern(pattern)
	if err != nil {
		return err
	}
	if err := s.Ready(ctx); err != nil {
		return err
	}
	msg := make(map[string]any, p.Len())
	for _, pr := range p.Pairs() {
		msg[pr.Key] = pr.JSON()
	}
	if s.owns {
		if _, ok := s.resolve(s.snap.Load(), msg); !ok {
			return fmt.Errorf("services: wait for pattern %s: %w: %s@%s was made without WithBroker, so it has a private in-memory broker that no other service can reach; give the services of one program the same broker (bus.Open or bus.NewMemory)",
				p, ErrNoRoute, s.name, s.version)
		}
		return nil
	}
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if s.state.Load() == stateClosed {
			return ErrClosed
		}
		if _, ok := s.resolve(s.snap.Load(), msg); ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("services: wait for pattern %s: %w", p, ctx.Err())
		}
	}
}

// CatalogEntry describes one service version in the catalog.
type CatalogEntry struct {
	Service   string
	Version   string
	Instances []Instance // sorted by id
	Patterns  []string   // canonical patterns, sorted
	// Health is the version's health in Consul, for a caller made with
	// WithConsul: HealthPassing when an instance passes, else
	// HealthWarning, else HealthCritical (not routed to); "" when Consul
	// does not track the version or this service does not watch it.
	Health string
	// HealthStale is set while Consul is unreachable: Health is the last
	// known.
	HealthStale bool
}

// Instance is one live instance of a service version.
type Instance struct {
	ID string
	// LastSeen is when its last announcement was heard (for this
	// instance itself: when it last announced).
	LastSeen time.Time
	// Health is its status in Consul, "" when Consul does not track it.
	Health string
}

// healthRank orders Consul states for a version's health: the best of its
// instances.
var healthRank = map[string]int{"": 0, HealthCritical: 1, HealthWarning: 2, HealthPassing: 3}

// Catalog returns what the service knows of the catalog: every service
// version with a live instance, itself included, sorted by name then
// version (newest first).
func (s *Service) Catalog() []CatalogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	type acc struct {
		e    CatalogEntry
		ver  version
		pats map[string]bool
	}
	by := map[string]*acc{}
	for _, in := range s.cat.instances {
		k := in.service + "@" + in.version
		a, ok := by[k]
		if !ok {
			a = &acc{e: CatalogEntry{Service: in.service, Version: in.version}, ver: in.ver, pats: map[string]bool{}}
			by[k] = a
		}
		h := s.healthOfLocked(in)
		a.e.Instances = append(a.e.Instances, Instance{ID: in.id, LastSeen: in.lastSeen, Health: h})
		if healthRank[h] > healthRank[a.e.Health] {
			a.e.Health = h
		}
		if s.healthStale && in.consul {
			a.e.HealthStale = true
		}
		for _, c := range in.canon {
			a.pats[c] = true
		}
	}
	out := make([]CatalogEntry, 0, len(by))
	vers := map[string]version{}
	for k, a := range by {
		for c := range a.pats {
			a.e.Patterns = append(a.e.Patterns, c)
		}
		sort.Strings(a.e.Patterns)
		sort.Slice(a.e.Instances, func(i, j int) bool { return a.e.Instances[i].ID < a.e.Instances[j].ID })
		out = append(out, a.e)
		vers[k] = a.ver
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return vers[out[i].Service+"@"+out[i].Version].compare(vers[out[j].Service+"@"+out[j].Version]) > 0
	})
	return out
}

// discoveryWindow is how long a new instance waits for the answers to its
// first discover before an act may conclude that nobody serves a pattern:
// a tenth of its heartbeat, between 50ms and 1s (500ms by default).
func (s *Service) discoveryWindow() time.Duration {
	return min(max(s.cfg.heartbeat/10, 50*time.Millisecond), time.Second)
}

// startDiscovery starts a discovery round: it ends at once on a private
// broker (nobody else can answer), after the discovery window otherwise.
func (s *Service) startDiscovery() {
	if s.owns {
		return
	}
	s.discoverUntil.Store(time.Now().Add(s.discoveryWindow()).UnixNano())
}

// routeAfterDiscovery resolves msg, and while a discovery round is on,
// waits for the catalog to change (or the round to end, or ctx) before it
// concludes that nothing serves msg: an act made right after Ready, or
// right after a reconnect, must not fail because the answers to the
// instance's discover have not arrived yet.
func (s *Service) routeAfterDiscovery(ctx context.Context, msg map[string]any) (resolution, bool) {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if res, ok := s.resolve(s.snap.Load(), msg); ok {
			return res, true
		}
		left := time.Until(time.Unix(0, s.discoverUntil.Load()))
		if left <= 0 {
			return resolution{}, false
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return resolution{}, false
		}
		t.Stop()
	}
}
