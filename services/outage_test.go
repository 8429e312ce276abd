package services_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

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
