package workers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/logx"
)

// SeenStore records the ids of the items whose handlers succeeded, for
// Dedup. Its methods are called from many goroutines at once. MemorySeen
// keeps them in memory, for one process; a store shared by every worker
// of a queue (a database) catches the duplicates that reach another
// process too.
type SeenStore interface {
	// Has reports whether id has been recorded (and not forgotten since).
	// Dedup calls it before it runs the handler.
	Has(ctx context.Context, id string) (bool, error)
	// Seen records id if it is not recorded yet and reports whether it
	// already was (insert if absent, in one step). Dedup calls it once
	// the handler succeeded.
	Seen(ctx context.Context, id string) (bool, error)
}

// markTimeout bounds the Seen call that records an item as done: the
// handler has succeeded by then, and the worker's stop must not cut the
// record short.
const markTimeout = 10 * time.Second

// Dedup returns middleware that runs each item's handler at most once per
// item id, as far as store remembers: an item whose id store has recorded
// is acked without running the handler; an item whose handler succeeds is
// recorded. Give it to a Queue with WithMiddleware.
//
// The id is Item.ID, the message id Enqueue gives each item: one item
// keeps it across its retries and redeliveries, so Dedup catches the
// duplicates that at-least-once delivery makes: an item delivered again
// because its ack was lost (the worker crashed or lost its connection
// after the handler succeeded; it arrives with Redelivered set), and an
// item the producer's broker client sent twice, which arrives as a
// separate message with the same id and Redelivered false. Two calls of
// Enqueue with the same data make two items with two ids: Dedup does not
// catch those. Items without an id (from producers that set none) pass
// through.
//
// An id is recorded only once its handler returned nil, never before: an
// item whose handler fails is not recorded, so its retries run, and an
// item whose worker crashes mid-handler runs again when it is delivered
// again. So two copies of one item handled at the same moment both run,
// and an item whose handler succeeded is handled again if the worker
// stops before the record is made; handlers whose effect must happen
// exactly once still need a unique key in their own store. If store
// cannot say whether an item was handled, the item fails (and is retried
// like any failure); if it cannot record a success, the item is acked all
// the same and the failure logged on log (nil discards).
func Dedup(store SeenStore, log *slog.Logger) patbus.Middleware {
	log = logx.OrDiscard(log)
	return func(next patbus.Handler) patbus.Handler {
		return patbus.HandlerFunc(func(ctx context.Context, it *Item) error {
			if it.ID == "" {
				return next.Handle(ctx, it)
			}
			done, err := store.Has(ctx, it.ID)
			if err != nil {
				return fmt.Errorf("workers: dedup: look up item %s: %w", it.ID, err)
			}
			if done {
				log.Debug("workers: duplicate item skipped", "queue", it.Queue, "id", it.ID, "tx", it.Tx, "redelivered", it.Redelivered)
				return nil
			}
			if err := next.Handle(ctx, it); err != nil {
				return err
			}
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
			defer cancel()
			if _, err := store.Seen(mctx, it.ID); err != nil {
				log.Warn("workers: dedup: cannot record a handled item; a duplicate of it would run", "queue", it.Queue, "id", it.ID, "tx", it.Tx, "err", err)
			}
			return nil
		})
	}
}

// Defaults of NewMemorySeen.
const (
	// DefaultSeenCapacity is how many ids a MemorySeen keeps at most.
	DefaultSeenCapacity = 100_000
	// DefaultSeenTTL is how long a MemorySeen remembers an id.
	DefaultSeenTTL = time.Hour
)

// MemorySeen is a SeenStore in memory, for the workers of one process:
// bounded (the oldest ids are forgotten first when it is full) and with
// expiry (an id is forgotten after its time to live). Its methods are
// safe for concurrent use, take constant time on average, and never fail.
type MemorySeen struct {
	capacity int
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	ids   map[string]time.Time // id → when it was recorded
	order []seenEntry          // the ids by when they were recorded, oldest at head
	head  int
}

type seenEntry struct {
	id string
	at time.Time
}

// NewMemorySeen returns an empty MemorySeen that keeps at most capacity
// ids, each for ttl. A capacity below 1 means DefaultSeenCapacity, a ttl
// below or at zero DefaultSeenTTL.
func NewMemorySeen(capacity int, ttl time.Duration) *MemorySeen {
	if capacity < 1 {
		capacity = DefaultSeenCapacity
	}
	if ttl <= 0 {
		ttl = DefaultSeenTTL
	}
	return &MemorySeen{capacity: capacity, ttl: ttl, now: time.Now, ids: make(map[string]time.Time)}
}

// Has reports whether id is recorded and its time to live has not passed.
func (s *MemorySeen) Has(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.ids[id]
	return ok && s.now().Sub(at) < s.ttl, nil
}

// Seen records id, unless it is recorded and alive, and reports whether it
// was. When the store is full, the oldest id is forgotten to make room.
func (s *MemorySeen) Seen(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expire(now)
	if _, ok := s.ids[id]; ok {
		return true, nil
	}
	for len(s.ids) >= s.capacity && s.head < len(s.order) {
		s.pop()
	}
	s.ids[id] = now
	s.order = append(s.order, seenEntry{id: id, at: now})
	return false, nil
}

// Len returns the number of ids recorded and not yet expired or evicted.
func (s *MemorySeen) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(s.now())
	return len(s.ids)
}

// expire forgets the ids whose time to live has passed: they are the
// oldest, at the head of order.
func (s *MemorySeen) expire(now time.Time) {
	for s.head < len(s.order) && now.Sub(s.order[s.head].at) >= s.ttl {
		s.pop()
	}
}

// pop forgets the oldest id.
func (s *MemorySeen) pop() {
	e := s.order[s.head]
	s.order[s.head] = seenEntry{}
	s.head++
	if at, ok := s.ids[e.id]; ok && at.Equal(e.at) {
		delete(s.ids, e.id)
	}
	if s.head > 1024 && s.head*2 > len(s.order) {
		// Reclaim the consumed head of order.
		n := copy(s.order, s.order[s.head:])
		clear(s.order[n:])
		s.order = s.order[:n]
		s.head = 0
	}
}
