package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// subChan is one incarnation of a consumer: its channel, the generation
// stamped on every delivery it carries, and its notification channels.
type subChan struct {
	ch         *amqp.Channel
	gen        uint64
	deliveries <-chan amqp.Delivery
	cancels    <-chan string
	conn       *connState
}

// rabbitSub is a consumer of the RabbitMQ broker. One goroutine forwards
// deliveries from the current channel to out and resubscribes after a
// reconnect; acks go to the channel of the delivery's generation only.
type rabbitSub struct {
	r     *Rabbit
	queue string
	opts  ConsumeOptions
	tag   string
	out   chan *Delivery
	slot  *connSlot // the consuming connection, or the publishing one for Replies

	channelReplies atomic.Int64 // replies sent on the delivery's channel (tests)

	mu         sync.RWMutex
	ch         *amqp.Channel // nil while none is open or after Cancel
	gen        uint64
	inflight   atomic.Int64
	idle       chan struct{}
	cancelReq  chan struct{} // Cancel was called
	cancelled  sync.Once
	releaseReq chan struct{} // Cancel's context ended: stop waiting for acks
	released   sync.Once
	outOnce    sync.Once
	stopped    chan struct{} // run returned

	errMu sync.Mutex
	err   error

	intrMu sync.Mutex
	intr   chan struct{} // closed at the next interruption; nil until asked for
	ended  bool          // intr is closed for good: Deliveries closed
}

var _ Subscription = (*rabbitSub)(nil)

// stop reasons of forward
const (
	stopCancel = iota
	stopClosed
	stopLost
	stopServerCancel
)

// Consume starts a consumer of queue on its own channel of the consuming
// connection (of the publishing one with ConsumeOptions.Replies), with
// basic.qos set to the prefetch. It waits for a connection bounded by ctx.
// A missing queue gives ErrNotFound. After a reconnect the consumer
// resumes on a new channel and keeps feeding the same Subscription;
// deliveries from the old channel are then stale, and the channel of
// Interrupted closes. A queue declared through this broker and not
// deleted through it that is missing when the consumer resumes, or that
// someone else deletes, is declared again with its bindings and the
// consumer goes on: an exclusive one that the previous connection still
// holds or took with it, one deleted by an operator or another program,
// one that went while a consumer on the publishing connection was away
// (see ConsumeOptions.Replies). When that declaration is refused for good
// (406: changed arguments, or a bound exchange of another kind; 403: no
// permission), Deliveries closes and Err says why. A queue deleted
// through this broker (DeleteQueue), or not declared through it, ends the
// subscription when it is deleted: Deliveries closes and Err wraps
// ErrNotFound.
func (r *Rabbit) Consume(ctx context.Context, queue string, opts ConsumeOptions) (Subscription, error) {
	op := fmt.Sprintf("consume %q", queue)
	if r.isClosed() {
		return nil, fmt.Errorf("bus: %s: %w", op, r.errClosed())
	}
	if err := checkShort("queue name", queue); err != nil {
		return nil, fmt.Errorf("bus: %s: %w", op, err)
	}
	if err := checkShort("consumer tag", opts.Tag); err != nil {
		return nil, fmt.Errorf("bus: %s: %w", op, err)
	}
	if opts.Prefetch < 0 || opts.Prefetch > 65535 {
		return nil, fmt.Errorf("bus: %s: %w: prefetch %d out of range 0..65535", op, ErrInvalidConfig, opts.Prefetch)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = DefaultPrefetch
	}
	if _, _, _, excl := r.topo.exclusive(queue); excl && opts.Replies {
		return nil, fmt.Errorf("bus: %s: %w: an exclusive queue cannot be consumed with Replies", op, ErrInvalidConfig)
	}
	if opts.Tag == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Tag = "patbus-" + hex.EncodeToString(b[:])
	}
	s := &rabbitSub{
		r:          r,
		queue:      queue,
		opts:       opts,
		tag:        opts.Tag,
		out:        make(chan *Delivery, opts.Prefetch),
		idle:       make(chan struct{}, 1),
		cancelReq:  make(chan struct{}),
		releaseReq: make(chan struct{}),
		stopped:    make(chan struct{}),
		slot:       r.sub,
	}
	if opts.Replies {
		s.slot = r.pub
	}
	for {
		cs, err := r.await(ctx, s.slot)
		if err != nil {
			return nil, fmt.Errorf("bus: %s: %w", op, err)
		}
		// Opening is a few round trips on the connection: on a link that
		// stalls they could take until the heartbeat gives up, so they run
		// aside and ctx bounds the wait; a consumer opened too late is
		// closed again (its deliveries go back to the queue).
		type result struct {
			sc  *subChan
			err error
		}
		opened := make(chan result, 1)
		r.goTracked(func() {
			sc, err := s.open(cs)
			opened <- result{sc, err}
		})
		var res result
		select {
		case res = <-opened:
		case <-ctx.Done():
			r.goTracked(func() {
				if res := <-opened; res.sc != nil {
					_ = res.sc.ch.Close()
				}
			})
			return nil, fmt.Errorf("bus: %s: %w: %w", op, ErrDisconnected, ctx.Err())
		}
		sc, err := res.sc, res.err
		if err == nil {
			r.goTracked(func() { s.run(sc) })
			return s, nil
		}
		if !isConnLoss(err) || r.isClosed() {
			return nil, r.mapErr(op, err)
		}
		select {
		case <-cs.dead:
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: %s: %w: %w", op, ErrDisconnected, ctx.Err())
		case <-r.closed.Done():
			return nil, fmt.Errorf("bus: %s: %w", op, r.errClosed())
		}
	}
}

