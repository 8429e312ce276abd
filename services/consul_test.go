package services_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

// consulClient talks to the agent at addr.
func consulClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// consulEntries returns the instances of name that Consul lists, by id.
func consulEntries(t *testing.T, c *api.Client, name string) map[string]*api.ServiceEntry {
	t.Helper()
	entries, _, err := c.Health().Service(name, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*api.ServiceEntry{}
	for _, e := range entries {
		out[e.Service.ID] = e
	}
	return out
}

// An instance registers with its version and act queue and a passing
// check; Shutdown deregisters it before it stops serving.
func TestConsulRegistration(t *testing.T) {
	agent := testenv.StartConsulAgent(t)
	consul := consulClient(t, agent.Addr())
	e := newRabbitEnv(t)
	name := e.name("reg")
	started, release := make(chan struct{}), make(chan struct{})
	svc := e.svc(name, "1.2.0", func(s *services.Service) {
		_ = s.Add("cmd:slow", services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
			close(started)
			<-release
			return "ok", nil
		}))
	}, services.WithConsul(agent.Addr()), services.WithHealthTTL(time.Second))
	eventuallyWithin(t, 10*time.Second, "registered and passing", func() bool {
		en := consulEntries(t, consul, name)[svc.Instance()]
		return en != nil && en.Checks.AggregatedStatus() == api.HealthPassing
	})
	en := consulEntries(t, consul, name)[svc.Instance()]
	if en.Service.Meta["version"] != "1.2.0" || en.Service.Meta["queue"] != testAct+"."+name+"@1.2.0" ||
		!slices.Equal(en.Service.Tags, []string{"patbus", "v1.2.0"}) {
		t.Errorf("registration meta %v tags %v", en.Service.Meta, en.Service.Tags)
	}

	caller := e.svc(e.name("caller"), "1.0.0", nil, services.WithConsul(agent.Addr()))
	waitFor(t, caller, "cmd:slow")
	eventuallyWithin(t, 10*time.Second, "the caller sees it passing", func() bool {
		for _, c := range caller.Catalog() {
			if c.Service == name {
				return c.Health == services.HealthPassing && c.Instances[0].Health == services.HealthPassing
			}
		}
		return false
	})
	answered := make(chan error, 1)
	go func() { _, err := caller.Act(ctxT(t), "cmd:slow", nil); answered <- err }()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- svc.Shutdown(ctxT(t)) }()
	eventuallyWithin(t, 10*time.Second, "deregistered while its act is in flight", func() bool {
		return consulEntries(t, consul, name)[svc.Instance()] == nil
	})
	close(release)
	if err := <-answered; err != nil {
		t.Errorf("the act in flight: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// v1 and v2 side by side: pinned callers reach theirs, unpinned ones the
// newest healthy; SIGKILL v2's only process: its check goes critical within
// the TTL, unpinned acts move to v1 with no error long before the catalog
// would forget v2, and Consul removes v2 after deregister-after.
func TestConsulCanaryAndKilledVersion(t *testing.T) {
	t.Parallel() // it waits a minute or more for Consul's reaper
	url := testenv.AMQPURL(t)
	agent := testenv.StartConsulAgent(t)
	consul := consulClient(t, agent.Addr())
	e := newRabbitEnv(t)
	name := e.name("canary")
	e.svc(name, "1.0.0", func(s *services.Service) {
		_ = services.AddFunc(s, "cmd:slow", func(ctx context.Context, in struct{ N int }) (string, error) { return "v1", nil })
	}, services.WithConsul(agent.Addr()), services.WithHealthTTL(time.Second))
	child, out := startChild(t, "PATBUS_TEST_CHILD="+name, "PATBUS_TEST_CHILD_VERSION=2.0.0",
		"PATBUS_TEST_CHILD_CONSUL="+agent.Addr(), "PATBUS_AMQP_URL="+url)
	caller := e.svc(e.name("caller"), "1.0.0", nil, services.WithConsul(agent.Addr()))
	waitFor(t, caller, "cmd:slow,$$version:2.0.0")
	eventuallyWithin(t, 10*time.Second, "v2 passing in the caller's catalog", func() bool {
		for _, c := range caller.Catalog() {
			if c.Service == name && c.Version == "2.0.0" {
				return c.Health == services.HealthPassing
			}
		}
		return false
	})
	act := func(in map[string]any) (string, error) {
		// Short deadlines: an act sent to the killed instance's queue
		// before Consul says it is critical waits in vain.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return services.Call[string](ctx, caller, "cmd:slow", in)
	}
	for _, c := range []struct {
		pin  any
		want string
	}{{nil, "child 0"}, {"^1", "v1"}, {"1.0.0", "v1"}, {"2.x", "child 0"}} {
		in := map[string]any{"N": 0}
		if c.pin != nil {
			in["$$version"] = c.pin
		}
		if got, err := act(in); err != nil || got != c.want {
			t.Errorf("pin %v: %q, %v; want %q", c.pin, got, err, c.want)
		}
	}
	killed := time.Now()
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	eventuallyWithin(t, 15*time.Second, "unpinned acts move to v1", func() bool {
		got, err := act(map[string]any{"N": 1})
		return err == nil && got == "v1"
	})
	t.Logf("unpinned acts reach v1 %v after the kill", time.Since(killed).Round(time.Millisecond))
	// The catalog still holds v2 (its heartbeat is a minute): Consul
	// alone steered the act away.
	var v2 *services.CatalogEntry
	for _, c := range caller.Catalog() {
		if c.Service == name && c.Version == "2.0.0" {
			c := c
			v2 = &c
		}
	}
	if v2 == nil || v2.Health != services.HealthCritical {
		t.Errorf("v2 in the catalog: %+v, want it listed critical\n%s", v2, out.String())
	}
	// Pinned to the dead version: no healthy service, at once, and said.
	_, err := act(map[string]any{"N": 2, "$$version": "2.0.0"})
	if !errors.Is(err, services.ErrNoRoute) || !strings.Contains(err.Error(), "critical") {
		t.Errorf("pinned to the critical version: %v, want ErrNoRoute naming it critical", err)
	}
	if testing.Short() {
		return
	}
	eventuallyWithin(t, 2*time.Minute, "Consul removes the killed instance", func() bool {
		for _, en := range consulEntries(t, consul, name) {
			if en.Service.Meta["version"] == "2.0.0" {
				return false
			}
		}
		return true
	})
	t.Logf("the killed instance was deregistered %v after the kill", time.Since(killed).Round(time.Second))
}

// Consul stopped in the middle: acts go on with the last known health, and
// the catalog says the health is stale; Consul back: the instances
// register again and the callers pick it up.
func TestConsulAwayAndBack(t *testing.T) {
	agent := testenv.StartConsulAgent(t)
	e := newRabbitEnv(t)
	name := e.name("away")
	e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "cmd:who") },
		services.WithConsul(agent.Addr()), services.WithHealthTTL(time.Second))
	caller := e.svc(e.name("caller"), "1.0.0", nil, services.WithConsul(agent.Addr()))
	waitFor(t, caller, "cmd:who")
	entry := func() services.CatalogEntry {
		for _, c := range caller.Catalog() {
			if c.Service == name {
				return c
			}
		}
		return services.CatalogEntry{}
	}
	eventuallyWithin(t, 10*time.Second, "passing", func() bool { return entry().Health == services.HealthPassing })
	stopped := time.Now()
	agent.Stop()
	t.Logf("agent stopped in %v", time.Since(stopped).Round(time.Millisecond))
	eventuallyWithin(t, 40*time.Second, "the catalog says the health is stale", func() bool { return entry().HealthStale })
	t.Logf("stale %v after the stop", time.Since(stopped).Round(time.Millisecond))
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := caller.Act(ctxT(t), "cmd:who", nil); err != nil {
				t.Errorf("act while Consul is away: %v", err)
			}
		}()
	}
	wg.Wait()
	back := time.Now()
	agent.Start() // a dev agent starts empty: the instance registers again
	eventuallyWithin(t, 40*time.Second, "fresh health once Consul is back", func() bool {
		c := entry()
		return !c.HealthStale && c.Health == services.HealthPassing
	})
	t.Logf("fresh health %v after the restart", time.Since(back).Round(time.Millisecond))
	if _, err := caller.Act(ctxT(t), "cmd:who", nil); err != nil {
		t.Errorf("act after Consul came back: %v", err)
	}
}

