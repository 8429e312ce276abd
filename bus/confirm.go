package bus

import (
	"context"
	"fmt"
	"sync"
)

// Confirmation is the broker's answer to one Publish, which arrives later.
// It is safe for concurrent use; its methods may be called any number of
// times.
type Confirmation struct {
	mu      sync.Mutex
	settled bool
	done    chan struct{}
	failed  chan struct{} // made by Failed, on demand
	err     error
}

func newConfirmation() *Confirmation { return &Confirmation{done: make(chan struct{})} }

// resolve sets the outcome; only the first call counts.
func (c *Confirmation) resolve(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled {
		return
	}
	c.settled, c.err = true, err
	close(c.done)
	if err != nil && c.failed != nil {
		close(c.failed)
	}
}

// Done is closed once the outcome is known.
func (c *Confirmation) Done() <-chan struct{} { return c.done }

// Failed is closed once the outcome is known to be an error, and never
// for a confirmed message. A caller that waits for something else (a
// reply) and must stop only if the publish failed selects on it, and is not
// woken by a confirm it has no use for.
func (c *Confirmation) Failed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == nil {
		c.failed = make(chan struct{})
		if c.settled && c.err != nil {
			close(c.failed)
		}
	}
	return c.failed
}

// Err returns the outcome after Done is closed: nil when the broker
// confirmed the message; an error wrapping ErrNacked, ErrUnroutable (a
// *ReturnError) or ErrUnconfirmed otherwise. Before Done it returns nil.
func (c *Confirmation) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Wait blocks until the outcome is known or ctx ends, and returns the
// outcome as Err does. If ctx ends first, it returns an error wrapping both
// ErrUnconfirmed and ctx.Err(): the message may still arrive.
func (c *Confirmation) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		select {
		case <-c.done:
			return c.err
		default:
		}
		return fmt.Errorf("%w: %w", ErrUnconfirmed, ctx.Err())
	}
}

// PublishAndWait publishes msg and waits for the broker's confirm: a nil
// error means the broker has taken responsibility for the message.
func PublishAndWait(ctx context.Context, b Broker, exchange, key string, msg Message) error {
	c, err := b.Publish(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}