// open starts the consumer on a new channel of cs and makes it current.
func (s *rabbitSub) open(cs *connState) (*subChan, error) {
	ch, err := cs.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(s.opts.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	cancels := ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(s.queue, s.tag, s.opts.NoAck, s.opts.Exclusive, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	sc := &subChan{ch: ch, gen: s.r.chanGen.Add(1), deliveries: deliveries, cancels: cancels, conn: cs}
	s.mu.Lock()
	s.ch, s.gen = ch, sc.gen
	s.mu.Unlock()
	return sc, nil
}

// run forwards deliveries and resubscribes until Cancel, Close, the queue
// going away, or the broker giving up.
func (s *rabbitSub) run(sc *subChan) {
	defer close(s.stopped)
	defer s.closeOut()
	for {
		switch s.forward(sc) {
		case stopCancel:
			s.stopConsumer(sc)
			s.closeOut()
			s.awaitSettled()
			s.drop(sc)
			return
		case stopClosed:
			s.setErr(fmt.Errorf("bus: consume %q: %w", s.queue, s.r.errClosed()))
			s.drop(sc)
			return
		case stopServerCancel:
			s.interrupt()
			s.drop(sc)
			if s.queueGone(sc.conn) {
				// Deleted through this broker (DeleteQueue forgets a queue
				// before it asks the broker), or never declared through
				// it: the subscription ends. Deleted by someone else: it
				// is declared again (reopen) and the consumer resumes.
				if _, _, _, known := s.r.topo.remembered(s.queue); !known {
					s.setErr(fmt.Errorf("bus: consume %q: %w: the queue was deleted", s.queue, ErrNotFound))
					return
				}
				s.r.log.Warn("queue deleted by someone else: declaring it again", "queue", s.queue)
			} else {
				s.r.log.Warn("consumer cancelled by broker, resubscribing", "queue", s.queue)
			}
			s.r.down.consumerInterrupted()
		case stopLost:
			s.interrupt()
			s.drop(sc)
			if sc.conn.conn.IsClosed() {
				// The connection went: once the supervisor has seen it,
				// the outage is begun and this consumer counts in it.
				select {
				case <-sc.conn.dead:
				case <-s.r.closed.Done():
				}
			}
			if s.r.down.consumerInterrupted() {
				s.r.log.Debug("consumer channel lost, resubscribing", "queue", s.queue)
			} else {
				s.r.log.Info("consumer channel lost, resubscribing", "queue", s.queue)
			}
		}
		s.purge()
		var ok bool
		sc, ok = s.reopen(sc.conn)
		s.r.down.consumerBack()
		if !ok {
			return
		}
	}
}

// closeOut closes Deliveries, and the channel of Interrupted with it.
func (s *rabbitSub) closeOut() {
	s.outOnce.Do(func() {
		close(s.out)
		s.intrMu.Lock()
		defer s.intrMu.Unlock()
		if s.intr == nil {
			s.intr = make(chan struct{})
		}
		close(s.intr)
		s.ended = true
	})
}

// interrupt closes the channel Interrupted handed out, if any; the next
// call of Interrupted makes a new one.
func (s *rabbitSub) interrupt() {
	s.intrMu.Lock()
	defer s.intrMu.Unlock()
	if s.intr != nil && !s.ended {
		close(s.intr)
		s.intr = nil
	}
}

// Interrupted returns the channel closed at the consumer's next
// interruption or end; see Subscription.
func (s *rabbitSub) Interrupted() <-chan struct{} {
	s.intrMu.Lock()
	defer s.intrMu.Unlock()
	if s.intr == nil {
		s.intr = make(chan struct{})
	}
	return s.intr
}

// awaitSettled waits until every delivery handed out is settled, Cancel's
// context ended, or the broker closes.
func (s *rabbitSub) awaitSettled() {
	for s.inflight.Load() > 0 {
		select {
		case <-s.idle:
		case <-s.releaseReq:
			return
		case <-s.r.closed.Done():
			return
		}
	}
}

// forward moves deliveries of sc to out.
func (s *rabbitSub) forward(sc *subChan) int {
	closed := s.r.closed.Done()
	for {
		select {
		case d, ok := <-sc.deliveries:
			if !ok {
				select {
				case _, ok := <-sc.cancels:
					if ok && !sc.ch.IsClosed() {
						return stopServerCancel
					}
				default:
				}
				if s.r.isClosed() {
					return stopClosed
				}
				return stopLost
			}
			dd := s.wrap(&d, sc.gen)
			if s.opts.NoAck {
				// Acknowledged already: nothing to count or give back.
				select {
				case s.out <- dd:
				case <-s.cancelReq:
					return stopCancel
				case <-closed:
					return stopClosed
				}
				continue
			}
			s.inflight.Add(1)
			select {
			case s.out <- dd:
			case <-s.cancelReq:
				dd.settled.Store(true)
				s.release()
				_ = sc.ch.Nack(d.DeliveryTag, false, true)
				return stopCancel
			case <-closed:
				s.release()
				return stopClosed
			}
		case <-s.cancelReq:
			return stopCancel
		case <-closed:
			return stopClosed
		}
	}
}

func (s *rabbitSub) wrap(d *amqp.Delivery, gen uint64) *Delivery {
	var acker acknowledger = s
	if s.opts.NoAck {
		acker = autoAcked{}
	}
	return &Delivery{
		Message: Message{
			Headers:       fromTable(d.Headers),
			ContentType:   d.ContentType,
			MessageID:     d.MessageId,
			CorrelationID: d.CorrelationId,
			Type:          d.Type,
			AppID:         d.AppId,
			ReplyTo:       d.ReplyTo,
			Expiration:    parseExpiration(d.Expiration),
			Persistent:    d.DeliveryMode == amqp.Persistent,
			Timestamp:     d.Timestamp,
			Body:          d.Body,
		},
		Exchange:    d.Exchange,
		RoutingKey:  d.RoutingKey,
		Redelivered: d.Redelivered,
		tag:         d.DeliveryTag,
		gen:         gen,
		acker:       acker,
	}
}

// stopConsumer handles Cancel: basic.cancel (waiting for cancel-ok so that
// nothing in flight is dropped), deliveries that arrive meanwhile and those
// still buffered in out go back to the queue at once. The channel stays
// open for the acks of deliveries already received; Cancel closes it.
func (s *rabbitSub) stopConsumer(sc *subChan) {
	select {
	case <-s.releaseReq:
		// No time to wait: closing the channel requeues everything.
		s.purge()
		return
	default:
	}
	// amqp091-go writes basic.cancel without the channel's lock, so it
	// could land between the frames of a reply that a handler is
	// publishing on this channel (see reply), and RabbitMQ would close the
	// connection for it (unexpected_frame), the reply lost with it.
	// Replies hold s.mu's read lock; the write lock keeps the two apart.
	s.mu.Lock()
	err := sc.ch.Cancel(s.tag, false)
	s.mu.Unlock()
	if err == nil {
		for d := range sc.deliveries {
			if !s.opts.NoAck {
				_ = sc.ch.Nack(d.DeliveryTag, false, true)
			}
		}
	}
	if s.opts.NoAck {
		// Acknowledged already: what is buffered is dropped.
		for {
			select {
			case <-s.out:
			default:
				return
			}
		}
	}
	for {
		select {
		case d := <-s.out:
			if d.settled.CompareAndSwap(false, true) {
				_ = s.settleOn(d, settleRequeue)
				s.release()
			}
		default:
			return
		}
	}
}

// drop forgets sc: its deliveries are stale from now on.
func (s *rabbitSub) drop(sc *subChan) {
	s.mu.Lock()
	if s.ch == sc.ch {
		s.ch = nil
	}
	s.mu.Unlock()
	if !sc.ch.IsClosed() {
		_ = sc.ch.Close()
	}
}

// purge takes stale deliveries out of out: the broker delivers them again,
// so the application should not see them. Deliveries of a NoAck consumer
// are never stale (the broker will not send them again): they stay.
func (s *rabbitSub) purge() {
	if s.opts.NoAck {
		return
	}
	for {
		select {
		case d := <-s.out:
			if d.settled.CompareAndSwap(false, true) {
				s.release()
			}
		default:
			return
		}
	}
}

// queueGone reports whether the queue no longer exists.
func (s *rabbitSub) queueGone(cs *connState) bool {
	ch, err := cs.conn.Channel()
	if err != nil {
		return false
	}
	_, err = ch.QueueDeclarePassive(s.queue, false, false, false, false, nil)
	gone := queueMissing(err)
	if !ch.IsClosed() {
		_ = ch.Close()
	}
	return gone
}

// queueMissing reports whether err says the queue does not exist. Right
// after a broker restart a durable queue whose process is still recovering
// answers 404 too, "home node … of durable queue … is down or
// inaccessible": that one passes, so it is not taken for a deletion.
func queueMissing(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound &&
		!strings.Contains(ae.Reason, "down or inaccessible")
}

// reopen resubscribes on the current (or next) connection of the
// consumer's slot, with backoff while the broker refuses. A queue declared
// through the broker (and not deleted through it) that is missing is
// declared again with its bindings first: an exclusive one that went away
// with the previous connection, or that it still holds (405); one deleted
// by someone else; one that went while a consumer on the publishing
// connection was away (the replay runs on the consuming connection). When
// the broker refuses that declaration for good (406 changed arguments or
// an exchange of another kind, 403 no permission), the subscription ends
// with that error instead of trying for ever.
func (s *rabbitSub) reopen(prev *connState) (*subChan, bool) {
	r := s.r
	redeclared := false // the queue was just declared again
	for fails := 0; ; {
		cs, wake := s.slot.current()
		if cs == nil {
			select {
			case <-wake:
				continue
			case <-s.cancelReq:
				return nil, false
			case <-r.closed.Done():
				s.setErr(fmt.Errorf("bus: consume %q: %w", s.queue, r.errClosed()))
				return nil, false
			}
		}
		sc, err := s.open(cs)
		if err == nil {
			if fails > 0 || cs != prev {
				r.log.Debug("consumer resumed", "queue", s.queue)
			}
			return sc, true
		}
		fails++
		q, _, _, known := r.topo.remembered(s.queue)
		gone := queueMissing(err) || (q.Exclusive && exclusiveLost(err))
		switch {
		case isConnLoss(err):
			// Wait for the next connection below.
		case known && gone && !redeclared:
			derr := r.redeclareQueue(cs.conn, s.queue, s.cancelReq)
			switch {
			case derr == nil:
				redeclared = true
				r.log.Info("queue declared again", "queue", s.queue)
				continue // consume at once; back off if that fails again
			case errors.Is(derr, errStopped):
				return nil, false
			case isConnLoss(derr) || r.isClosed():
			case redeclareHeld(derr):
				r.log.Debug("queue still held or unavailable", "queue", s.queue, "err", r.scrub(derr))
			default:
				op := "declare the queue again"
				var re *redeclareError
				if errors.As(derr, &re) {
					op = re.step
				}
				s.setErr(fmt.Errorf("bus: consume %q: the queue cannot be declared again: %w", s.queue, r.mapErr(op, derr)))
				return nil, false
			}
		case !known && queueMissing(err):
			var ae *amqp.Error
			errors.As(err, &ae)
			s.setErr(fmt.Errorf("bus: consume %q: %w: %s", s.queue, ErrNotFound, r.scrubText(ae.Reason)))
			return nil, false
		default:
			redeclared = false
			if outage := r.down.resubscribeFailed(); outage || fails > 1 {
				r.log.Debug("resubscribe failed", "queue", s.queue, "err", r.scrub(err))
			} else {
				r.log.Warn("resubscribe failed", "queue", s.queue, "err", r.scrub(err))
			}
		}
		select {
		case <-cs.dead:
		case <-time.After(r.backoff(fails)):
		case <-s.cancelReq:
			return nil, false
		case <-r.closed.Done():
			s.setErr(fmt.Errorf("bus: consume %q: %w", s.queue, r.errClosed()))
			return nil, false
		}
	}
}

func (s *rabbitSub) setErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Deliveries yields the consumer's messages; see Subscription.
func (s *rabbitSub) Deliveries() <-chan *Delivery { return s.out }

// Err reports why Deliveries closed when it was not Cancel.
func (s *rabbitSub) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Cancel stops the consumer as Subscription.Cancel documents: basic.cancel,
// deliveries not yet received go back to the queue, then it waits until
// every received delivery is acked or nacked (or ctx ends) and closes the
// channel, which requeues whatever is still unacknowledged. The consumer's
// own goroutine makes every call on the channel; when ctx ends first,
// Cancel tells it to close the channel at once and waits for that (at most
// the dial timeout), then returns ctx.Err().
func (s *rabbitSub) Cancel(ctx context.Context) error {
	s.cancelled.Do(func() { close(s.cancelReq) })
	select {
	case <-s.stopped:
		return nil
	default:
	}
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
	}
	s.released.Do(func() { close(s.releaseReq) })
	t := time.NewTimer(s.r.cfg.dialTimeout)
	defer t.Stop()
	select {
	case <-s.stopped:
	case <-t.C:
	}
	return ctx.Err()
}

func (s *rabbitSub) release() {
	if s.inflight.Add(-1) <= 0 {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// settle acks or nacks d on the channel it came on; a delivery of an
// older generation gets ErrStaleDelivery and nothing is sent.
func (s *rabbitSub) settle(d *Delivery, how settlement) error {
	defer s.release()
	return s.settleOn(d, how)
}

func (s *rabbitSub) settleOn(d *Delivery, how settlement) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ch == nil || d.gen != s.gen {
		return ErrStaleDelivery
	}
	var err error
	switch how {
	case settleAck:
		err = s.ch.Ack(d.tag, false)
	case settleRequeue:
		err = s.ch.Nack(d.tag, false, true)
	default:
		err = s.ch.Nack(d.tag, false, false)
	}
	if err != nil {
		// The ack did not reach the broker: the channel is gone and the
		// broker will deliver the message again.
		return fmt.Errorf("%w: %s", ErrStaleDelivery, s.r.scrub(err))
	}
	return nil
}
