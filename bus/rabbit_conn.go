package bus

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// connState is one live connection and a channel closed once it is lost.
type connState struct {
	conn *amqp.Connection
	gen  uint64
	dead chan struct{}
}

// connSlot holds the current connection of one role (publishing or
// consuming), or none while it reconnects. Waiters are woken when a new
// connection is installed.
type connSlot struct {
	mu   sync.Mutex
	cur  *connState
	gen  uint64
	wake chan struct{}
}

func newConnSlot() *connSlot { return &connSlot{wake: make(chan struct{})} }

// set installs a new live connection and wakes the waiters.
func (s *connSlot) set(c *amqp.Connection) *connState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.cur = &connState{conn: c, gen: s.gen, dead: make(chan struct{})}
	close(s.wake)
	s.wake = make(chan struct{})
	return s.cur
}

// clear marks the current connection lost, if it is c (or any, for nil).
func (s *connSlot) clear(c *amqp.Connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && (c == nil || s.cur.conn == c) {
		close(s.cur.dead)
		s.cur = nil
	}
}

// current returns the live connection (nil while down) and a channel
// closed when that changes.
func (s *connSlot) current() (*connState, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.wake
}

// await returns the live connection, waiting for a reconnect bounded by
// ctx. It returns an error wrapping ErrDisconnected and ctx.Err() when ctx
// ends first, and the broker's closed error after Close.
func (r *Rabbit) await(ctx context.Context, s *connSlot) (*connState, error) {
	for {
		cs, wake := s.current()
		if r.isClosed() {
			return nil, r.errClosed()
		}
		if cs != nil {
			return cs, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrDisconnected, ctx.Err())
		case <-r.closed.Done():
			return nil, r.errClosed()
		}
	}
}

// backoff returns the wait before attempt n (1-based): exponential between
// the configured bounds, with full jitter over its upper half.
func (r *Rabbit) backoff(n int) time.Duration {
	d := r.cfg.backoffMin
	for i := 1; i < n && d < r.cfg.backoffMax; i++ {
		d *= 2
	}
	if d > r.cfg.backoffMax {
		d = r.cfg.backoffMax
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// sleep waits d, or less when ctx or the broker closes; it reports whether
// the full wait happened.
func (r *Rabbit) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-r.closed.Done():
		return false
	}
}

// dialLoop dials the addresses in turn, starting at a random one, with
// backoff (and jitter) between rounds, until one answers, ctx ends, the
// broker closes, or WithMaxReconnects rounds failed. The random start
// spreads a program's connections, and many programs' reconnects, over a
// cluster's nodes instead of sending them all to the first address.
func (r *Rabbit) dialLoop(ctx context.Context, role string, reconnecting bool) (*dialed, error) {
	var last error
	first := rand.IntN(len(r.addrs))
	for attempt := 1; ; attempt++ {
		for i := range r.addrs {
			a := r.addrs[(first+i)%len(r.addrs)]
			if err := ctx.Err(); err != nil {
				return nil, r.dialErr(err, last)
			}
			if r.isClosed() {
				return nil, r.errClosed()
			}
			c, err := r.dialOne(ctx, a, role)
			if err == nil {
				r.logConnected(c, a, role, attempt)
				return &dialed{c, a.shown}, nil
			}
			last = fmt.Errorf("%s: %s", a.shown, r.scrub(err))
			attrs := []any{"role", role, "addr", a.shown, "attempt", attempt, "err", r.scrub(err)}
			if reconnecting {
				r.down.connectFailed(attrs...) // part of the outage's summary
			} else {
				r.log.Warn("connect failed", attrs...)
			}
		}
		if r.cfg.maxReconnects > 0 && attempt >= r.cfg.maxReconnects {
			return nil, fmt.Errorf("bus: dial rabbitmq (%s): %w: gave up after %d attempts: %s", r.shownAddrs(), ErrDisconnected, attempt, last)
		}
		if !r.sleep(ctx, r.backoff(attempt)) {
			if r.isClosed() {
				return nil, r.errClosed()
			}
			return nil, r.dialErr(ctx.Err(), last)
		}
	}
}

// dialed is a new connection and the shown address it was dialled at.
type dialed struct {
	conn *amqp.Connection
	addr string
}

// logConnected says, once per connection, which node it reached: the
// address, and from the server properties RabbitMQ sends on connect the
// cluster name and (where the broker is configured to announce it) the
// node name. RabbitMQ does not send its node name by default; an operator
// adds it with {rabbit, [{server_properties, [{node, "rabbit@host"}]}]} in
// advanced.config (the test clusters of internal/testenv do).
func (r *Rabbit) logConnected(c *amqp.Connection, a rabbitAddr, role string, attempt int) {
	attrs := []any{"role", role, "addr", a.shown}
	if node, ok := c.Properties["node"].(string); ok && node != "" {
		attrs = append(attrs, "node", node)
	}
	if cluster, ok := c.Properties["cluster_name"].(string); ok && cluster != "" {
		attrs = append(attrs, "cluster", cluster)
	}
	r.log.Info("connected", append(attrs, "attempts", attempt)...)
}

func (r *Rabbit) dialErr(ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("bus: dial rabbitmq (%s): %w: %w", r.shownAddrs(), ErrDisconnected, ctxErr)
	}
	return fmt.Errorf("bus: dial rabbitmq (%s): %w: %w (last error: %s)", r.shownAddrs(), ErrDisconnected, ctxErr, last)
}

func (r *Rabbit) shownAddrs() string {
	s := make([]string, len(r.addrs))
	for i, a := range r.addrs {
		s[i] = a.shown
	}
	return strings.Join(s, ", ")
}

