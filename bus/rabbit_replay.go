package bus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// replayTopology declares everything remembered on a new consuming
// connection. A declaration the broker refuses is logged and skipped; the
// channel it closed is replaced. It returns the exclusive queues still
// held by the previous connection (which the broker has not yet dropped):
// retryExclusive declares them again, with their bindings, once the
// broker lets go.
func (r *Rabbit) replayTopology(c *amqp.Connection) (locked []string) {
	exs, qs, bs := r.topo.snapshot()
	if len(exs)+len(qs)+len(bs) == 0 {
		return nil
	}
	var ch *amqp.Channel
	defer func() {
		if ch != nil {
			_ = ch.Close()
		}
	}()
	run := func(what string, f func(*amqp.Channel) error) bool {
		if ch == nil || ch.IsClosed() {
			var err error
			if ch, err = c.Channel(); err != nil {
				r.log.Debug("topology replay: no channel", "err", r.scrub(err))
				return false
			}
		}
		if err := f(ch); err != nil {
			// A lost connection is part of an outage (logged as one), and
			// an exclusive queue still held is declared by retryExclusive;
			// a refusal deserves a warning.
			lost := isConnLoss(err) && c.IsClosed()
			if lost || (strings.HasPrefix(what, "exclusive queue ") && exclusiveLost(err)) {
				r.log.Debug("topology replay failed", "what", what, "err", r.scrub(err))
			} else {
				r.log.Warn("topology replay failed", "what", what, "err", r.scrub(err))
			}
			return !lost
		}
		return true
	}
	for _, e := range exs {
		e := e
		if !run("exchange "+e.Name, func(ch *amqp.Channel) error { return declareExchange(ch, e) }) {
			return locked
		}
	}
	for _, q := range qs {
		q := q
		var qerr error
		what := "queue " + q.Name
		if q.Exclusive {
			what = "exclusive " + what
		}
		if !run(what, func(ch *amqp.Channel) error { _, qerr = declareQueue(ch, q); return qerr }) {
			return locked
		}
		if q.Exclusive && exclusiveLost(qerr) {
			locked = append(locked, q.Name)
		}
	}
	for _, b := range bs {
		b := b
		if contains(locked, b.Queue) {
			continue // bound by retryExclusive
		}
		if !run("binding "+b.Exchange+"->"+b.Queue, func(ch *amqp.Channel) error { return ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil) }) {
			return locked
		}
	}
	r.log.Info("topology replayed", "exchanges", len(exs), "queues", len(qs), "bindings", len(bs), "held", len(locked))
	return locked
}

// holdLimit bounds how long publishing waits for exclusive queues that a
// previous connection still holds: RabbitMQ drops a silent connection
// after two missed heartbeats, so three heartbeat intervals (30 s by
// default) are enough unless someone else holds the queue.
func (r *Rabbit) holdLimit() time.Duration {
	if r.cfg.heartbeat <= 0 {
		return 30 * time.Second
	}
	return 3 * r.cfg.heartbeat
}

// errStopped: redeclareQueue was told to stop waiting.
var errStopped = errors.New("bus: stopped")

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// exclusiveLost reports whether err, for a remembered exclusive queue, means
// that the queue is still held by a previous connection the broker has not
// yet dropped (405) or was deleted when it dropped it (404): either way it
// is to be declared again on the current connection.
func exclusiveLost(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && (ae.Code == amqp.ResourceLocked || ae.Code == amqp.NotFound)
}

