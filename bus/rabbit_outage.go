package bus

import (
	"log/slog"
	"sync"
	"time"
)

// outage turns what fails while the broker is away into two log lines: a
// warning when the outage begins ("connection lost", the first connection
// lost) and one when it ends ("connection restored": both connections
// back, the topology declared again, every interrupted consumer resumed or
// ended), with the time it took and the count of what failed meanwhile.
// Each failed attempt, lost channel and resumed consumer is logged at
// debug level only; without an outage (a channel closed by the broker, a
// consumer cancelled) they keep their own lines.
type outage struct {
	log *slog.Logger

	mu          sync.Mutex
	active      bool
	began       time.Time
	down        map[string]bool // roles whose connection is lost
	gateClosed  bool
	pending     int // consumers interrupted and not yet resumed or ended
	consumers   int // consumers interrupted during this outage
	connFails   int // connection attempts that failed
	resubFails  int // consumers' resubscriptions that failed
	republished int // messages published again
}

func newOutage(log *slog.Logger) *outage {
	return &outage{log: log, down: make(map[string]bool)}
}

// isActive reports whether an outage is under way.
func (o *outage) isActive() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active
}

// connLost records the loss of the connection of role; the first loss of
// an outage is its warning.
func (o *outage) connLost(role, addr, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down[role] = true
	if o.active {
		o.log.Debug("connection lost", "role", role, "addr", addr, "reason", reason)
		return
	}
	o.active, o.began = true, time.Now()
	o.consumers, o.connFails, o.resubFails, o.republished = 0, 0, 0, 0
	o.log.Warn("connection lost", "role", role, "addr", addr, "reason", reason)
}

// connected records that role has a connection again.
func (o *outage) connected(role string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down[role] = false
	o.maybeEnd()
}

// gate records the publishing gate closing or opening.
func (o *outage) gate(open bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gateClosed = !open
	o.maybeEnd()
}

// connectFailed counts a failed attempt to connect, logged at debug level.
func (o *outage) connectFailed(attrs ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connFails++
	o.log.Debug("connect failed", attrs...)
}

// consumerInterrupted records a consumer whose channel was lost; it
// reports whether that happened during an outage (else the caller logs it
// itself).
func (o *outage) consumerInterrupted() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending++
	if o.active {
		o.consumers++
	}
	return o.active
}

// consumerBack records an interrupted consumer that resumed or ended.
func (o *outage) consumerBack() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending > 0 {
		o.pending--
	}
	o.maybeEnd()
}

// resubscribeFailed counts a failed resubscription; it reports whether an
// outage is under way.
func (o *outage) resubscribeFailed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resubFails++
	return o.active
}

// republishing counts messages to be published again; it reports whether
// an outage is under way.
func (o *outage) republishing(n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.republished += n
	return o.active
}

// maybeEnd logs the end of the outage once everything is back. The caller
// holds o.mu.
func (o *outage) maybeEnd() {
	if !o.active || o.gateClosed || o.pending > 0 {
		return
	}
	for _, d := range o.down {
		if d {
			return
		}
	}
	o.active = false
	o.log.Warn("connection restored", "after", time.Since(o.began).Round(time.Millisecond),
		"connect_failures", o.connFails, "consumers", o.consumers,
		"resubscribe_failures", o.resubFails, "republished", o.republished)
}
