package services_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
)

// whoami answers with the service's name and version.
func whoami(s *services.Service, pattern string) {
	_ = s.Add(pattern, services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
		return map[string]any{"service": s.Name(), "version": s.Version()}, nil
	}))
}

func who(t *testing.T, s *services.Service, pattern string, input any) (string, bool) {
	t.Helper()
	rep, err := s.Act(ctxT(t), pattern, input)
	if err != nil {
		t.Fatalf("act %s %v: %v", pattern, input, err)
	}
	var m map[string]string
	if err := json.Unmarshal(rep.Body, &m); err != nil {
		t.Fatal(err)
	}
	if m["service"] != rep.Service || m["version"] != rep.Version {
		t.Errorf("reply names %s@%s, body %v", rep.Service, rep.Version, m)
	}
	return m["service"] + "@" + m["version"], rep.Local
}

func TestTxChainAcrossServices(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		rec := &recorder{}
		log := slog.New(rec)
		var mu sync.Mutex
		seen := map[string]string{}
		note := func(where string, ctx context.Context, m *services.Message) {
			mu.Lock()
			defer mu.Unlock()
			if wire.Tx(ctx) != m.Tx {
				t.Errorf("%s: ctx tx %q != message tx %q", where, wire.Tx(ctx), m.Tx)
			}
			seen[where] = m.Tx
		}
		bName, cName := e.name("b"), e.name("c")
		c := e.svc(cName, "1.0.0", func(s *services.Service) {
			_ = s.Add("step:3", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				note("c", ctx, m)
				return map[string]any{"depth": 3}, nil
			}))
		}, services.WithLogger(log))
		b := e.svc(bName, "1.0.0", func(s *services.Service) {
			_ = s.Add("step:2", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				note("b", ctx, m)
				return s.Act(ctx, "step:3", nil) // reply of a reply: a *Reply encodes as JSON
			}))
		}, services.WithLogger(log))
		a := e.svc(e.name("a"), "1.0.0", func(s *services.Service) {
			_ = s.Add("step:1", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				note("a", ctx, m)
				rep, err := s.Act(ctx, "step:2", nil)
				if err != nil {
					return nil, err
				}
				return json.RawMessage(rep.Body), nil
			}))
		}, services.WithLogger(log))
		waitFor(t, a, "step:2")
		waitFor(t, b, "step:3")
		_ = c
		tx := wire.NewID()
		rep, err := a.Act(wire.WithTx(ctx, tx), "step:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Tx != tx {
			t.Errorf("reply tx %q, want %q", rep.Tx, tx)
		}
		mu.Lock()
		for _, where := range []string{"a", "b", "c"} {
			if seen[where] != tx {
				t.Errorf("%s saw tx %q, want %q", where, seen[where], tx)
			}
		}
		mu.Unlock()
		// A fresh tx when ctx has none.
		rep, err = a.Act(ctx, "step:1", nil)
		if err != nil || len(rep.Tx) != 32 || rep.Tx == tx {
			t.Errorf("fresh tx: %q %v", rep.Tx, err)
		}
		acts := 0
		for _, r := range rec.all() {
			if !strings.HasPrefix(r.Message, "services: act") && !strings.HasPrefix(r.Message, "services: serving") {
				continue
			}
			acts++
			if v, ok := attr(r, "tx"); !ok || len(v) != 32 {
				t.Errorf("log line %q has no tx", r.Message)
			}
		}
		if acts < 5 {
			t.Errorf("only %d act log lines", acts)
		}
	})
}

