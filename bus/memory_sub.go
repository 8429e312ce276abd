package bus

import (
	"context"
	"fmt"
	"sort"
)

// memSub is a consumer of the in-memory broker. One goroutine (run) hands
// its messages out on an unbuffered channel, so a delivery counts as
// received exactly when the receive happens. Fields below the line are
// guarded by Memory.mu.
type memSub struct {
	m         *Memory
	q         *memQueue
	tag       string
	prefetch  int
	exclusive bool
	noAck     bool

	out     chan *Delivery
	wake    chan struct{} // capacity 1: pending has grown
	stop    chan struct{} // closed by beginStop
	done    chan struct{} // closed when run has returned and out is closed
	drained chan struct{} // closed when nothing received is unacknowledged, or on release

	// ---
	pending       []*memMsg          // given to this consumer, not yet received
	unacked       map[uint64]*memMsg // received (or being sent), not settled
	nextTag       uint64
	stopping      bool
	released      bool
	drainedClosed bool
	err           error
}

var _ Subscription = (*memSub)(nil)

func newMemSub(m *Memory, q *memQueue, opts ConsumeOptions) *memSub {
	return &memSub{
		m:         m,
		q:         q,
		tag:       opts.Tag,
		prefetch:  opts.Prefetch,
		exclusive: opts.Exclusive,
		noAck:     opts.NoAck,
		out:       make(chan *Delivery),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		drained:   make(chan struct{}),
		unacked:   make(map[uint64]*memMsg),
	}
}

func (s *memSub) inflight() int { return len(s.pending) + len(s.unacked) }

// push gives mm to this consumer.
func (s *memSub) push(mm *memMsg) {
	s.pending = append(s.pending, mm)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *memSub) run() {
	defer close(s.done)
	defer close(s.out)
	for {
		d := s.next()
		if d == nil {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.out <- d:
			if s.noAck {
				s.autoAck(d.tag)
			}
		case <-s.stop:
			s.unreceive(d)
			return
		}
	}
}

// autoAck settles a NoAck delivery once it has been received.
func (s *memSub) autoAck(tag uint64) {
	m := s.m
	m.mu.Lock()
	defer m.end()
	if _, ok := s.unacked[tag]; !ok {
		return
	}
	delete(s.unacked, tag)
	if s.stopping && len(s.unacked) == 0 {
		s.closeDrained()
	}
	m.markDirty(s.q)
}

// next takes the first pending message as a delivery, or returns nil.
func (s *memSub) next() *Delivery {
	s.m.mu.Lock()
	if s.stopping || len(s.pending) == 0 {
		s.m.mu.Unlock()
		return nil
	}
	mm := s.pending[0]
	s.pending[0] = nil
	s.pending = s.pending[1:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	s.nextTag++
	tag := s.nextTag
	s.unacked[tag] = mm
	redelivered := mm.redelivered
	s.m.mu.Unlock()
	// mm.msg, mm.exchange and mm.key never change after publish.
	msg := mm.msg
	msg.Headers = cloneHeaders(msg.Headers)
	if msg.Body != nil {
		msg.Body = append([]byte{}, msg.Body...)
	}
	var acker acknowledger = s
	if s.noAck {
		acker = autoAcked{}
	}
	return &Delivery{Message: msg, Exchange: mm.exchange, RoutingKey: mm.key, Redelivered: redelivered, tag: tag, acker: acker}
}

// unreceive puts a delivery that was not received back in front.
func (s *memSub) unreceive(d *Delivery) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if mm, ok := s.unacked[d.tag]; ok {
		delete(s.unacked, d.tag)
		s.pending = append([]*memMsg{mm}, s.pending...)
	}
}

// beginStop stops deliveries; err is what Err will report (nil for
// Cancel). A stop with an error also ends any wait in Cancel. The caller
// holds the lock and must wait for s.done after releasing it.
func (s *memSub) beginStop(err error) {
	if err != nil {
		s.closeDrained()
	}
	if s.stopping {
		return
	}
	s.stopping = true
	s.err = err
	s.q.detach(s)
	close(s.stop)
}

func (s *memSub) closeDrained() {
	if !s.drainedClosed {
		s.drainedClosed = true
		close(s.drained)
	}
}

// waitStopped waits until the goroutines of subs have returned.
func waitStopped(subs []*memSub) {
	for _, s := range subs {
		<-s.done
	}
}

// Deliveries returns the channel of deliveries; see Subscription.
func (s *memSub) Deliveries() <-chan *Delivery { return s.out }

// Err reports why Deliveries closed when it was not Cancel.
func (s *memSub) Err() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.err
}

// Cancel stops the consumer; see Subscription.
func (s *memSub) Cancel(ctx context.Context) error {
	m := s.m
	m.mu.Lock()
	s.beginStop(nil)
	m.mu.Unlock()
	<-s.done

	m.mu.Lock()
	if !s.released && !s.q.deleted && !m.closed {
		s.q.requeue(m, s.pending)
		s.pending = nil
		if len(s.unacked) == 0 {
			s.closeDrained()
		}
	} else {
		s.closeDrained()
	}
	m.end()

	var err error
	select {
	case <-s.drained:
	default:
		select {
		case <-s.drained:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.release()
	return err
}

// release forgets the consumer: what is still unacknowledged goes back to
// the queue, marked redelivered.
func (s *memSub) release() {
	m := s.m
	m.mu.Lock()
	if s.released {
		m.mu.Unlock()
		return
	}
	s.released = true
	s.closeDrained()
	var subs []*memSub
	if !s.q.deleted && !m.closed {
		if len(s.unacked) > 0 {
			tags := make([]uint64, 0, len(s.unacked))
			for t := range s.unacked {
				tags = append(tags, t)
			}
			sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
			back := make([]*memMsg, len(tags))
			for i, t := range tags {
				back[i] = s.unacked[t]
				back[i].redelivered = true
			}
			s.q.requeue(m, back)
		}
		subs = s.q.release(m, s)
	}
	s.unacked = nil
	s.pending = nil
	m.end()
	waitStopped(subs)
}

// settle acks or nacks a delivery of this consumer.
func (s *memSub) settle(d *Delivery, how settlement) error {
	m := s.m
	m.mu.Lock()
	defer m.end()
	if m.closed {
		return errClosed("settle")
	}
	mm, ok := s.unacked[d.tag]
	if !ok {
		if s.q.deleted {
			return nil
		}
		return fmt.Errorf("bus: settle: consumer %q released, message requeued: %w", s.tag, ErrStaleDelivery)
	}
	delete(s.unacked, d.tag)
	if s.q.deleted {
		return nil
	}
	switch how {
	case settleRequeue:
		mm.redelivered = true
		s.q.requeue(m, []*memMsg{mm})
	case settleReject:
		m.deadLetter(s.q, mm, "rejected")
	}
	if s.stopping && len(s.unacked) == 0 {
		s.closeDrained()
	}
	m.markDirty(s.q)
	return nil
}

// Interrupted returns a channel closed when the subscription ends: the
// in-memory broker has no connection to lose, so its deliveries are never
// interrupted otherwise. See Subscription.
func (s *memSub) Interrupted() <-chan struct{} { return s.done }
