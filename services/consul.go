package services

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patbus/patbus/bus"
)

// Consul's health states, as the instances' TTL checks report them.
const (
	HealthPassing  = api.HealthPassing
	HealthWarning  = api.HealthWarning
	HealthCritical = api.HealthCritical
)

// Defaults of the Consul options.
const (
	// DefaultHealthTTL is the TTL of an instance's check in Consul: an
	// instance that stops updating it (killed, hung) turns critical
	// within it. The instance updates it three times per TTL.
	DefaultHealthTTL = 10 * time.Second
	// DefaultDeregisterAfter is how long an instance may stay critical
	// before Consul removes it by itself; Consul's minimum is a minute.
	DefaultDeregisterAfter = time.Minute
)

// consulCallTimeout bounds every single call to Consul but the blocking
// health queries: nothing in a service waits longer on Consul.
const consulCallTimeout = 2 * time.Second

// consulWait bounds one blocking health query; a change answers at once.
const consulWait = 30 * time.Second

// newConsul makes the Consul client for WithConsul: addr, or the standard
// CONSUL_HTTP_ADDR (and the other CONSUL_* variables) when addr is "". It
// returns the client's transport too, for closeConsul.
func newConsul(addr string) (*api.Client, *http.Transport, error) {
	cfg := api.DefaultConfig()
	if addr != "" {
		cfg.Address = addr
	}
	if err := checkConsulAddr(cfg.Address); err != nil {
		return nil, nil, err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("consul at %q: %w", cfg.Address, err)
	}
	return c, cfg.Transport, nil
}

// closeConsul closes the idle connections of the Consul client, which its
// pooled transport would otherwise keep open for a minute and a half
// after the service is gone.
func (s *Service) closeConsul() {
	if s.consulTransport != nil {
		s.consulTransport.CloseIdleConnections()
	}
}

// checkConsulAddr refuses an address that cannot name an agent:
// host:port, or a URL with the http, https or unix scheme.
func checkConsulAddr(addr string) error {
	u := addr
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fmt.Errorf("consul address %q: %w", addr, err)
	case p.Scheme == "unix":
		if p.Path == "" && p.Host == "" {
			return fmt.Errorf("consul address %q: no socket path", addr)
		}
	case p.Scheme != "http" && p.Scheme != "https":
		return fmt.Errorf("consul address %q: scheme %q is not http, https or unix", addr, p.Scheme)
	case p.Hostname() == "":
		return fmt.Errorf("consul address %q: no host", addr)
	}
	return nil
}

// checkID names the instance's TTL check in Consul.
func (s *Service) checkID() string { return "patbus:" + s.instance }

// healthNow is the instance's own state, as its Consul check reports it:
// critical while its broker connection is down or its act consumer has
// stopped, passing otherwise.
func (s *Service) healthNow() (status, note string) {
	if c, ok := s.broker.(bus.Connectivity); ok && !c.Connected() {
		return HealthCritical, "broker connection down"
	}
	s.mu.Lock()
	srv := s.server
	s.mu.Unlock()
	if srv != nil {
		select {
		case <-srv.Done():
			return HealthCritical, "act consumer stopped"
		default:
		}
	}
	return HealthPassing, "serving"
}

// register registers the instance in Consul, with its version in the meta
// and a tag, its act queue in the meta, and a TTL check in its current
// state.
func (s *Service) register(ctx context.Context) error {
	status, note := s.healthNow()
	reg := &api.AgentServiceRegistration{
		ID:   s.instance,
		Name: s.name,
		Tags: []string{"patbus", "v" + s.version},
		Meta: map[string]string{"version": s.version, "queue": s.queueName(), "instance": s.instance},
		Check: &api.AgentServiceCheck{
			CheckID:                        s.checkID(),
			Name:                           "patbus instance " + s.instance,
			TTL:                            s.cfg.healthTTL.String(),
			DeregisterCriticalServiceAfter: s.cfg.deregisterAfter.String(),
			Status:                         status,
			Notes:                          "passing while the instance's broker connection is up and it serves its act queue",
		},
	}
	ctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
	defer cancel()
	if err := s.consul.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)); err != nil {
		return err
	}
	s.log.Debug("services: registered in consul", "service", s.name, "version", s.version, "instance", s.instance, "status", status, "note", note)
	return nil
}

