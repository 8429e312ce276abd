package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/internal/testenv"
)

// Source says where the components of a test binary came from.
type Source string

const (
	// FromEnvironment: every component the tests get was named in the
	// environment; nothing was started.
	FromEnvironment Source = "from the environment"
	// FromTestcontainers: the components the environment lacked were
	// started as containers (the others still came from the environment).
	FromTestcontainers Source = "testcontainers"
)

// startTimeout bounds the start of all containers, image pulls included.
const startTimeout = 10 * time.Minute

// stopTimeout bounds the removal of the containers after the tests.
const stopTimeout = 2 * time.Minute

// component is one real service: the variable that names it and how a
// container of it starts.
type component struct {
	name  string // for logs: "RabbitMQ"
	env   string // the variable that holds its address
	start func(ctx context.Context) (addr string, stop func(context.Context) error, err error)
}

// all lists the components in a fixed order.
func all() []component {
	return []component{
		{"RabbitMQ", "PATBUS_AMQP_URL", startRabbitMQ},
		{"Consul", "CONSUL_HTTP_ADDR", startConsul},
		{"MongoDB", "MONGODB_URI", startMongoDB},
		{"Redis", "PATBUS_REDIS_ADDR", startRedis},
	}
}

// Set is what Start set up for one test binary.
type Set struct {
	// Source tells whether any container was started.
	Source Source
	// Started names the components that run in containers, Missing those
	// that neither the environment nor a container provides.
	Started, Missing []string

	stops []func(context.Context) error
}

// Main sets up the components with Start, runs the tests, stops the
// containers it started and returns the exit code for os.Exit. It logs the
// choice to standard error. If a container fails to start, the tests still
// run: those that need the missing component skip, or fail where
// testenv.Required() is true.
func Main(m *testing.M) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	set, err := Start(ctx, log)
	cancel()
	if err != nil {
		log.Error("components: not all containers started", "err", err)
	}
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := set.Close(ctx); err != nil {
		log.Error("components: stop containers", "err", err)
	}
	return code
}

// Start takes every component named in the environment as it is and, when
// some are not and a Docker engine answers, starts those in containers
// (all at once) and sets their variables in this process's environment,
// for internal/testenv to read. It logs what it chose to log (nil
// discards). The returned Set is never nil; Close stops what it started,
// also when Start returns an error because some container failed.
func Start(ctx context.Context, log *slog.Logger) (*Set, error) {
	return start(ctx, log, dockerHealth, all())
}

// start is Start with the Docker check and the components given, so that
// the choice can be tested without a Docker engine.
func start(ctx context.Context, log *slog.Logger, docker func(context.Context) error, comps []component) (*Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var given, missing []component
	for _, c := range comps {
		if os.Getenv(c.env) != "" {
			given = append(given, c)
		} else {
			missing = append(missing, c)
		}
	}
	set := &Set{Source: FromEnvironment}
	if len(missing) == 0 {
		log.Info("components: " + string(FromEnvironment))
		return set, nil
	}
	if err := docker(ctx); err != nil {
		set.Missing = names(missing)
		log.Info("components: "+string(FromEnvironment), "missing", strings.Join(set.Missing, ","), "docker", err.Error())
		return set, nil
	}
	set.Source = FromTestcontainers
	log.Info("components: "+string(FromTestcontainers), "starting", strings.Join(names(missing), ","), "from_environment", strings.Join(names(given), ","))

	type result struct {
		addr string
		stop func(context.Context) error
		err  error
	}
	results := make([]result, len(missing))
	var wg sync.WaitGroup
	for i, c := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.addr, r.stop, r.err = c.start(ctx)
		}()
	}
	wg.Wait()

	var errs []error
	for i, c := range missing {
		r := results[i]
		if r.stop != nil {
			set.stops = append(set.stops, r.stop)
		}
		if r.err != nil {
			set.Missing = append(set.Missing, c.name)
			errs = append(errs, fmt.Errorf("components: start %s: %w", c.name, r.err))
			continue
		}
		if err := os.Setenv(c.env, r.addr); err != nil {
			set.Missing = append(set.Missing, c.name)
			errs = append(errs, fmt.Errorf("components: set %s: %w", c.env, err))
			continue
		}
		set.Started = append(set.Started, c.name)
		log.Info("components: started", "component", c.name, c.env, r.addr)
	}
	if len(set.Missing) > 0 && testenv.Required() {
		log.Error("components: missing where they are required", "missing", strings.Join(set.Missing, ","))
	}
	return set, errors.Join(errs...)
}

// Close stops the containers Start started, each within ctx, and returns
// their errors joined. It is safe to call on a Set that started nothing.
func (s *Set) Close(ctx context.Context) error {
	var errs []error
	for _, stop := range s.stops {
		errs = append(errs, stop(ctx))
	}
	s.stops = nil
	return errors.Join(errs...)
}

func names(cs []component) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}