// A service whose broker connection drops turns critical in Consul, and
// passing again once it is back.
func TestConsulCheckFollowsTheBroker(t *testing.T) {
	t.Parallel() // its private broker takes a while to start
	agent := testenv.StartConsulAgent(t)
	consul := consulClient(t, agent.Addr())
	node := testenv.StartRabbitNode(t)
	b := testenv.RabbitAt(t, node.URL())
	svc, err := services.New("checked", "1.0.0", services.WithBroker(b), services.WithConsul(agent.Addr()),
		services.WithHealthTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	whoami(svc, "cmd:who")
	if err := svc.Ready(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		en := consulEntries(t, consul, "checked")[svc.Instance()]
		if en == nil {
			return ""
		}
		return en.Checks.AggregatedStatus()
	}
	eventuallyWithin(t, 10*time.Second, "passing", func() bool { return status() == api.HealthPassing })
	node.StopApp()
	eventuallyWithin(t, 20*time.Second, "critical while the broker is away", func() bool { return status() == api.HealthCritical })
	node.StartApp()
	eventuallyWithin(t, 60*time.Second, "passing again", func() bool { return status() == api.HealthPassing })
}

// Consul unreachable from the start: the service starts anyway and serves;
// a malformed address is a configuration error.
func TestConsulUnreachable(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("noconsul")
		e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "cmd:who") },
			services.WithConsul("127.0.0.1:1"), services.WithHealthTTL(time.Second))
		caller := e.svc(e.name("caller"), "1.0.0", nil, services.WithConsul("127.0.0.1:1"))
		if got, _ := who(t, caller, "cmd:who,$$target:"+name, nil); got != name+"@1.0.0" {
			t.Errorf("answered by %s", got)
		}
	})
	for _, bad := range []string{"http://bad host:99", "ftp://127.0.0.1:8500", "http://:8500", "127.0.0.1:port"} {
		_, err := services.New("bad", "1.0.0", services.WithConsul(bad))
		if !errors.Is(err, services.ErrInvalidConfig) || patbus.Code(err) != patbus.CodeInvalidConfig {
			t.Errorf("Consul address %q: %v, want ErrInvalidConfig", bad, err)
		}
	}
}

