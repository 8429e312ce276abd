package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/patbus/patbus"
)

// guard runs call, the handler of a local act, on a goroutine of its own,
// so that the caller has its answer or its deadline, whichever comes
// first: a handler that ignores its context cannot hold the caller past
// the deadline; the caller gets a timeout at the deadline, and the
// handler's late answer is dropped. With WithInlineLocalActs the handler
// runs on the caller's goroutine instead (no guard), which costs less (see
// the benchmarks) but waits for the handler however long it takes.
func (s *Service) guard(ctx context.Context, a *action, call func(ctx context.Context) (any, error)) (any, error) {
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // it answered as the deadline passed
			return r.v, r.err
		default:
		}
		return nil, fmt.Errorf("services: local action %s did not answer before the deadline: %w: %w", a.canon, ErrTimeout, ctx.Err())
	}
}

// recoverPanic, deferred by a handler's caller, turns the handler's panic
// into an error in *err, logged with the stack, as the engine does for
// acts that arrive over the broker.
func (s *Service) recoverPanic(ctx context.Context, a *action, tx string, err *error) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("%w: %v", patbus.ErrPanic, v)
		s.log.LogAttrs(ctx, slog.LevelError, "services: handler panicked",
			slog.String("tx", tx), slog.String("service", s.name), slog.String("pattern", a.canon),
			slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
	}
}

// lateError is the error of a local act whose handler answered after the
// deadline, on the caller's goroutine (WithInlineLocalActs).
func lateError(a *action, ctx context.Context) error {
	return fmt.Errorf("services: local action %s answered after the deadline: %w: %w", a.canon, ErrTimeout, ctx.Err())
}

// ctxErr is a context's error as an act reports it: a deadline that
// passed also wraps ErrTimeout, as every other timeout of an act does.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}