func TestLocalWinsAndBrokerOnly(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("shared")
		b := e.broker()
		// Two instances of one service version: one prefers local, one is broker-only.
		local := e.svcOn(b, name, "1.0.0", func(s *services.Service) { whoami(s, "cmd:who") })
		remoteOnly := e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "cmd:who") }, services.WithBrokerOnly())
		other := e.svc(e.name("other"), "2.0.0", func(s *services.Service) { whoami(s, "cmd:who") })
		waitFor(t, local, "cmd:who,$$target:"+other.Name())
		// Local wins on the identical pattern even though a newer version serves it.
		if got, isLocal := who(t, local, "cmd:who", nil); got != name+"@1.0.0" || !isLocal {
			t.Errorf("prefer local: %s local=%v", got, isLocal)
		}
		// Broker-only: the act goes through the broker, to the newest version.
		waitFor(t, remoteOnly, "cmd:who,$$target:"+other.Name())
		if got, isLocal := who(t, remoteOnly, "cmd:who", nil); got != other.Name()+"@2.0.0" || isLocal {
			t.Errorf("broker-only: %s local=%v", got, isLocal)
		}
		// Broker-only to itself: through the broker, answered by its version's queue.
		if got, isLocal := who(t, remoteOnly, "cmd:who", map[string]any{"$$target": name}); got != name+"@1.0.0" || isLocal {
			t.Errorf("broker-only pinned to itself: %s local=%v", got, isLocal)
		}
		// A pin to another service skips the local action.
		if got, isLocal := who(t, local, "cmd:who", map[string]any{"$$target": other.Name()}); got != other.Name()+"@2.0.0" || isLocal {
			t.Errorf("pinned away from local: %s local=%v", got, isLocal)
		}
	})
}

func TestVersionsAndTargets(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		calc := e.name("calc")
		for _, v := range []string{"1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1"} {
			e.svc(calc, v, func(s *services.Service) { whoami(s, "role:calc,cmd:ver") })
		}
		alpha, beta := e.name("alpha"), e.name("beta")
		e.svc(alpha, "1.0.0", func(s *services.Service) { whoami(s, "cmd:hello") })
		e.svc(beta, "3.0.0", func(s *services.Service) { whoami(s, "cmd:hello") })
		// A target served by a pattern that names $$target itself.
		cfg := e.name("config-server")
		e.svc(cfg, "1.0.0", func(s *services.Service) { whoami(s, "$$target:"+cfg) })
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		for _, v := range []string{"1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1"} {
			waitFor(t, caller, "role:calc,cmd:ver,$$version:"+v)
		}
		waitFor(t, caller, "cmd:hello,$$target:"+alpha)
		waitFor(t, caller, "cmd:hello,$$target:"+beta)
		waitFor(t, caller, "$$target:"+cfg)
		cases := []struct {
			pattern string
			input   map[string]any
			want    string
		}{
			// Newest release by semver precedence: 1.10.0 > 1.9.0 > 1.0.0; the
			// prerelease 2.0.0-rc.1 only when asked for.
			{"role:calc,cmd:ver", nil, calc + "@1.10.0"},
			{"role:calc,cmd:ver", map[string]any{"$$version": "^1"}, calc + "@1.10.0"},
			{"role:calc,cmd:ver", map[string]any{"$$version": "~1.9.0"}, calc + "@1.9.0"},
			{"role:calc,cmd:ver", map[string]any{"$$version": ">=1.0.0 <1.9.0"}, calc + "@1.0.0"},
			{"role:calc,cmd:ver", map[string]any{"$$version": "1.x"}, calc + "@1.10.0"},
			{"role:calc,cmd:ver", map[string]any{"$$version": ">=1.5"}, calc + "@1.10.0"},
			{"role:calc,cmd:ver", map[string]any{"$$version": ">=2.0.0-rc.0"}, calc + "@2.0.0-rc.1"},
			{"role:calc,cmd:ver", map[string]any{"$$version": "1.9.0"}, calc + "@1.9.0"},
			{"role:calc,cmd:ver,$$version:1.0.0", nil, calc + "@1.0.0"},
			{"role:calc,cmd:ver", map[string]any{"$$target": calc, "$$version": "2.0.0-rc.1"}, calc + "@2.0.0-rc.1"},
			{"cmd:hello", nil, beta + "@3.0.0"},
			{"cmd:hello", map[string]any{"$$target": alpha}, alpha + "@1.0.0"},
			{"cmd:hello,$$target:" + beta, nil, beta + "@3.0.0"},
			{"$$target:" + cfg, map[string]any{"anything": 1}, cfg + "@1.0.0"},
			{"cmd:get,$$target:" + cfg, nil, cfg + "@1.0.0"},
		}
		for _, c := range cases {
			if got, _ := who(t, caller, c.pattern, c.input); got != c.want {
				t.Errorf("act %s %v: answered by %s, want %s", c.pattern, c.input, got, c.want)
			}
		}
		// Pins nobody matches: no route, at once.
		for _, in := range []map[string]any{{"$$version": "9.9.9"}, {"$$target": "nobody"}, {"$$version": "^3"}, {"$$version": "2.x"}} {
			if _, err := caller.Act(ctxT(t), "role:calc,cmd:ver", in); !errors.Is(err, services.ErrNoRoute) {
				t.Errorf("pin %v: err %v, want ErrNoRoute", in, err)
			}
		}
		// A pin that is neither a version nor a range is bad input.
		for _, bad := range []string{"v1..2", "1.2.x.y", ">=>1", "^"} {
			if _, err := caller.Act(ctxT(t), "role:calc,cmd:ver", map[string]any{"$$version": bad}); !errors.Is(err, services.ErrInvalidInput) {
				t.Errorf("pin %q: err %v, want ErrInvalidInput", bad, err)
			}
		}
		var entry *services.CatalogEntry
		for _, c := range caller.Catalog() {
			if c.Service == calc && c.Version == "2.0.0-rc.1" {
				c := c
				entry = &c
			}
		}
		if entry == nil || len(entry.Instances) != 1 || strings.Join(entry.Patterns, ";") != "cmd:ver,role:calc" {
			t.Errorf("catalog entry %+v", entry)
		}
	})
}