// dialOne opens one connection, named after the role, with the configured
// heartbeat, dial timeout and TLS settings. The TCP dial stops when ctx
// ends or the broker closes.
func (r *Rabbit) dialOne(ctx context.Context, a rabbitAddr, role string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(r.cfg.connectionName + "-" + role)
	timeout := r.cfg.dialTimeout
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(r.closed, cancel)
	defer stop()
	cfg := amqp.Config{
		Heartbeat:  r.cfg.heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bounds the TLS and AMQP handshakes; the library clears it.
			if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
				c.Close()
				return nil, err
			}
			if r.cfg.plainWrites {
				return c, nil
			}
			return newCoalescingConn(c), nil
		},
	}
	if a.tls {
		cfg.TLSClientConfig = r.tlsConfig()
	}
	return amqp.DialConfig(a.url, cfg)
}

// supervise owns both connections: a watcher per connection marks it lost
// the moment the library reports it closed; supervise then dials again with
// backoff (consuming side first, replaying the topology before consumers
// resume), and closes both when the broker closes.
func (r *Rabbit) supervise(sub, pub *dialed) {
	defer r.wg.Done()
	lostCh := make(chan string, 2)
	r.installSub(sub, lostCh)
	r.installPub(pub, lostCh)
	defer func() {
		r.shutdown(nil)
		for _, s := range []*connSlot{r.sub, r.pub} {
			if cs, _ := s.current(); cs != nil {
				_ = cs.conn.CloseDeadline(time.Now().Add(2 * time.Second))
			}
			s.clear(nil)
		}
		r.pubs.failAll()
	}()
	down := map[string]bool{}
	noted := func() {
		for {
			select {
			case role := <-lostCh:
				down[role] = true
			default:
				return
			}
		}
	}
	// resub brings the consuming connection back, with the topology.
	resub := func() bool {
		d, err := r.reconnect("sub")
		if err != nil {
			return false
		}
		r.installSub(d, lostCh)
		down["sub"] = false
		return true
	}
	for {
		select {
		case <-r.closed.Done():
			return
		case role := <-lostCh:
			down[role] = true
		}
		noted()
		if down["sub"] && !resub() {
			return
		}
		if down["pub"] {
			d, err := r.reconnect("pub")
			if err != nil {
				return
			}
			// A broker that went away took both connections, and the
			// consuming one may be seen lost only now. Its queues must be
			// declared again before anything is published: a message
			// published to a queue not yet back is dropped (or returned).
			noted()
			if down["sub"] && !resub() {
				_ = d.conn.Close()
				return
			}
			r.installPub(d, lostCh)
			down["pub"] = false
		}
	}
}

// watch waits for c to close, marks it lost at once (so that nothing waits
// on a dead connection) and tells the supervisor.
func (r *Rabbit) watch(role string, s *connSlot, d *dialed, lostCh chan<- string) {
	c := d.conn
	closes := c.NotifyClose(make(chan *amqp.Error, 1))
	r.goTracked(func() {
		e := <-closes
		if !r.isClosed() {
			reason := "closed"
			if e != nil {
				reason = r.scrub(e)
			}
			// Before the slot is cleared: whoever sees the connection
			// gone finds the outage begun.
			r.down.connLost(role, d.addr, reason)
		}
		if role == "sub" && r.topo.fragile() {
			// Hold publishing until the topology is back (see gate).
			r.gate.set(false)
		}
		_ = c.CloseDeadline(time.Now().Add(time.Second))
		s.clear(c)
		if role == "pub" {
			r.pubs.setBlocked(false, "")
		}
		if r.isClosed() {
			return
		}
		select {
		case lostCh <- role:
		case <-r.closed.Done():
		}
	})
}

// reconnect dials again after a random pause shorter than the minimum
// backoff (so that the clients of a node that died do not all reach the
// next one at the same instant); on giving up it closes the broker.
func (r *Rabbit) reconnect(role string) (*dialed, error) {
	r.sleep(r.closed, time.Duration(rand.Int64N(int64(r.cfg.backoffMin))))
	d, err := r.dialLoop(r.closed, role, true)
	if err != nil {
		if !r.isClosed() {
			r.log.Error("giving up reconnecting", "role", role, "err", err)
			r.shutdown(err)
		}
		return nil, err
	}
	return d, nil
}

// installSub replays the topology on a new consuming connection, makes it
// current, which resumes the consumers, and opens the publishing gate
// when the replay is complete.
func (r *Rabbit) installSub(d *dialed, lostCh chan<- string) {
	c := d.conn
	r.decl <- struct{}{} // no declaration runs while the topology is replayed
	locked := r.replayTopology(c)
	r.sub.set(c)
	<-r.decl
	r.down.connected("sub")
	if len(locked) > 0 {
		// The publishing gate opens once these are back (or given up).
		r.goTracked(func() { r.retryExclusive(c, locked) })
	} else {
		r.openGate(c)
	}
	r.watch("sub", r.sub, d, lostCh)
}

// installPub makes a new publishing connection current and watches its
// blocked state.
func (r *Rabbit) installPub(d *dialed, lostCh chan<- string) {
	c := d.conn
	blocks := c.NotifyBlocked(make(chan amqp.Blocking, 8))
	r.pubs.setBlocked(false, "")
	r.goTracked(func() {
		for b := range blocks {
			r.pubs.setBlocked(b.Active, b.Reason)
			if b.Active {
				r.log.Warn("broker blocks publishing", "reason", r.scrubText(b.Reason))
			} else {
				r.log.Info("broker unblocks publishing")
			}
		}
	})
	r.pub.set(c)
	r.down.connected("pub")
	r.watch("pub", r.pub, d, lostCh)
}
