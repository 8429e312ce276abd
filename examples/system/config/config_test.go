package config_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/examples/system/config"
	"github.com/patbus/patbus/examples/system/internal/systest"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

func TestParse(t *testing.T) {
	for _, bad := range []string{``, `null`, `[1]`, `"x"`, `{"a":`, `{} {}`} {
		if _, err := config.Parse([]byte(bad)); !errors.Is(err, patbus.ErrInvalidConfig) {
			t.Errorf("Parse(%q): %v, want ErrInvalidConfig", bad, err)
		}
	}
	doc, err := config.Parse([]byte("{ \"a\" : [1, 2] }\n"))
	if err != nil || string(doc) != `{"a":[1,2]}` {
		t.Fatalf("Parse: %s %v", doc, err)
	}
	name := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(name, []byte(`{"database":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if doc, err := config.Load(name); err != nil || string(doc) != `{"database":"x"}` {
		t.Fatalf("Load: %s %v", doc, err)
	}
	if _, err := config.Load(name + ".missing"); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

// Every act pinned to the config server gets the configuration, whatever
// else it says; on both brokers.
func TestServesItsConfiguration(t *testing.T) {
	doc, err := config.Config{System: "s", Database: "d", Gateway: "g", AccountQueue: "q"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ns := systest.Name("patbus-test-config-")
		testenv.DeleteQueues(t, b, ns+".act.config-server@1.0.0")
		deleteExchanges(t, b, ns+".act", ns+".registry")
		opts := []services.Option{services.WithBroker(b), services.WithExchanges(ns+".act", ns+".registry")}
		other, err := services.New("other", "1.0.0", opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if err := config.Register(other, doc); err == nil {
			t.Fatal("a service not named config-server took the action")
		}
		svc, err := services.New(config.ServiceName, "1.0.0", opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		if err := config.Register(svc, config.Document(`[1]`)); !errors.Is(err, patbus.ErrInvalidConfig) {
			t.Fatalf("a document that is not an object: %v", err)
		}
		if err := config.Register(svc, doc); err != nil {
			t.Fatal(err)
		}
		if err := svc.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		caller, err := services.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer caller.Close()
		if err := caller.WaitFor(ctx, config.Pattern); err != nil {
			t.Fatal(err)
		}
		for _, in := range []any{nil, map[string]any{"cmd": "get"}, map[string]any{"args": map[string]any{"query": map[string]any{}}}} {
			got, err := services.Call[config.Config](ctx, caller, config.Pattern, in)
			if err != nil || got.Database != "d" || got.AccountQueue != "q" {
				t.Fatalf("act with %v: %+v %v", in, got, err)
			}
		}
		rep, err := caller.Act(ctx, config.Pattern, nil)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(rep.Body, &m); err != nil || m["system"] != "s" {
			t.Fatalf("reply %s: %v", rep.Body, err)
		}
	})
}

// deleteExchanges deletes the test's exchanges from b at its end, before
// the broker closes.
func deleteExchanges(t *testing.T, b bus.Broker, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range names {
			if err := b.DeleteExchange(ctx, n); err != nil {
				t.Logf("delete exchange %s: %v", n, err)
			}
		}
	})
}