func TestCatalogLeaveAndExpiry(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		name := e.name("leaver")
		pattern := "role:" + name
		caller := e.svc(e.name("caller"), "1.0.0", nil, services.WithHeartbeat(40*time.Millisecond))
		v1 := e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, pattern) })
		v2 := e.svc(name, "2.0.0", func(s *services.Service) { whoami(s, pattern) })
		waitFor(t, caller, pattern+",$$version:1.0.0")
		waitFor(t, caller, pattern+",$$version:2.0.0")
		if got, _ := who(t, caller, pattern, nil); got != name+"@2.0.0" {
			t.Fatalf("before leave: %s", got)
		}
		if err := v2.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "v2 leaves the catalog", func() bool {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := caller.Act(actx, pattern, map[string]any{"$$version": "2.0.0"})
			return errors.Is(err, services.ErrNoRoute)
		})
		if got, _ := who(t, caller, pattern, nil); got != name+"@1.0.0" {
			t.Errorf("after v2 left: %s", got)
		}
		if err := v1.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "v1 leaves the catalog", func() bool {
			// An act racing the leave goes to the gone service's queue and
			// waits for its deadline: keep it short.
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := caller.Act(actx, pattern, nil)
			return errors.Is(err, services.ErrNoRoute)
		})
		// An instance that stops heartbeating expires after three missed beats.
		ghost := e.name("ghost")
		var b bus.Broker = e.mem
		if e.rabbit {
			b = e.broker()
		}
		body, _ := json.Marshal(map[string]any{"type": "announce", "service": ghost, "version": "1.0.0",
			"instance": ghost + "-1", "patterns": []string{"role:" + ghost}, "heartbeat_ms": 30})
		if err := bus.PublishAndWait(ctx, b, testRegistry, "", bus.Message{Body: body, ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, caller, "role:"+ghost)
		// Three of the ghost's own 30ms heartbeats and the next reap (at
		// most a second later); by the caller's 5s heartbeat it would take
		// 15s.
		eventuallyWithin(t, 5*time.Second, "ghost expires by its own heartbeat", func() bool {
			for _, c := range caller.Catalog() {
				if c.Service == ghost {
					return false
				}
			}
			return true
		})
	})
}

func TestAddAfterStartIsAnnounced(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("grower")
		svc := e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "role:"+name+",cmd:one") })
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "role:"+name+",cmd:one")
		whoami(svc, "role:"+name+",cmd:two")
		waitFor(t, caller, "role:"+name+",cmd:two")
		if got, local := who(t, caller, "role:"+name+",cmd:two", nil); got != name+"@1.0.0" || local {
			t.Errorf("new pattern answered by %s (local %v)", got, local)
		}
	})
}

