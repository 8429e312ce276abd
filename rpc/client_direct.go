package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/patbus/patbus/bus"
)

// replyConn is one bus.DirectReply of a Client in direct reply-to mode
// (WithDirectReplyTo). When its channel is lost, the Calls waiting on it
// fail at once (their replies cannot come any more) and the next Call
// opens a new one.
type replyConn struct {
	dr      bus.DirectReply
	replies <-chan *bus.Delivery
	dead    chan struct{} // closed once replies is seen closed or Publish failed for a lost channel
	cause   error         // why; set before dead is closed
}

// openDirect opens the Client's first DirectReply in NewClient, so that a
// broker that cannot do direct reply-to fails there.
func (c *Client) openDirect(ctx context.Context) error {
	_, err := c.directConn(ctx)
	return err
}

// directConn returns the live DirectReply, opening a new one when there is
// none (one Call opens it; the others wait for it, bounded by ctx).
func (c *Client) directConn(ctx context.Context) (*replyConn, error) {
	for {
		c.mu.Lock()
		rc, cause := c.rc, c.cause
		c.mu.Unlock()
		if cause != nil {
			return nil, cause
		}
		if rc != nil {
			select {
			case <-rc.dead:
			default:
				return rc, nil
			}
		}
		select {
		case c.openSem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctxError(ctx, nil)
		case <-c.done:
			continue // cause is set now
		}
		c.mu.Lock()
		same := c.rc == rc
		c.mu.Unlock()
		if !same { // another Call opened one meanwhile
			<-c.openSem
			continue
		}
		dr, err := c.replier.DirectReply(ctx)
		if err != nil {
			<-c.openSem
			if errors.Is(err, bus.ErrClosed) {
				err = fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return nil, fmt.Errorf("rpc: open direct reply-to: %w", err)
		}
		nrc := &replyConn{dr: dr, replies: dr.Deliveries(), dead: make(chan struct{})}
		c.mu.Lock()
		if c.cause != nil {
			c.mu.Unlock()
			<-c.openSem
			_ = dr.Close()
			continue
		}
		c.rc = nrc
		c.mu.Unlock()
		<-c.openSem
		return nrc, nil
	}
}

// directLost marks rc dead with cause (once) and forgets it, so that the
// next Call opens a new DirectReply.
func (c *Client) directLost(rc *replyConn, cause error) {
	c.mu.Lock()
	select {
	case <-rc.dead:
		c.mu.Unlock()
		return
	default:
	}
	if cause == nil {
		cause = rc.dr.Err()
	}
	if cause == nil {
		cause = fmt.Errorf("%w: direct reply-to closed", bus.ErrDisconnected)
	}
	switch {
	case c.cause != nil: // the Client closed it
		rc.cause = c.cause
	case errors.Is(cause, bus.ErrClosed):
		rc.cause = fmt.Errorf("%w: direct reply-to: %w", ErrClosed, cause)
	default:
		rc.cause = fmt.Errorf("rpc: direct reply-to channel lost, reply cannot arrive: %w", cause)
	}
	close(rc.dead)
	if c.rc == rc {
		c.rc = nil
	}
	c.mu.Unlock()
	_ = rc.dr.Close() // quick: the channel is gone
}

// publishDirect publishes msg through the live DirectReply. When the
// DirectReply turns out to be lost before the request was sent, it opens a
// new one and tries once more.
func (c *Client) publishDirect(ctx context.Context, exchange, key string, msg bus.Message) (*replyConn, *bus.Confirmation, error) {
	for attempt := 0; ; attempt++ {
		rc, err := c.directConn(ctx)
		if err != nil {
			return nil, nil, err
		}
		conf, err := rc.dr.Publish(ctx, exchange, key, msg)
		if err == nil {
			return rc, conf, nil
		}
		if attempt == 0 && ctx.Err() == nil && errors.Is(err, bus.ErrDisconnected) {
			c.directLost(rc, err)
			continue
		}
		return nil, nil, publishError(ctx, err)
	}
}

// closeDirect closes the live DirectReply at Client.Close.
func (c *Client) closeDirect() {
	c.mu.Lock()
	rc := c.rc
	c.rc = nil
	c.mu.Unlock()
	if rc != nil {
		_ = rc.dr.Close()
	}
}
