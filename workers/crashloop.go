package workers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// errRedelivered is what the crash-loop guard returns for an item the
// broker delivered again; settle then counts the redelivery.
var errRedelivered = errors.New("workers: item delivered again; counted and sent back to the queue")

// guard is the crash-loop guard, the outermost of the worker's middleware.
//
// An item the broker delivers again (Redelivered) was held by a worker
// that stopped, crashed or lost its connection before it settled the item.
// If that worker was killed by the item itself (a crash no recover sees:
// out of memory, a fatal runtime error, a segfault in C code), running it
// again kills the next worker too, for ever. The broker's redelivered flag
// does not count, and an item in a queue cannot be changed, so the guard
// does not run such an item: settle publishes a copy with the count in
// HeaderDeliveries raised, confirmed, to the back of the work queue and
// acks the original (redeliver). The copy arrives as a fresh delivery
// and runs; the count it carries tells the next redelivery where it
// stands. Once the count exceeds WithMaxRedeliveries the item goes to the
// dead-letter queue with reason "crash-loop" instead.
//
// A copy that carries a count is marked Redelivered for the handler and
// the middleware, as the broker's own redelivery would have been: it may
// have been handled already.
//
// A copy may reach a handler of this worker before the original is acked
// (the broker delivers the copy as soon as it confirmed it). Were the copy
// to crash the process then, the original would come back as well, and
// every round of the loop would double the copies. So a copy waits until
// this worker has settled the original it came from.
func (q *Queue) guard(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, it *Item) error {
		if it.Redelivered {
			return errRedelivered
		}
		if len(it.Headers) > 0 && deliveriesOf(it.Headers) > 0 {
			if err := q.copies.wait(ctx, it.ID); err != nil {
				return err
			}
			it.Redelivered = true
		}
		return next.Handle(ctx, it)
	})
}

// redeliver counts one more redelivery of the item: it publishes a copy
// with the count raised to the work queue, or, past the limit, to the
// dead-letter queue, and acks the original once the copy is confirmed. If
// the copy cannot be published, the original goes back unchanged.
func (q *Queue) redeliver(ctx context.Context, d *bus.Delivery, it *Item) {
	release := q.copies.hold(it.ID)
	defer release()
	n := deliveriesOf(d.Headers) + 1
	h := copyHeaders(d.Headers)
	h[HeaderDeliveries] = int64(n)
	if n > q.cfg.maxRedeliveries {
		cause := fmt.Errorf("workers: crash loop: delivered again %d times (at most %d), its worker stopping or crashing each time", n, q.cfg.maxRedeliveries)
		if it.LastError != "" {
			cause = fmt.Errorf("%w; last error of a failed attempt: %s", cause, it.LastError)
		}
		q.deadLetter(ctx, d, it, h, ReasonCrashLoop, cause)
		return
	}
	if err := q.publishCopy(ctx, q.name, d, h); err != nil {
		q.log.Warn("workers: cannot count a redelivery; handing the item back", "id", it.ID, "tx", it.Tx, "deliveries", n, "err", err)
		q.requeue(d, it)
		return
	}
	q.log.Debug("workers: item delivered again; counted and sent to the back of the queue", "id", it.ID, "tx", it.Tx, "deliveries", n)
	q.ack(d, it)
}

// deliveriesOf reads HeaderDeliveries: 0 when absent or odd, never more
// than math.MaxInt32.
func deliveriesOf(h map[string]any) int {
	n, _ := wire.Int64(h[HeaderDeliveries])
	return int(min(max(n, 0), math.MaxInt32))
}

// copyHolds tracks the items whose copies this worker is publishing and
// whose originals it has not settled yet, by item id.
type copyHolds struct {
	mu    sync.Mutex
	holds map[string]*copyHold
}

type copyHold struct {
	n    int           // settles under way for the id
	done chan struct{} // closed when the last of them ended
}

// hold marks the item id as being copied; the returned func ends that.
func (c *copyHolds) hold(id string) (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds == nil {
		c.holds = make(map[string]*copyHold)
	}
	h := c.holds[id]
	if h == nil {
		h = &copyHold{done: make(chan struct{})}
		c.holds[id] = h
	}
	h.n++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if h.n--; h.n == 0 {
			close(h.done)
			delete(c.holds, id)
		}
	}
}

// wait returns once no copy of the item id is under way, or with ctx's
// error when ctx ends first.
func (c *copyHolds) wait(ctx context.Context, id string) error {
	c.mu.Lock()
	h := c.holds[id]
	c.mu.Unlock()
	if h == nil {
		return nil
	}
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