// Every remote act is a publish on the act exchange with the routing key
// of its resolved pattern extended with $$target and $$version: a queue
// bound there with "#" sees every act of a run of mixed patterns, and none
// of a caller that opted out with WithDirectToQueue.
func TestEveryActOnTheActExchange(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		b := e.broker()
		name := e.name("srv")
		pats := []string{"probe:1", "probe:2,role:x", "cmd:z,probe:3", "probe:4,v:é.b"}
		srv := e.svc(name, "1.2.0", func(s *services.Service) {
			for _, p := range pats {
				whoami(s, p)
			}
		})
		byDefault := e.svc(e.name("default"), "1.0.0", nil)
		optOut := e.svc(e.name("direct"), "1.0.0", nil, services.WithDirectToQueue())
		tap := "patbus.test.services.tap." + wire.NewID()[:8]
		if _, err := b.DeclareQueue(ctx, bus.Queue{Name: tap, Exclusive: true, AutoDelete: true}); err != nil {
			t.Fatal(err)
		}
		if err := b.Bind(ctx, bus.Binding{Exchange: testAct, Queue: tap, Key: "#"}); err != nil {
			t.Fatal(err)
		}
		sub, err := b.Consume(ctx, tap, bus.ConsumeOptions{NoAck: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel(context.Background())
		for _, p := range pats {
			waitFor(t, byDefault, p)
			waitFor(t, optOut, p)
		}
		want := srv.Name() + "@1.2.0"
		const rounds = 5
		sent := map[string]string{} // act id -> pattern
		for i := 0; i < rounds; i++ {
			for j, p := range pats {
				for _, caller := range []*services.Service{optOut, byDefault} {
					id := fmt.Sprintf("%s-%d-%d", caller.Name(), i, j)
					if got, local := who(t, caller, p, map[string]any{"id": id}); got != want || local {
						t.Fatalf("%s: %s answered by %s (local %v), want %s", caller.Name(), p, got, local, want)
					}
					if caller == byDefault {
						sent[id] = p
					}
				}
			}
		}
		for len(sent) > 0 {
			select {
			case d := <-sub.Deliveries():
				var body struct{ ID string }
				if err := json.Unmarshal(d.Body, &body); err != nil {
					t.Fatal(err)
				}
				p, ok := sent[body.ID]
				if !ok {
					t.Fatalf("the tap saw an act it should not: %s", d.Body)
				}
				delete(sent, body.ID)
				pat := patterns.MustParse(p)
				key, _ := patterns.Key(pat.With("$$target", name).With("$$version", "1.2.0"))
				if d.Exchange != testAct || d.RoutingKey != key || d.Type != pat.String() {
					t.Errorf("act %s on %q with key %q and type %q, want %q and %q", body.ID, d.Exchange, d.RoutingKey, d.Type, key, pat)
				}
			case <-ctx.Done():
				t.Fatalf("the tap missed %d acts: %v", len(sent), sent)
			}
		}
		// None of the opt-out caller's acts follows.
		select {
		case d := <-sub.Deliveries():
			t.Errorf("the tap saw %s", d.Body)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

// What WIRE.md tells a program without a catalog: the routing key of the
// pattern alone reaches nobody (the broker returns it at once), the key
// extended with $$target and $$version reaches the version's queue.
func TestForeignCallerNeedsTargetAndVersion(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("srv")
		e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "role:foreign,cmd:hello") })
		client, err := rpc.NewClient(ctxT(t), e.broker())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		pat := patterns.MustParse("role:foreign,cmd:hello")
		bare, _ := patterns.Key(pat)
		_, err = client.Call(ctxT(t), rpc.Request{Exchange: testAct, Key: bare, Body: []byte(`{"role":"foreign","cmd":"hello"}`)})
		if !errors.Is(err, rpc.ErrNoRoute) {
			t.Fatalf("the pattern's own key: %v, want ErrNoRoute at once", err)
		}
		full, _ := patterns.Key(pat.With("$$target", name).With("$$version", "1.0.0"))
		rep, err := client.Call(ctxT(t), rpc.Request{Exchange: testAct, Key: full, Pattern: pat.String(),
			Body: []byte(`{"role":"foreign","cmd":"hello"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(rep.Body), name) {
			t.Errorf("answered %s", rep.Body)
		}
	})
}
