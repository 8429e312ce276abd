package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/services"
)

// errNoAddress is the usage error of a command run without a broker.
var errNoAddress = inputErrorf("no broker address: set PATBUS_AMQP_URL or pass --amqp amqp://user:pass@host:5672/vhost")

// connectError is a broker that could not be reached within the timeout.
type connectError struct {
	addr    string // redacted
	timeout time.Duration
	err     error
}

func (e *connectError) Error() string {
	reason := e.err.Error()
	// The bus says "bus: dial rabbitmq (ADDR): bus: disconnected: context
	// deadline exceeded (last error: ADDR: REASON)", or, after its
	// attempts, "...: gave up after N attempts: ADDR: REASON": keep the
	// reason.
	if i := strings.LastIndex(reason, "(last error: "); i >= 0 {
		reason = strings.TrimSuffix(reason[i+len("(last error: "):], ")")
	} else if i := strings.Index(reason, " attempts: "); i >= 0 && strings.Contains(reason, "gave up after") {
		reason = reason[i+len(" attempts: "):]
	} else if errors.Is(e.err, context.DeadlineExceeded) {
		reason = "no answer"
	}
	if j := strings.Index(reason, ": "); j >= 0 && strings.Contains(reason[:j], "://") {
		reason = reason[j+2:]
	}
	return fmt.Sprintf("cannot connect to RabbitMQ at %s within %s: %s", e.addr, e.timeout, reason)
}

func (e *connectError) Unwrap() error { return e.err }

// dial opens the broker named by --amqp or PATBUS_AMQP_URL, giving up after
// --timeout. The caller closes it.
//
// A command that runs to an end (act, emit, enqueue, dlq, ...) also gives
// up on a connection lost midway after a few attempts to get it back, so
// that it never waits for a broker that is gone: its pending confirms then
// resolve as unconfirmed and it says so. tail and repl, which are meant to
// run for long, reconnect for as long as they run (dialForever).
func (a *app) dial(ctx context.Context) (bus.Broker, error) {
	return a.dialWith(ctx, bus.WithMaxReconnects(20))
}

// dialForever is dial for long-running commands: the broker reconnects
// until the command ends.
func (a *app) dialForever(ctx context.Context) (bus.Broker, error) {
	return a.dialWith(ctx)
}

func (a *app) dialWith(ctx context.Context, extra ...bus.Option) (bus.Broker, error) {
	addr := strings.TrimSpace(a.opts.amqp)
	if addr == "" {
		return nil, errNoAddress
	}
	timeout := a.opts.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	opts := append([]bus.Option{
		bus.WithConnectionName("patbus-cli"),
		bus.WithDialTimeout(timeout),
		bus.WithReconnectBackoff(50*time.Millisecond, time.Second),
	}, extra...)
	b, err := bus.Open(dctx, addr, opts...)
	if err != nil {
		if errors.Is(err, bus.ErrInvalidConfig) {
			return nil, &inputError{msg: a.redact(err.Error())}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &connectError{addr: bus.Redact(addr, addr), timeout: timeout, err: err}
	}
	return b, nil
}

// session opens a broker with dial and a services client on it (client);
// closeAll closes both.
func (a *app) session(ctx context.Context, dial func(context.Context) (bus.Broker, error)) (cl *services.Service, closeAll func(), err error) {
	b, err := dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	cl, err = a.client(b)
	if err != nil {
		_ = b.Close()
		return nil, nil, err
	}
	return cl, func() { _ = cl.Close(); _ = b.Close() }, nil
}

// client makes a services client on b (services.NewClient): it learns the
// catalog from the registry exchange, and with --consul (or
// CONSUL_HTTP_ADDR) routes only to versions Consul knows as healthy.
func (a *app) client(b bus.Broker, extra ...services.Option) (*services.Service, error) {
	opts := []services.Option{
		services.WithBroker(b),
		services.WithExchanges(a.opts.act, a.opts.registry),
		services.WithTimeout(a.opts.timeout),
	}
	if a.opts.consul != "" {
		opts = append(opts, services.WithConsul(a.opts.consul))
	}
	return services.NewClient(append(opts, extra...)...)
}
