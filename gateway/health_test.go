package gateway_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
)

// /readyz follows the broker of the service the gateway acts through;
// /healthz only the process.
func TestReadiness(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		// The caller gets a broker of its own, to close: b itself on the
		// in-memory broker (services on two Memory values would not see
		// each other), a second connection on RabbitMQ.
		callerB := b
		if _, mem := b.(*bus.Memory); !mem {
			callerB = testenv.Rabbit(t)
		}
		h := newHooks()
		e := newEnvOn(t, startStack(t, b, callerB, h), h)
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := e.do(t, "GET", p, ""); r.status != 200 || r.header.Get("X-Request-Id") == "" {
				t.Fatalf("%s: %d %s", p, r.status, r.body)
			}
		}
		if err := callerB.Close(); err != nil {
			t.Fatal(err)
		}
		r := e.do(t, "GET", "/readyz", "")
		if r.status != 503 {
			t.Fatalf("readyz with the broker closed: %d %s", r.status, r.body)
		}
		if eb := r.errorBody(t); eb.Code != "unavailable" || eb.Tx != r.header.Get("X-Request-Id") {
			t.Errorf("readyz body %+v", eb)
		}
		if r := e.do(t, "GET", "/healthz", ""); r.status != 200 {
			t.Errorf("healthz with the broker closed: %d", r.status)
		}
		if r := e.do(t, "GET", "/user", ""); r.status != 503 {
			t.Errorf("an act with the broker closed: %d %s", r.status, r.body)
		}
	})
}

// The readiness checks and health paths can be chosen.
func TestReadinessOptions(t *testing.T) {
	b := testenv.Memory(t)
	actor := localActor(t, b, nil)
	failing := func(context.Context) error { return errors.New("not yet") }
	passing := func(context.Context) error { return nil }
	for _, c := range []struct {
		name   string
		opts   []gateway.Option
		path   string
		status int
	}{
		{"default", nil, "/readyz", 200},
		{"a failing check", []gateway.Option{gateway.WithReadiness(passing, failing)}, "/readyz", 503},
		{"passing checks", []gateway.Option{gateway.WithReadiness(passing, passing)}, "/readyz", 200},
		{"no checks", []gateway.Option{gateway.WithReadiness()}, "/readyz", 200},
		{"a broker check", []gateway.Option{gateway.WithReadiness(gateway.BrokerCheck(b))}, "/readyz", 200},
		{"other paths", []gateway.Option{gateway.WithHealthPaths("/live", "/ready")}, "/ready", 200},
		{"other paths, old one", []gateway.Option{gateway.WithHealthPaths("/live", "/ready")}, "/readyz", 404},
		{"health off", []gateway.Option{gateway.WithHealthPaths("", "/readyz")}, "/healthz", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			gw, err := gateway.New(actor, []gateway.RouteSet{referenceMap()}, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
			if rec.Code != c.status {
				t.Errorf("%s: %d, want %d: %s", c.path, rec.Code, c.status, rec.Body)
			}
		})
	}
	// A closed service is not ready, by its Ready method.
	svc, ready, closeSvc := closableService(t, b)
	gw, err := gateway.New(svc, []gateway.RouteSet{referenceMap()}, gateway.WithReadiness(ready))
	if err != nil {
		t.Fatal(err)
	}
	closeSvc()
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("readyz of a closed service: %d", rec.Code)
	}
}