// retryExclusive declares the exclusive queues again on c, with backoff,
// until each is declared, forgotten or refused, c closes, or the broker
// closes, and then opens the publishing gate (see gate). After
// holdLimit it opens the gate anyway and goes on trying.
func (r *Rabbit) retryExclusive(c *amqp.Connection, names []string) {
	closes := c.NotifyClose(make(chan *amqp.Error, 1))
	limit := time.NewTimer(r.holdLimit())
	defer limit.Stop()
	for fails := 1; len(names) > 0; fails++ {
		t := time.NewTimer(r.backoff(fails))
		select {
		case <-t.C:
		case <-limit.C:
			t.Stop()
			r.log.Warn("exclusive queues still held by the previous connection: publishing goes on without them",
				"queues", len(names), "waited", r.holdLimit())
			r.openGate(c)
			fails--
			continue
		case <-closes:
			t.Stop()
			return
		case <-r.closed.Done():
			t.Stop()
			return
		}
		left := names[:0]
		for _, n := range names {
			err := r.redeclareQueue(c, n, nil)
			switch {
			case err == nil:
				r.log.Info("exclusive queue declared again", "queue", n)
			case isConnLoss(err) || r.isClosed():
				return
			case redeclareHeld(err):
				r.log.Debug("exclusive queue still held by the previous connection", "queue", n, "err", r.scrub(err))
				left = append(left, n)
			default:
				// Its consumer (if any) ends with this error when it tries.
				r.log.Warn("exclusive queue cannot be declared again", "queue", n, "err", r.scrub(err))
			}
		}
		names = left
	}
	r.openGate(c)
}

// openGate opens the publishing gate if c is still the consuming
// connection (a newer outage keeps it closed).
func (r *Rabbit) openGate(c *amqp.Connection) {
	if cs, _ := r.sub.current(); cs != nil && cs.conn == c {
		r.gate.set(true)
	}
}

// redeclareError is why redeclareQueue failed, and at which step.
type redeclareError struct {
	step string // "declare queue \"x\"", "declare exchange \"y\"", "bind …"
	err  error
}

func (e *redeclareError) Error() string { return e.step + ": " + e.err.Error() }
func (e *redeclareError) Unwrap() error { return e.err }

// redeclareHeld reports whether a failed redeclaration may succeed later
// on the same connection: the exclusive queue is still held by a previous
// connection (405 on the queue), or a durable queue's home node is down
// (404 "down or inaccessible", in a cluster). Other refusals (406 for
// changed arguments or an exchange of another kind, 403 for permissions)
// will not go away by themselves.
func redeclareHeld(err error) bool {
	var re *redeclareError
	var ae *amqp.Error
	if !errors.As(err, &re) || !errors.As(err, &ae) || !strings.HasPrefix(re.step, "declare queue") {
		return false
	}
	return ae.Code == amqp.ResourceLocked || (ae.Code == amqp.NotFound && strings.Contains(ae.Reason, "down or inaccessible"))
}

// redeclareQueue declares the remembered queue name, the remembered
// exchanges it is bound to, and its bindings on c, on a channel of its
// own, serialised with the other declarations: an exclusive queue held or
// lost by a previous connection, or a queue that went away while its
// consumer on the publishing connection was gone (see reopen). A queue no
// longer remembered (deleted meanwhile) is left alone and gives nil. stop
// (which may be nil) ends the wait for the declaration slot with
// errStopped.
func (r *Rabbit) redeclareQueue(c *amqp.Connection, name string, stop <-chan struct{}) error {
	select {
	case r.decl <- struct{}{}:
	case <-stop:
		return errStopped
	case <-r.closed.Done():
		return r.errClosed()
	}
	defer func() { <-r.decl }()
	q, bs, exs, ok := r.topo.remembered(name)
	if !ok {
		return nil
	}
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	defer func() {
		if !ch.IsClosed() {
			_ = ch.Close()
		}
	}()
	if _, err := declareQueue(ch, q); err != nil {
		return &redeclareError{fmt.Sprintf("declare queue %q", q.Name), err}
	}
	// An auto-delete exchange may have gone with the old queue's bindings.
	for _, e := range exs {
		if err := declareExchange(ch, e); err != nil {
			return &redeclareError{fmt.Sprintf("declare exchange %q", e.Name), err}
		}
	}
	for _, b := range bs {
		if err := ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil); err != nil {
			return &redeclareError{fmt.Sprintf("bind %q to %q with %q", b.Queue, b.Exchange, b.Key), err}
		}
	}
	return nil
}
