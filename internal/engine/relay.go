package engine

import "sync"

// relay decides which of a Consumer's handler goroutines receives the next
// delivery: one goroutine at a time holds the turn and waits on the
// deliveries; once it has one, it passes the turn to the goroutine that
// went idle last and runs the handler itself. Idle goroutines wait in a
// stack, so that a consumer with a light load keeps reusing the same one
// or two goroutines, whose stacks are grown and in the CPU's caches.
// Receiving on the channel straight from every goroutine would hand the
// deliveries round all of them in turn (a channel's waiting receivers are
// served first come, first served): at one request at a time and a pool
// of 64, a MongoDB load in the user service of BenchmarkLoadUser
// (examples/system) took about 12 µs longer that way, most likely in
// stacks gone cold or shrunk by the garbage collector meanwhile.
type relay struct {
	mu     sync.Mutex
	idle   []chan struct{} // waiting for the turn; the last one went idle last
	held   bool            // a goroutine holds the turn
	closed bool            // the deliveries ended: nobody takes the turn again
}

// take waits until the goroutine whose wake-up channel is turn (buffered,
// capacity 1) holds the turn; false means the deliveries ended.
func (r *relay) take(turn chan struct{}) bool {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return false
	case !r.held:
		r.held = true
		r.mu.Unlock()
		return true
	}
	r.idle = append(r.idle, turn)
	r.mu.Unlock()
	_, ok := <-turn
	return ok
}

// pass hands the turn on to the goroutine that went idle last, or leaves
// it to the next one that calls take.
func (r *relay) pass() {
	r.mu.Lock()
	n := len(r.idle)
	if n == 0 {
		r.held = false
		r.mu.Unlock()
		return
	}
	next := r.idle[n-1]
	r.idle[n-1] = nil
	r.idle = r.idle[:n-1]
	r.mu.Unlock()
	next <- struct{}{}
}

// close ends the relay: the idle goroutines and every later take return
// false.
func (r *relay) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	for _, t := range r.idle {
		close(t)
	}
	r.idle = nil
}