// Many services with Consul on one host: each watches the health of all
// the others with one blocking query, so that 24 of them (552 watches at
// one query per service watched, past Consul's 200 connections per client
// address) all see every other one passing.
func TestConsulManyServicesOnOneHost(t *testing.T) {
	agent := testenv.StartConsulAgent(t)
	e := newMemEnv(t)
	const n = 24
	svcs := make([]*services.Service, n)
	names := make([]string, n)
	for i := range svcs {
		names[i] = fmt.Sprintf("many-%d", i)
		pattern := fmt.Sprintf("role:many,id:%d", i)
		svcs[i] = e.svc(names[i], "1.0.0", func(s *services.Service) { whoami(s, pattern) },
			services.WithConsul(agent.Addr()), services.WithHealthTTL(2*time.Second))
	}
	for i, s := range svcs {
		waitFor(t, s, fmt.Sprintf("role:many,id:%d", (i+1)%n))
	}
	eventuallyWithin(t, 30*time.Second, "every service sees every other passing", func() bool {
		for _, s := range svcs {
			passing := 0
			for _, c := range s.Catalog() {
				if slices.Contains(names, c.Service) && c.Health == services.HealthPassing && !c.HealthStale {
					passing++
				}
			}
			if passing < n {
				return false
			}
		}
		return true
	})
}
