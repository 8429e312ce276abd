package services_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/services"
)

// An act made right after Ready, before the catalog has answered the new
// instance's discover, waits for the answers instead of failing with
// ErrNoRoute.
func TestFirstActWaitsForDiscovery(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("early")
		e.svc(name, "1.0.0", func(s *services.Service) { addLogin(s) })
		for i := 0; i < 5; i++ {
			caller, err := services.NewClient(services.WithBroker(e.broker()), services.WithExchanges(testAct, testRegistry))
			if err != nil {
				t.Fatal(err)
			}
			_, err = caller.Act(ctxT(t), "cmd:login", map[string]any{"$$target": name, "user": "asd", "password": "123"})
			_ = caller.Close()
			if err != nil {
				t.Fatalf("act %d right after start: %v", i, err)
			}
		}
	})
}

// Nobody serves the pattern: after the discovery window the act fails with
// ErrNoRoute; a deadline shorter than the window is a timeout.
func TestNoRouteAfterDiscovery(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		caller, err := services.NewClient(services.WithBroker(e.broker()), services.WithExchanges(testAct, testRegistry))
		if err != nil {
			t.Fatal(err)
		}
		defer caller.Close()
		if _, err := caller.Act(ctxT(t), "cmd:nobody-serves-this", nil); !errors.Is(err, services.ErrNoRoute) {
			t.Errorf("act on an unserved pattern: %v, want ErrNoRoute", err)
		}
		// Once the round is over, no route is immediate again: under a
		// deadline half the discovery window, an act that waited for
		// another round would end in ErrTimeout.
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		if _, err := caller.Act(ctx, "cmd:nobody-serves-this-either", nil); !errors.Is(err, services.ErrNoRoute) {
			t.Errorf("second act: %v, want ErrNoRoute at once", err)
		}
	})
}

// A service made without WithBroker cannot reach any other: WaitFor tells
// the newcomer at once instead of waiting for ever.
func TestWaitForOnAPrivateBroker(t *testing.T) {
	s, err := services.New("lonely", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.WaitFor(ctx, "role:user,cmd:login")
	if !errors.Is(err, services.ErrNoRoute) || !strings.Contains(err.Error(), "WithBroker") || ctx.Err() != nil {
		t.Fatalf("WaitFor on a private broker = %v, want an immediate ErrNoRoute that names WithBroker", err)
	}
	if patbus.Code(err) != patbus.CodeNoRoute {
		t.Errorf("code %q", patbus.Code(err))
	}
	// Its own patterns it can wait for.
	if err := s.Add("cmd:self", services.HandlerFunc(func(context.Context, *services.Message) (any, error) { return "me", nil })); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, "cmd:self"); err != nil {
		t.Errorf("WaitFor its own pattern: %v", err)
	}
}

// A client announces nothing while it serves nothing.
func TestClientStaysOutOfTheCatalog(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("seen")
		e.svc(name, "1.0.0", func(s *services.Service) { addLogin(s) })
		caller, err := services.NewClient(services.WithBroker(e.broker()), services.WithExchanges(testAct, testRegistry))
		if err != nil {
			t.Fatal(err)
		}
		defer caller.Close()
		if err := caller.WaitFor(ctxT(t), "cmd:login,$$target:"+name); err != nil {
			t.Fatal(err)
		}
		watcher := e.svc(e.name("watcher"), "1.0.0", func(s *services.Service) { addLogin(s) })
		if err := watcher.WaitFor(ctxT(t), "cmd:login,$$target:"+name); err != nil {
			t.Fatal(err)
		}
		for _, c := range watcher.Catalog() {
			if c.Service == services.ClientName {
				t.Errorf("the client shows in the catalog: %+v", c)
			}
		}
	})
}
