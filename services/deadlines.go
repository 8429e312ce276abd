package services

import (
	"sync"
	"sync/atomic"
	"time"
)

// slotsPerTimeout sets how finely deadlineSlots divides time: a slot is
// the service's timeout over this, so that a local act's timeout comes at
// most a thousandth of it late (5 ms on DefaultTimeout's 5 s).
const slotsPerTimeout = 1000

// minSlot keeps slots of very short timeouts from costing a timer per act.
const minSlot = 50 * time.Microsecond

// deadlineSlots hands a local act's guard a channel that closes at its
// deadline or at most one slot after it. The acts whose deadlines fall in
// the same slot share one channel and one timer, where a timer of its own
// for every act cost about a tenth of a local act (Reset, then Stop, under
// the runtime's timer lock). The deadlines it serves are the ones an act's
// context adds (now plus the service's timeout), so they arrive in order
// and the current slot serves nearly every act with one atomic load.
type deadlineSlots struct {
	width time.Duration
	cur   atomic.Pointer[deadlineSlot]
	mu    sync.Mutex // serialises making slots
}

// deadlineSlot is a channel closed when its time has come.
type deadlineSlot struct {
	at   time.Time
	done chan struct{}
}

func newDeadlineSlots(timeout time.Duration) *deadlineSlots {
	return &deadlineSlots{width: max(timeout/slotsPerTimeout, minSlot)}
}

// after returns a channel closed at deadline or no more than one slot
// width after it, never before it.
func (d *deadlineSlots) after(deadline time.Time) <-chan struct{} {
	if s := d.cur.Load(); s != nil && d.fits(s, deadline) {
		return s.done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && d.fits(s, deadline) {
		return s.done
	}
	s := &deadlineSlot{at: deadline.Add(d.width), done: make(chan struct{})}
	time.AfterFunc(time.Until(s.at), func() { close(s.done) })
	// A deadline earlier than the current slot's range (an act that took
	// its time to get here) gets a slot of its own and leaves the current
	// one to the acts after it.
	if cur := d.cur.Load(); cur == nil || s.at.After(cur.at) {
		d.cur.Store(s)
	}
	return s.done
}

// fits reports whether s closes at deadline or within a width after it.
func (d *deadlineSlots) fits(s *deadlineSlot, deadline time.Time) bool {
	late := s.at.Sub(deadline)
	return late >= 0 && late <= d.width
}
