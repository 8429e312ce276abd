package services

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// Run starts the services (Ready) and serves until ctx ends or the process
// receives SIGINT or SIGTERM; then it drains them all at once, as a
// process manager's kill timeout expects: each service leaves the catalog
// (and deregisters from Consul) first, stops taking requests, lets those
// in flight finish within its drain timeout (WithDrainTimeout, default
// DefaultDrainTimeout), gives back to its queue what cannot finish in
// time, and closes. A second signal during the drain stops at once: what
// is still in flight goes back to the queue, for another instance. The
// signal that ended a ctx made by signal.NotifyContext is the first one,
// not a second.
//
// Run returns nil after a clean drain, the first start error if a service
// does not start (the others are closed), and an error wrapping
// context.DeadlineExceeded when a drain ran out of time or
// context.Canceled when a second signal cut it short. It does not close
// the broker the services were given.
func Run(ctx context.Context, svcs ...*Service) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return run(ctx, sigs, svcs)
}

// run is Run with the signals it listens to given.
func run(ctx context.Context, sigs <-chan os.Signal, svcs []*Service) error {
	for _, s := range svcs {
		if err := s.Ready(ctx); err != nil {
			for _, o := range svcs {
				_ = o.Close()
			}
			return err
		}
	}
	var why string
	echo := false // a signal on sigs is the one that ended ctx
	select {
	case <-ctx.Done():
		why = "context ended"
		if signalEnded(ctx) {
			// signal.NotifyContext's context: the signal that ended it
			// reaches sigs too, before or after, and is not a second one
			// to cut the drain with.
			why = context.Cause(ctx).Error()
			select {
			case <-sigs:
			default:
				echo = true
			}
		}
	case sig := <-sigs:
		why = sig.String()
	}
	for _, s := range svcs {
		s.log.Info("services: draining", "service", s.name, "version", s.version, "instance", s.instance,
			"reason", why, "timeout", s.cfg.drainTimeout.String())
	}
	// A second signal cancels every drain at once.
	cut, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case <-sigs:
				if echo {
					echo = false
					continue
				}
				cancel()
				return
			case <-cut.Done():
				return
			}
		}
	}()
	errs := make([]error, len(svcs))
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, stop := context.WithTimeout(cut, s.cfg.drainTimeout)
			defer stop()
			if err := s.Shutdown(dctx); err != nil {
				errs[i] = fmt.Errorf("services: drain %s@%s: %w", s.name, s.version, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// signalEnded reports whether ctx was ended by a signal.NotifyContext,
// whose cause reads "<signal> signal received".
func signalEnded(ctx context.Context) bool {
	c := context.Cause(ctx)
	return c != nil && strings.HasSuffix(c.Error(), " signal received")
}

// Run is Run(ctx, s): it serves s until ctx ends or the process receives
// SIGINT or SIGTERM, then drains it.
func (s *Service) Run(ctx context.Context) error { return Run(ctx, s) }
