package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/patbus/patbus"
)

// maxIdleRunners bounds the goroutines a service keeps parked for local
// acts: past it, a goroutine that finished its act ends instead of
// waiting for the next.
const maxIdleRunners = 32

// localRunner runs the handlers of local acts on goroutines of their own
// (see guard), kept for reuse: a goroutine that finished an act waits for
// the next instead of ending, so that an act costs a hand-over rather than
// a new goroutine, and keeps the stack its handler grew (a fresh goroutine
// grows its stack again for every JSON encoding). At most maxIdleRunners
// wait; they end when the service closes.
type localRunner struct {
	jobs chan *localJob // unbuffered: a send succeeds only to a waiting goroutine
	quit chan struct{}  // closed by the service's Close
	idle atomic.Int32
	pool sync.Pool // of *localJob
}

func newLocalRunner() *localRunner {
	return &localRunner{jobs: make(chan *localJob), quit: make(chan struct{})}
}

// localJob is one local act handed to a runner: its handler, typed (h
// and in) or not (msg), and, once done is signalled, its result.
type localJob struct {
	s   *Service
	ctx context.Context
	a   *action
	tx  string
	h   typedAction
	in  any
	msg *Message

	v    any
	err  error
	done chan struct{} // capacity 1: the runner never waits on it
}

func (j *localJob) run() {
	if j.msg != nil {
		j.v, j.err = j.s.invoke(j.ctx, j.a, j.msg)
	} else {
		j.v, j.err = j.s.invokeTyped(j.ctx, j.a, j.h, j.in, j.tx)
	}
	j.done <- struct{}{} // the last touch: the caller may reuse j at once
}

func (r *localRunner) job() *localJob {
	if j, ok := r.pool.Get().(*localJob); ok {
		return j
	}
	return &localJob{done: make(chan struct{}, 1)}
}

// recycle clears j and keeps it for another act; only a job whose done
// was received may be recycled.
func (r *localRunner) recycle(j *localJob) {
	*j = localJob{done: j.done}
	r.pool.Put(j)
}

// start hands j to a waiting goroutine, or to a new one.
func (r *localRunner) start(j *localJob) {
	select {
	case r.jobs <- j:
	default:
		go r.work(j)
	}
}

func (r *localRunner) work(j *localJob) {
	for {
		j.run()
		if r.idle.Add(1) > maxIdleRunners {
			r.idle.Add(-1)
			return
		}
		select {
		case j = <-r.jobs:
			r.idle.Add(-1)
		case <-r.quit:
			r.idle.Add(-1)
			return
		}
	}
}

// stop makes the waiting goroutines end; those running a handler end
// when it returns.
func (r *localRunner) stop() { close(r.quit) }

// guard runs j, a local act, on a runner goroutine, so that the caller
// has its answer or its deadline, whichever comes first: a handler that
// ignores its context cannot hold the caller past the deadline; the
// caller gets a timeout at the deadline, and the handler's late answer is
// dropped. With WithInlineLocalActs the handler runs on the caller's
// goroutine instead (no guard), which costs less (see the benchmarks) but
// waits for the handler however long it takes.
//
// The caller waits on the parent context's Done, which carries its
// deadline if it has one, and on the service's deadline slot (see
// deadlineSlots) only when the act's context adds the service's default
// deadline: asking actx for Done would make it a timer and a watch of the
// parent for every act.
func (s *Service) guard(actx *actContext, j *localJob) (any, error) {
	r := s.runner
	var timeout <-chan struct{}
	if !actx.deadline.IsZero() {
		timeout = s.deadlines.after(actx.deadline)
	}
	r.start(j)
	select {
	case <-j.done:
		return r.finish(j)
	case <-actx.Context.Done():
	case <-timeout:
	}
	select {
	case <-j.done: // it answered as the deadline passed
		return r.finish(j)
	default:
	}
	// j stays with the runner, which writes the late answer into it.
	return nil, fmt.Errorf("services: local action %s did not answer before the deadline: %w: %w", j.a.canon, ErrTimeout, actx.Err())
}

// finish returns the result of j, whose done was received, and recycles
// it.
func (r *localRunner) finish(j *localJob) (any, error) {
	v, err := j.v, j.err
	r.recycle(j)
	return v, err
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
