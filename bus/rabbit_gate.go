package bus

import "sync"

// gate holds publishing back while the client's own topology is not
// declared on the consuming connection: after that connection is lost,
// the exclusive queues the client declared went with it (and a broker
// restart took its transient queues and exchanges too), so a message
// published before they are back would be returned as unroutable, dropped,
// or routed to a queue on its way out. The gate closes when the consuming
// connection is lost while such a queue or exchange is remembered (see
// topology.fragile: a topology of durable queues and exchanges needs no
// wait) and opens when the topology replay on the new one is done,
// including the exclusive queues that the previous connection still held
// (see retryExclusive), or when that wait gives up.
type gate struct {
	mu       sync.Mutex
	open     bool
	wake     chan struct{}   // closed and replaced when open changes
	onChange func(open bool) // called after each change, outside the lock
}

func newGate(onChange func(open bool)) *gate {
	return &gate{open: true, wake: make(chan struct{}), onChange: onChange}
}

// state reports whether the gate is open, and a channel closed when that
// changes.
func (g *gate) state() (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open, g.wake
}

// set opens or closes the gate and wakes whoever waits on a change.
func (g *gate) set(open bool) {
	g.mu.Lock()
	if g.open == open {
		g.mu.Unlock()
		return
	}
	g.open = open
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
	if g.onChange != nil {
		g.onChange(open)
	}
}
