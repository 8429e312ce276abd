package services_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
)

// These tests need RabbitMQ (each service on its own connection); they
// skip outside CI when PATBUS_AMQP_URL is unset and fail in CI.

func TestRabbitInstancesShareLoad(t *testing.T) {
	e := newRabbitEnv(t)
	ctx := ctxT(t)
	name := e.name("worker")
	var mu sync.Mutex
	counts := map[string]int{}
	for i := 0; i < 3; i++ {
		e.svc(name, "1.0.0", func(s *services.Service) {
			_ = s.Add("role:work", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				mu.Lock()
				counts[s.Instance()]++
				mu.Unlock()
				// Hold the request a little so that one instance cannot take them all.
				select {
				case <-time.After(2 * time.Millisecond):
				case <-ctx.Done():
				}
				return map[string]any{"instance": s.Instance()}, nil
			}))
		}, services.WithPrefetch(2))
	}
	caller := e.svc(e.name("caller"), "1.0.0", nil)
	waitFor(t, caller, "role:work")
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := caller.Act(ctx, "role:work", nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, c := range counts {
		total += c
	}
	if len(counts) != 3 || total != n {
		t.Errorf("load per instance %v (total %d), want all three instances, %d in all", counts, total, n)
	}
	for _, c := range caller.Catalog() {
		if c.Service == name && len(c.Instances) != 3 {
			t.Errorf("catalog has %d instances of %s", len(c.Instances), name)
		}
	}
}

func TestRabbitInstanceKilledMidRequest(t *testing.T) {
	e := newRabbitEnv(t)
	ctx := ctxT(t)
	name := e.name("fragile")
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	handler := func(s *services.Service, hang bool) {
		_ = s.Add("role:fragile", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
			if hang {
				started <- struct{}{}
				<-release // never answers before its connection dies
				return nil, errors.New("too late")
			}
			return map[string]any{"by": s.Instance(), "redelivered": true}, nil
		}))
	}
	b1 := e.broker()
	doomed := e.svcOn(b1, name, "1.0.0", func(s *services.Service) { handler(s, true) })
	caller := e.svc(e.name("caller"), "1.0.0", nil)
	waitFor(t, caller, "role:fragile")
	type answer struct {
		rep *services.Reply
		err error
	}
	done := make(chan answer, 1)
	go func() {
		rep, err := caller.Act(ctx, "role:fragile", nil)
		done <- answer{rep, err}
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the request never reached the first instance")
	}
	survivor := e.svc(name, "1.0.0", func(s *services.Service) { handler(s, false) })
	// Kill the first instance: its connection goes away before it replies.
	_ = b1.Close()
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatalf("caller got %v, want the survivor's answer", a.err)
		}
		var m map[string]any
		_ = json.Unmarshal(a.rep.Body, &m)
		if m["by"] != survivor.Instance() {
			t.Errorf("answered by %v, want %s", m["by"], survivor.Instance())
		}
	case <-ctx.Done():
		t.Fatal("no answer after the instance died")
	}
	_ = doomed
}

func TestRabbitNoRouteAtOnce(t *testing.T) {
	e := newRabbitEnv(t)
	ctx := ctxT(t)
	caller := e.svc(e.name("caller"), "1.0.0", nil)
	// In the catalog, but with no queue bound: the broker returns the
	// request and the caller fails at once, not after its deadline.
	ghost := e.name("ghost")
	body, _ := json.Marshal(map[string]any{"type": "announce", "service": ghost, "version": "1.0.0",
		"instance": ghost + "-1", "patterns": []string{"role:" + ghost}, "heartbeat_ms": 60000})
	if err := bus.PublishAndWait(ctx, e.broker(), testRegistry, "", bus.Message{Body: body}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, caller, "role:"+ghost)
	start := time.Now()
	_, err := caller.Act(ctx, "role:"+ghost, nil)
	var ce *rpc.CallError
	if !errors.Is(err, services.ErrNoRoute) || !errors.As(err, &ce) {
		t.Fatalf("err %v, want a *rpc.CallError wrapping ErrNoRoute", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("no route took %v", d)
	}
	// default$ covers this case too.
	rep, err := caller.Act(ctx, "role:"+ghost, map[string]any{"default$": 1})
	if err != nil || string(rep.Body) != "1" {
		t.Errorf("default$ on broker no-route: %v %v", rep, err)
	}
}

func TestRabbitDeadlineEndToEnd(t *testing.T) {
	e := newRabbitEnv(t)
	name := e.name("slow")
	deadlines := make(chan time.Time, 1)
	e.svc(name, "1.0.0", func(s *services.Service) {
		_ = s.Add("role:slow", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
			d, _ := ctx.Deadline()
			deadlines <- d
			<-ctx.Done()
			return nil, ctx.Err()
		}))
	})
	caller := e.svc(e.name("caller"), "1.0.0", nil)
	waitFor(t, caller, "role:slow")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	start := time.Now()
	_, err := caller.Act(ctx, "role:slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, rpc.ErrTimeout) {
		t.Fatalf("err %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("caller waited %v past a 300ms deadline", d)
	} else {
		t.Logf("caller gave up after %v (deadline 300ms): %v", d, err)
	}
	select {
	case got := <-deadlines:
		if got.IsZero() || got.Sub(want) > 5*time.Millisecond || want.Sub(got) > 5*time.Millisecond {
			t.Errorf("handler deadline %v, caller's %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler never ran")
	}
}
