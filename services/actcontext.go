package services

import (
	"context"
	"sync"
	"time"

	"github.com/patbus/patbus/internal/wire"
)

// actContext is the context a local act's handler runs with, made in one
// allocation: the caller's context with the act's tx, its action (for
// Prior) and, when the caller's context has no deadline, the service's
// default one. The timer of that deadline is made only if something waits
// on Done; most handlers never do, and an act then costs no timer.
type actContext struct {
	context.Context
	tx     string
	action *action

	// deadline is set when this context adds one (the parent has none).
	deadline time.Time
	mu       sync.Mutex
	done     chan struct{}
	err      error
	stops    [2]func() bool // the timer and the parent's cancellation watch
}

// newActContext makes the context of a's handler. timeout, when positive,
// is the deadline it adds if parent has none; zero adds none (an act from
// the broker whose caller sent no deadline).
func newActContext(parent context.Context, tx string, a *action, timeout time.Duration) *actContext {
	c := &actContext{Context: parent, tx: tx, action: a}
	if _, ok := parent.Deadline(); !ok && timeout > 0 {
		c.deadline = time.Now().Add(timeout)
	}
	return c
}

func (c *actContext) Value(key any) any {
	switch {
	case key == actionKey{}:
		return c.action
	case wire.IsTxKey(key):
		return c.tx
	}
	return c.Context.Value(key)
}

func (c *actContext) Deadline() (time.Time, bool) {
	if c.deadline.IsZero() {
		return c.Context.Deadline()
	}
	return c.deadline, true
}

func (c *actContext) Done() <-chan struct{} {
	if c.deadline.IsZero() {
		return c.Context.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if err := c.Context.Err(); err != nil {
			c.cancelLocked(context.Cause(c.Context))
		} else if d := time.Until(c.deadline); d <= 0 {
			c.cancelLocked(context.DeadlineExceeded)
		} else {
			c.stops[0] = time.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded) }).Stop
			c.stops[1] = context.AfterFunc(c.Context, func() { c.cancel(context.Cause(c.Context)) })
		}
	}
	return c.done
}

func (c *actContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLocked(err)
}

func (c *actContext) cancelLocked(err error) {
	if c.err == nil {
		if err == nil {
			err = context.Canceled
		}
		c.err = err
		close(c.done)
	}
}

func (c *actContext) Err() error {
	if c.deadline.IsZero() {
		return c.Context.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.err
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release stops the timer and the watch, if Done made them.
func (c *actContext) release() {
	if c.deadline.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, stop := range c.stops {
		if stop != nil {
			stop()
		}
	}
}
