package soak

import (
	"context"
	"errors"
	"sync"
	"time"
)

// HangSlack is how long after its deadline an operation may return
// before it counts as hung: every call the traffic makes has a deadline,
// and patbus must honour it while it waits.
const HangSlack = 5 * time.Second

// errNeverReturned marks an operation still running when its driver gave
// up waiting for it.
var errNeverReturned = errors.New("soak: the operation never returned")

// Driver runs one kind of traffic: Op in Goroutines goroutines, each
// starting at most Rate operations a second, each operation bounded by
// Timeout and recorded in Ledger. The operations' contexts are not
// canceled when the driver stops (that would turn the operations in
// flight into failures of the test's making); stopping waits for them.
type Driver struct {
	Ledger     *Ledger
	Goroutines int
	// Rate is the operations per second of each goroutine; 0 means as
	// fast as they return.
	Rate float64
	// Timeout is each operation's deadline.
	Timeout time.Duration
	// Op performs operation seq; the sequence number travels in its
	// message, so that the consumer can report it to the ledger.
	Op func(ctx context.Context, seq int) error
	// Source tags the driver's operations in the ledger (Describe).
	Source uint8

	quit chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	inFlight map[int]struct{}
}

// Start starts the goroutines; Stop ends them. A Driver runs once.
func (d *Driver) Start() {
	d.quit = make(chan struct{})
	d.inFlight = make(map[int]struct{})
	for i := 0; i < d.Goroutines; i++ {
		d.wg.Add(1)
		go d.loop()
	}
}

func (d *Driver) loop() {
	defer d.wg.Done()
	var interval time.Duration
	if d.Rate > 0 {
		interval = time.Duration(float64(time.Second) / d.Rate)
	}
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if interval > 0 {
			if wait := time.Until(next); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-d.quit:
					return
				}
			}
			next = next.Add(interval)
			if lag := time.Since(next); lag > interval {
				next = time.Now() // behind: do not make up for it in a burst
			}
		}
		select {
		case <-d.quit:
			return
		default:
		}
		d.one()
	}
}

// one runs one operation and records it.
func (d *Driver) one() {
	seq := d.Ledger.Begin(d.Source)
	d.mu.Lock()
	d.inFlight[seq] = struct{}{}
	d.mu.Unlock()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	err := d.Op(ctx, seq)
	cancel()
	took := time.Since(began)
	d.Ledger.End(seq, err, took > d.Timeout+HangSlack)
	d.mu.Lock()
	delete(d.inFlight, seq)
	d.mu.Unlock()
}

// Stop stops starting operations, waits for those in flight up to their
// deadline and HangSlack, records the ones still running as hung and
// returns their number. Their goroutines are left behind: a hang is what
// the run reports, not something it can end.
func (d *Driver) Stop() int {
	close(d.quit)
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d.Timeout + HangSlack + time.Second)
	defer timer.Stop()
	select {
	case <-done:
		return 0
	case <-timer.C:
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for seq := range d.inFlight {
		d.Ledger.End(seq, errNeverReturned, true)
	}
	return len(d.inFlight)
}
