package components

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeComponents are two components whose starts return fixed addresses
// (or an error) and count the containers started and stopped, for testing
// the choice between the environment and containers.
type fakeComponents struct {
	mu               sync.Mutex // the starts run concurrently
	started, stopped []string
}

func (f *fakeComponents) list(failing string) []component {
	mk := func(name, env, addr string) component {
		return component{name: name, env: env, start: func(context.Context) (string, func(context.Context) error, error) {
			f.mu.Lock()
			f.started = append(f.started, name)
			f.mu.Unlock()
			stop := func(context.Context) error {
				f.mu.Lock()
				f.stopped = append(f.stopped, name)
				f.mu.Unlock()
				return nil
			}
			if name == failing {
				return "", stop, errors.New("image not found")
			}
			return addr, stop, nil
		}}
	}
	return []component{
		mk("Alpha", "PATBUS_TEST_ALPHA_ADDR", "127.0.0.1:1111"),
		mk("Beta", "PATBUS_TEST_BETA_ADDR", "127.0.0.1:2222"),
	}
}

func TestStartChoosesTheEnvironment(t *testing.T) {
	dockerCalls := 0
	docker := func(context.Context) error { dockerCalls++; return nil }
	t.Setenv("PATBUS_TEST_ALPHA_ADDR", "127.0.0.1:1")
	t.Setenv("PATBUS_TEST_BETA_ADDR", "127.0.0.1:2")
	var logs bytes.Buffer
	f := &fakeComponents{}
	set, err := start(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), docker, f.list(""))
	if err != nil {
		t.Fatal(err)
	}
	if set.Source != FromEnvironment || dockerCalls != 0 || len(f.started) != 0 {
		t.Fatalf("source %q, docker asked %d times, started %v; want the environment alone", set.Source, dockerCalls, f.started)
	}
	if !strings.Contains(logs.String(), `msg="components: from the environment"`) {
		t.Errorf("log: %s", logs.String())
	}
	if os.Getenv("PATBUS_TEST_ALPHA_ADDR") != "127.0.0.1:1" {
		t.Errorf("the given address was replaced")
	}
}

func TestStartWithoutDocker(t *testing.T) {
	t.Setenv("PATBUS_TEST_ALPHA_ADDR", "127.0.0.1:1")
	t.Setenv("PATBUS_TEST_BETA_ADDR", "")
	var logs bytes.Buffer
	f := &fakeComponents{}
	set, err := start(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)),
		func(context.Context) error { return errors.New("no Docker engine") }, f.list(""))
	if err != nil {
		t.Fatal(err)
	}
	if set.Source != FromEnvironment || len(f.started) != 0 || !slices.Equal(set.Missing, []string{"Beta"}) {
		t.Fatalf("source %q, started %v, missing %v; want the environment, nothing started, Beta missing", set.Source, f.started, set.Missing)
	}
	if l := logs.String(); !strings.Contains(l, `msg="components: from the environment"`) || !strings.Contains(l, "missing=Beta") {
		t.Errorf("log: %s", l)
	}
	if v := os.Getenv("PATBUS_TEST_BETA_ADDR"); v != "" {
		t.Errorf("PATBUS_TEST_BETA_ADDR = %q, want it unset", v)
	}
}

func TestStartStartsWhatIsMissing(t *testing.T) {
	t.Setenv("PATBUS_TEST_ALPHA_ADDR", "127.0.0.1:1")
	t.Setenv("PATBUS_TEST_BETA_ADDR", "")
	var logs bytes.Buffer
	f := &fakeComponents{}
	set, err := start(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)),
		func(context.Context) error { return nil }, f.list(""))
	if err != nil {
		t.Fatal(err)
	}
	// The environment's address wins; only the missing component starts.
	if set.Source != FromTestcontainers || !slices.Equal(f.started, []string{"Beta"}) || !slices.Equal(set.Started, []string{"Beta"}) {
		t.Fatalf("source %q, started %v (%v); want testcontainers, Beta alone", set.Source, f.started, set.Started)
	}
	if a, b := os.Getenv("PATBUS_TEST_ALPHA_ADDR"), os.Getenv("PATBUS_TEST_BETA_ADDR"); a != "127.0.0.1:1" || b != "127.0.0.1:2222" {
		t.Errorf("environment: alpha %q, beta %q; want 127.0.0.1:1 and 127.0.0.1:2222", a, b)
	}
	if !strings.Contains(logs.String(), `msg="components: testcontainers"`) {
		t.Errorf("log: %s", logs.String())
	}
	if err := set.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.stopped, []string{"Beta"}) {
		t.Errorf("stopped %v, want Beta", f.stopped)
	}
}

func TestStartReportsAFailedContainer(t *testing.T) {
	t.Setenv("PATBUS_TEST_ALPHA_ADDR", "")
	t.Setenv("PATBUS_TEST_BETA_ADDR", "")
	f := &fakeComponents{}
	set, err := start(context.Background(), nil, func(context.Context) error { return nil }, f.list("Alpha"))
	if err == nil || !strings.Contains(err.Error(), "Alpha") {
		t.Fatalf("err = %v, want one naming Alpha", err)
	}
	if !slices.Equal(set.Missing, []string{"Alpha"}) || !slices.Equal(set.Started, []string{"Beta"}) {
		t.Fatalf("missing %v, started %v", set.Missing, set.Started)
	}
	if v := os.Getenv("PATBUS_TEST_ALPHA_ADDR"); v != "" {
		t.Errorf("PATBUS_TEST_ALPHA_ADDR = %q after a failed start", v)
	}
	// The failed container is removed too.
	_ = set.Close(context.Background())
	slices.Sort(f.stopped)
	if !slices.Equal(f.stopped, []string{"Alpha", "Beta"}) {
		t.Errorf("stopped %v, want Alpha and Beta", f.stopped)
	}
}

func TestComponentsAreTheTestenvVariables(t *testing.T) {
	var envs []string
	for _, c := range all() {
		envs = append(envs, c.env)
	}
	want := []string{"PATBUS_AMQP_URL", "CONSUL_HTTP_ADDR", "MONGODB_URI", "PATBUS_REDIS_ADDR"}
	if !slices.Equal(envs, want) {
		t.Fatalf("components read %v, want %v (the variables internal/testenv reads)", envs, want)
	}
}
