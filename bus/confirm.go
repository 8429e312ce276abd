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
	once sync.Once
	done chan struct{}
	err  error
}

func newConfirmation() *Confirmation { return &Confirmation{done: make(chan struct{})} }

// resolve sets the outcome; only the first call counts.
func (c *Confirmation) resolve(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
	})
}

// Done is closed once the outcome is known.
func (c *Confirmation) Done() <-chan struct{} { return c.done }

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