// consulLoop keeps the instance registered and its check updated from its
// real state until ctx ends. When Consul is down or refuses, the service
// runs on: it retries in the background and says so once per cause.
func (s *Service) consulLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	every := min(max(s.cfg.healthTTL/3, 100*time.Millisecond), 5*time.Second)
	registered := false
	var lastErr string
	fail := func(what string, err error) {
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			s.log.Warn("services: consul "+what+" failed; retrying", "service", s.name, "instance", s.instance, "err", err)
		}
	}
	for {
		if !registered {
			if err := s.register(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				fail("registration", err)
			} else {
				registered = true
				if lastErr != "" {
					s.log.Info("services: registered in consul again", "service", s.name, "instance", s.instance)
				}
				lastErr = ""
			}
		} else {
			status, note := s.healthNow()
			cctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
			err := s.consul.Agent().UpdateTTLOpts(s.checkID(), note, status, (&api.QueryOptions{}).WithContext(cctx))
			cancel()
			if err != nil && ctx.Err() == nil {
				// An agent that restarted, or removed the instance, no
				// longer knows the check: register again.
				fail("health update", err)
				registered = false
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// startConsul registers the instance and keeps its check, when the
// service has Consul and something to serve.
func (s *Service) startConsul() {
	if s.consul == nil || s.quiet {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.mu.Lock()
	s.consulCancel, s.consulDone = cancel, done
	s.mu.Unlock()
	go s.consulLoop(ctx, done)
}

// deregister stops the check's updates and removes the instance from
// Consul, first thing when the service stops; bounded by ctx and a short
// timeout, so that a Consul that is away never holds up a stop (Consul
// then removes the instance itself once its check has been critical for
// the deregister-after time).
func (s *Service) deregister(ctx context.Context) {
	s.mu.Lock()
	cancel, done := s.consulCancel, s.consulDone
	s.consulCancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), consulCallTimeout)
	defer stop()
	if err := s.consul.Agent().ServiceDeregisterOpts(s.instance, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		s.log.Warn("services: consul deregistration failed; consul removes the instance once its check has been critical long enough",
			"service", s.name, "instance", s.instance, "err", err)
		return
	}
	s.log.Debug("services: deregistered from consul", "service", s.name, "instance", s.instance)
}

// healthFilter selects, in Consul, the checks the health watch needs:
// every check of a patbus instance (registered with the tag "patbus",
// whatever checks an operator added to it) and the node checks, which
// count for every service on their node.
const healthFilter = `"patbus" in ServiceTags or ServiceID == ""`

// watchHealth follows the health of every patbus instance in Consul with
// one blocking query (it answers as soon as a check changes) until ctx
// ends, and routes by it. One query per instance, whatever the number of
// services it hears of: a query per service watched made N services on
// one host hold N² connections to their agent, past Consul's limit per
// client address (http_max_conns_per_client, 200). While Consul is
// unreachable the last known health stays in force; that is logged once,
// and once when Consul answers again.
func (s *Service) watchHealth(ctx context.Context) {
	defer s.wg.Done()
	var index uint64
	failing := false
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: consulWait, Filter: healthFilter}).WithContext(ctx)
		checks, meta, err := s.consul.Health().State(api.HealthAny, q)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				failing = true
				s.log.Warn("services: consul unreachable; routing on the last known health", "service", s.name, "err", err)
				s.setHealthStale(true)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if failing {
			failing = false
			s.log.Info("services: consul answers again", "service", s.name)
			s.setHealthStale(false)
		}
		// Consul's rule for blocking queries: an index that goes back
		// starts the wait over.
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		s.setHealth(instanceStates(checks))
	}
}

// instanceStates turns checks into each instance's status (instance id to
// Consul status): the worst of its own checks and its node's, as Consul's
// health endpoint for one service aggregates them.
func instanceStates(checks api.HealthChecks) map[string]string {
	type inst struct{ node, id string }
	nodes := map[string]api.HealthChecks{}
	own := map[inst]api.HealthChecks{}
	for _, c := range checks {
		if c.ServiceID == "" {
			nodes[c.Node] = append(nodes[c.Node], c)
		} else {
			k := inst{c.Node, c.ServiceID}
			own[k] = append(own[k], c)
		}
	}
	out := make(map[string]string, len(own))
	for k, cs := range own {
		out[k.id] = append(cs, nodes[k.node]...).AggregatedStatus()
	}
	return out
}

// setHealth records the states Consul gave and routes by them.
func (s *Service) setHealth(states map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := !s.healthHeard || len(s.health) != len(states)
	for id, st := range states {
		if s.health[id] != st {
			changed = true
		}
	}
	s.health, s.healthHeard = states, true
	if changed {
		s.rebuildLocked()
	}
}

func (s *Service) setHealthStale(stale bool) {
	s.mu.Lock()
	s.healthStale = stale
	s.mu.Unlock()
}

// healthOfLocked returns an instance's status in Consul, "" when Consul
// does not track it (or the service has no Consul). The caller holds s.mu.
func (s *Service) healthOfLocked(in *instanceInfo) string {
	if s.consul == nil || !in.consul {
		return ""
	}
	return s.health[in.id]
}

// watchLocked starts the health watch, once, when the service has Consul
// and hears of an instance that Consul tracks. The caller holds s.mu.
func (s *Service) watchLocked() {
	if s.consul == nil || s.watchCtx == nil || s.watching {
		return
	}
	s.watching = true
	s.wg.Add(1)
	go s.watchHealth(s.watchCtx)
}

// errUnhealthy explains a route that exists but has no healthy version.
var errUnhealthy = errors.New("every version that serves it is critical in consul")
