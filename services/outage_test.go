package services_test

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

// A caller cut off from the broker for longer than three of a service's
// heartbeats keeps the instances it knew: the silence was its own. Once
// back it discovers again, and the acts it makes right after the
// reconnect find their service instead of failing with ErrNoRoute until
// the service's next heartbeat.
func TestCatalogSurvivesTheCallersOwnOutage(t *testing.T) {
	e := newRabbitEnv(t)
	// Only the caller's link goes through the proxy: the service stays on
	// the broker and keeps announcing, every two seconds.
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, u.Host)
	u.Host = proxy.Addr()
	name := e.name("steady")
	e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "cmd:who") }, services.WithHeartbeat(2*time.Second))
	cb := testenv.RabbitAt(t, u.String(), bus.WithReconnectBackoff(50*time.Millisecond, 200*time.Millisecond))
	caller := e.svcOn(cb, e.name("caller"), "1.0.0", nil, services.WithHeartbeat(200*time.Millisecond))
	pattern := "cmd:who,$$target:" + name
	waitFor(t, caller, pattern)

	proxy.Cut()
	conn := cb.(bus.Connectivity)
	eventually(t, "the caller notices the outage", func() bool { return !conn.Connected() })
	// Longer than three of the service's heartbeats; nothing to wait for
	// but time itself.
	time.Sleep(7 * time.Second)
	proxy.Restore()
	eventuallyWithin(t, 30*time.Second, "the caller is back", conn.Connected)
	back := time.Now()
	noRoute, ok := 0, 0
	for time.Since(back) < 3*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := caller.Act(ctx, pattern, nil)
		cancel()
		switch {
		case err == nil:
			ok++
		case errors.Is(err, services.ErrNoRoute):
			noRoute++
		}
	}
	t.Logf("after the reconnect: %d acts answered, %d without route", ok, noRoute)
	if noRoute > 0 || ok == 0 {
		t.Errorf("%d acts failed with ErrNoRoute after the reconnect (%d answered)", noRoute, ok)
	}
}

// Ready honours its context while the broker is away: it returns by the
// context's deadline with the reason, not when the broker comes back.
func TestReadyHonoursItsContextWhileTheBrokerIsDown(t *testing.T) {
	e := newRabbitEnv(t)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, u.Host)
	u.Host = proxy.Addr()
	b := testenv.RabbitAt(t, u.String())
	eventually(t, "connected through the proxy", b.(bus.Connectivity).Connected)
	proxy.Cut()
	eventually(t, "the broker is away", func() bool { return !b.(bus.Connectivity).Connected() })
	svc, err := services.New("patient", "1.0.0", services.WithBroker(b))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// The broker stays away until Ready has returned: a Ready that
	// ignored its context would not return at all, and the watchdog
	// says so instead of the test run's own timeout.
	ready := make(chan error, 1)
	go func() { ready <- svc.Ready(ctx) }()
	select {
	case err = <-ready:
	case <-time.After(time.Minute):
		t.Fatal("Ready ignored its context's deadline while the broker was away")
	}
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ready with the broker away: %v, want the context's deadline", err)
	}
	// A start cut short by its context is no failure of the service: once
	// the broker is back, the next Ready starts it, and it serves.
	proxy.Restore()
	whoami(svc, "cmd:patient")
	if err := svc.Ready(ctxT(t)); err != nil {
		t.Fatalf("Ready once the broker is back: %v", err)
	}
	if got, _ := who(t, svc, "cmd:patient", nil); got != "patient@1.0.0" {
		t.Errorf("answered by %q", got)
	}
}

// An act in flight when the caller's connection is lost fails at once with
// ErrInterrupted; one whose action is declared Idempotent is sent again
// and answered once the connection is back.
func TestInterruptedActs(t *testing.T) {
	e := newRabbitEnv(t)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, u.Host)
	u.Host = proxy.Addr()
	name := e.name("flaky")
	started := make(chan string, 4)
	release := make(chan struct{})
	var runs atomic.Int32
	handler := func(kind string) services.Handler {
		return services.HandlerFunc(func(ctx context.Context, _ *services.Message) (any, error) {
			if runs.Add(1) <= 2 { // the first run of each act waits for the cut
				started <- kind
				<-release
			}
			return kind + " done", nil
		})
	}
	e.svc(name, "1.0.0", func(s *services.Service) {
		_ = s.Add("cmd:read", handler("read"), services.Idempotent())
		_ = s.Add("cmd:write", handler("write"))
	})
	defer close(release)
	cb := testenv.RabbitAt(t, u.String(), bus.WithReconnectBackoff(20*time.Millisecond, 100*time.Millisecond))
	caller := e.svcOn(cb, e.name("caller"), "1.0.0", nil)
	waitFor(t, caller, "cmd:read,$$target:"+name)
	waitFor(t, caller, "cmd:write,$$target:"+name)
	results := map[string]chan error{"read": make(chan error, 1), "write": make(chan error, 1)}
	for kind, ch := range results {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rep, err := caller.Act(ctx, "cmd:"+kind+",$$target:"+name, nil)
			if err == nil && string(rep.Body) != `"`+kind+` done"` {
				err = errors.New("answered " + string(rep.Body))
			}
			ch <- err
		}()
	}
	<-started
	<-started
	proxy.Cut()
	select {
	case err := <-results["write"]:
		if !errors.Is(err, patbus.ErrInterrupted) {
			t.Errorf("the interrupted write: %v, want ErrInterrupted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the interrupted write waited on")
	}
	proxy.Restore()
	if err := <-results["read"]; err != nil {
		t.Errorf("the interrupted idempotent read: %v, want its answer after it was sent again", err)
	}
}
