package services_test

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/services"
)

// startRun runs s as Run does, listening to the signals the test sends on
// the returned channel, and returns its result channel.
func startRun(t *testing.T, s *services.Service) (chan<- os.Signal, <-chan error) {
	t.Helper()
	sigs := make(chan os.Signal, 2)
	done := make(chan error, 1)
	go func() { done <- services.RunWithSignals(context.Background(), sigs, s) }()
	return sigs, done
}

// inFlight is an act in flight to a service whose action waits for
// release.
type inFlight struct {
	name     string
	svc      *services.Service
	caller   *services.Service
	release  chan struct{}
	answered chan error // the act's outcome
}

// actInFlight starts a service on e whose action cmd:slow answers "done"
// once released, acts on it from a caller, and returns when the action
// has started.
func actInFlight(t *testing.T, e *env, prefix string, opts ...services.Option) *inFlight {
	t.Helper()
	f := &inFlight{name: e.name(prefix), release: make(chan struct{}), answered: make(chan error, 1)}
	started := make(chan struct{})
	f.svc = e.svc(f.name, "1.0.0", func(s *services.Service) {
		_ = s.Add("cmd:slow", services.HandlerFunc(func(ctx context.Context, _ *services.Message) (any, error) {
			close(started)
			<-f.release
			return "done", nil
		}))
	}, opts...)
	f.caller = e.svc(e.name("caller"), "1.0.0", nil)
	waitFor(t, f.caller, "cmd:slow")
	go func() {
		rep, err := f.caller.Act(ctxT(t), "cmd:slow", nil)
		if err == nil && string(rep.Body) != `"done"` {
			err = errors.New("answered " + string(rep.Body))
		}
		f.answered <- err
	}()
	<-started
	return f
}

// expectCleanDrain checks a Run, whose result done gives, that drains:
// the instance leaves the catalog, Run waits for the act in flight, the
// act gets its answer once released, and Run returns nil.
func (f *inFlight) expectCleanDrain(t *testing.T, done <-chan error) {
	t.Helper()
	if err := waitGone(f.caller, f.name); err != nil {
		t.Error(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with an act in flight", err)
	default:
	}
	close(f.release)
	if err := <-f.answered; err != nil {
		t.Errorf("the act in flight: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after a clean drain", err)
	}
}

// SIGTERM during an act: the instance leaves the catalog before it
// drains, the act gets its answer, Run returns nil.
func TestRunDrainsOnSIGTERM(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		f := actInFlight(t, e, "drain")
		sigs, done := startRun(t, f.svc)
		sigs <- syscall.SIGTERM
		f.expectCleanDrain(t, done)
	})
}

// A drain that runs out of time gives the request back: another instance
// answers it, and Run says the drain was cut.
func TestRunDrainTimeoutGivesRequestsBack(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("giveback")
		started := make(chan struct{})
		stuck := e.svc(name, "1.0.0", func(s *services.Service) {
			_ = s.Add("cmd:work", services.HandlerFunc(func(ctx context.Context, _ *services.Message) (any, error) {
				close(started)
				<-ctx.Done() // never finishes by itself
				return nil, ctx.Err()
			}))
		}, services.WithDrainTimeout(200*time.Millisecond))
		sigs, done := startRun(t, stuck)
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "cmd:work")
		answered := make(chan error, 1)
		go func() {
			_, err := caller.Act(ctxT(t), "cmd:work", nil)
			answered <- err
		}()
		<-started
		// A second instance of the same version, which does finish.
		e.svc(name, "1.0.0", func(s *services.Service) {
			_ = s.Add("cmd:work", services.HandlerFunc(func(context.Context, *services.Message) (any, error) { return "ok", nil }))
		})
		sigs <- syscall.SIGTERM
		if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want the drain's deadline", err)
		}
		if err := <-answered; err != nil {
			t.Errorf("the act given back was not answered by the other instance: %v", err)
		}
	})
}

// A signal that also ends Run's context, as in a main that makes its
// context with signal.NotifyContext, is one signal: the drain runs to its
// end rather than being cut as by a second signal.
func TestRunSignalThatEndsTheContextCountsOnce(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		f := actInFlight(t, e, "once", services.WithDrainTimeout(time.Minute))
		// One real signal, to a context from signal.NotifyContext and to
		// Run's channel, as in a main that passes the one to Run, which
		// listens on the other. It arrives before Run waits for it, as
		// when it comes while the services start: Run then finds the
		// context ended and the signal on its channel, or on its way
		// there (the process hands a signal to its channels in no set
		// order, so the context may end first).
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGUSR1)
		defer stop()
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGUSR1)
		defer signal.Stop(sigs)
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		<-ctx.Done()
		done := make(chan error, 1)
		go func() { done <- services.RunWithSignals(ctx, sigs, f.svc) }()
		f.expectCleanDrain(t, done)
	})
}

// A second signal stops the drain at once.
func TestRunSecondSignalStopsAtOnce(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		started := make(chan struct{})
		svc := e.svc(e.name("impatient"), "1.0.0", func(s *services.Service) {
			_ = s.Add("cmd:hang", services.HandlerFunc(func(ctx context.Context, _ *services.Message) (any, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			}))
		}, services.WithDrainTimeout(time.Minute))
		sigs, done := startRun(t, svc)
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "cmd:hang")
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, _ = caller.Act(ctx, "cmd:hang", nil)
		}()
		<-started
		sigs <- syscall.SIGTERM
		sigs <- syscall.SIGINT
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the second signal did not stop the drain")
		}
	})
}

// waitGone waits until caller's catalog no longer lists service name.
func waitGone(caller *services.Service, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		gone := true
		for _, c := range caller.Catalog() {
			if c.Service == name {
				gone = false
			}
		}
		if gone {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New(name + " is still in the catalog")
}
