package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var _ DirectReplier = (*Rabbit)(nil)

// drPending is one request published on a DirectReply's channel and not
// yet confirmed.
type drPending struct {
	m        *pubMsg
	match    string // the id its basic.return would carry (returnIDs)
	returned *ReturnError
}

// rabbitDirectReply is RabbitMQ's direct reply-to: a dedicated channel on
// the publishing connection, in confirm mode, consuming DirectReplyTo with
// automatic ack. Two goroutines serve it: read settles confirms and
// returns, forward hands replies to out. Both end when the channel closes
// (or, for forward, on Close).
type rabbitDirectReply struct {
	r   *Rabbit
	ch  *amqp.Channel
	gen uint64
	out chan *Delivery

	stop     chan struct{} // closed by Close
	fwdDone  chan struct{} // closed when forward has returned (out is closed)
	readDone chan struct{} // closed when read has returned
	dead     chan struct{} // closed when the channel is lost
	deadOnce sync.Once

	wmu sync.Mutex // serialises sequence numbers and writes

	mu      sync.Mutex
	pending map[uint64]*drPending
	rids    returnIDs
	err     error // why the channel was lost
	closed  bool
}

// DirectReply opens a direct reply-to channel on the publishing
// connection; see DirectReplier. It consumes DirectReplyTo before it
// returns, so that requests published through it may name it at once.
func (r *Rabbit) DirectReply(ctx context.Context) (DirectReply, error) {
	if r.isClosed() {
		return nil, fmt.Errorf("bus: direct reply: %w", r.errClosed())
	}
	var (
		ch         *amqp.Channel
		confirms   <-chan amqp.Confirmation
		returns    <-chan amqp.Return
		closes     <-chan *amqp.Error
		deliveries <-chan amqp.Delivery
	)
	for attempt := 1; ; attempt++ {
		cs, err := r.await(ctx, r.pub)
		if err != nil {
			return nil, fmt.Errorf("bus: direct reply: %w", err)
		}
		// Opening is a round trip on the connection: on a link that stalls
		// it could take until the heartbeat gives up, so it runs aside and
		// ctx bounds the wait; a channel opened too late is closed.
		opened := make(chan drOpen, 1)
		r.goTracked(func() {
			var o drOpen
			o.ch, o.confirms, o.returns, o.closes, o.deliveries, o.err = r.openDirectReply(cs.conn)
			opened <- o
		})
		var o drOpen
		select {
		case o = <-opened:
		case <-ctx.Done():
			r.goTracked(func() {
				if o := <-opened; o.ch != nil {
					_ = o.ch.Close()
				}
			})
			return nil, fmt.Errorf("bus: direct reply: %w: %w", ErrDisconnected, ctx.Err())
		}
		ch, confirms, returns, closes, deliveries, err = o.ch, o.confirms, o.returns, o.closes, o.deliveries, o.err
		if err == nil {
			break
		}
		if !isConnLoss(err) || r.isClosed() {
			return nil, r.mapErr("direct reply", err)
		}
		// The connection is going away: wait for the next one.
		select {
		case <-cs.dead:
		case <-time.After(r.backoff(attempt)):
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: direct reply: %w: %w", ErrDisconnected, ctx.Err())
		case <-r.closed.Done():
			return nil, fmt.Errorf("bus: direct reply: %w", r.errClosed())
		}
	}
	d := &rabbitDirectReply{
		r:        r,
		ch:       ch,
		gen:      r.chanGen.Add(1),
		out:      make(chan *Delivery),
		stop:     make(chan struct{}),
		fwdDone:  make(chan struct{}),
		readDone: make(chan struct{}),
		dead:     make(chan struct{}),
		pending:  make(map[uint64]*drPending),
	}
	r.goTracked(func() { d.read(confirms, returns, closes) })
	r.goTracked(func() { d.forward(deliveries) })
	return d, nil
}

// drOpen is what openDirectReply returns.
type drOpen struct {
	ch         *amqp.Channel
	confirms   <-chan amqp.Confirmation
	returns    <-chan amqp.Return
	closes     <-chan *amqp.Error
	deliveries <-chan amqp.Delivery
	err        error
}

// openDirectReply opens the channel of a DirectReply: confirm mode, and a
// consumer of DirectReplyTo with automatic ack.
func (r *Rabbit) openDirectReply(c *amqp.Connection) (*amqp.Channel, <-chan amqp.Confirmation, <-chan amqp.Return, <-chan *amqp.Error, <-chan amqp.Delivery, error) {
	ch, err := c.Channel()
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 256))
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, nil, nil, nil, nil, err
	}
	deliveries, err := ch.Consume(DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, nil, nil, nil, err
	}
	return ch, confirms, returns, closes, deliveries, nil
}

// Publish writes msg on the DirectReply's channel; see DirectReply.
func (d *rabbitDirectReply) Publish(ctx context.Context, exchange, key string, msg Message) (*Confirmation, error) {
	if err := d.unusable(); err != nil {
		return nil, err
	}
	msg.ReplyTo = DirectReplyTo
	m, err := d.r.pubs.prepare(exchange, key, msg)
	if err != nil {
		return nil, err
	}
	// Never write while the broker blocks publishers: the write would
	// hang on the socket, past ctx. Wait, too, while the client's topology
	// is being declared again (see gate).
	for {
		if err := ctx.Err(); err != nil {
			return nil, d.r.pubs.waitErr(err)
		}
		blocked, _, changed := d.r.pubs.blockState()
		open, gateChanged := d.r.gate.state()
		if !blocked && open {
			break
		}
		select {
		case <-changed:
		case <-gateChanged:
		case <-ctx.Done():
		case <-d.dead:
			return nil, d.unusable()
		case <-d.stop:
			return nil, d.unusable()
		}
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := d.unusable(); err != nil {
		return nil, err
	}
	seq := d.ch.GetNextPublishSeqNo()
	d.mu.Lock()
	pub, match := d.rids.take(m, &d.r.pubs.ids)
	d.pending[seq] = &drPending{m: m, match: match}
	d.mu.Unlock()
	if _, err := d.ch.PublishWithDeferredConfirm(exchange, key, m.mandatory, false, pub); err != nil {
		d.mu.Lock()
		delete(d.pending, seq)
		d.rids.release(match)
		d.mu.Unlock()
		return nil, d.r.mapErr("direct reply publish", err)
	}
	return m.conf, nil
}

// unusable returns the error of a Publish after Close or the channel's
// loss, nil while the DirectReply works.
func (d *rabbitDirectReply) unusable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("bus: direct reply publish: %w", ErrClosed)
	}
	if d.err != nil {
		return fmt.Errorf("bus: direct reply publish: %w", d.err)
	}
	return nil
}

// read settles confirms and returns until the channel closes, then fails
// what is still pending.
func (d *rabbitDirectReply) read(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	defer close(d.readDone)
	for {
		select {
		case c, ok := <-confirms:
			if !ok {
				d.lost(returns, closes)
				return
			}
			returns = d.drainReturns(returns)
			d.confirmed(c)
		case rt, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			d.markReturned(rt)
		}
	}
}

func (d *rabbitDirectReply) drainReturns(returns <-chan amqp.Return) <-chan amqp.Return {
	for returns != nil {
		select {
		case rt, ok := <-returns:
			if !ok {
				return nil
			}
			d.markReturned(rt)
		default:
			return returns
		}
	}
	return nil
}

// markReturned ties a basic.return to the oldest pending request with its
// id (the broker answers in publish order).
func (d *rabbitDirectReply) markReturned(rt amqp.Return) {
	id, re := fromReturn(rt)
	d.mu.Lock()
	defer d.mu.Unlock()
	var best *drPending
	var bestSeq uint64
	for seq, it := range d.pending {
		if it.m.mandatory && it.returned == nil && it.match == id && (best == nil || seq < bestSeq) {
			best, bestSeq = it, seq
		}
	}
	if best != nil {
		best.returned = re
	}
}

func (d *rabbitDirectReply) confirmed(c amqp.Confirmation) {
	d.mu.Lock()
	it := d.pending[c.DeliveryTag]
	delete(d.pending, c.DeliveryTag)
	if it != nil {
		d.rids.release(it.match)
	}
	d.mu.Unlock()
	if it == nil {
		return
	}
	switch {
	case !c.Ack:
		it.m.conf.resolve(fmt.Errorf("bus: publish to exchange %q key %q: %w", it.m.exchange, it.m.key, ErrNacked))
	case it.returned != nil:
		it.m.conf.resolve(it.returned)
	default:
		it.m.conf.resolve(nil)
	}
}

// lost records why the channel went away and fails the pending requests:
// a request is never published again on another channel, since its reply
// could not find its way back.
func (d *rabbitDirectReply) lost(returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	d.drainReturns(returns)
	var cerr *amqp.Error
	select {
	case e, ok := <-closes:
		if ok {
			cerr = e
		}
	default:
	}
	var cause error
	switch {
	case d.r.isClosed():
		cause = d.r.errClosed()
	case cerr != nil:
		cause = fmt.Errorf("%w: direct reply channel closed: %s", ErrDisconnected, d.r.scrub(cerr))
	default:
		cause = fmt.Errorf("%w: direct reply channel closed", ErrDisconnected)
	}
	d.mu.Lock()
	if d.err == nil && !d.closed {
		d.err = cause
	}
	items := d.pending
	d.pending = make(map[uint64]*drPending)
	d.rids.reset()
	d.mu.Unlock()
	d.deadOnce.Do(func() { close(d.dead) })
	missing := ""
	if cerr != nil && cerr.Server && cerr.Code == amqp.NotFound {
		missing = missingExchange(cerr.Reason)
	}
	for _, it := range items {
		switch {
		case it.returned != nil:
			it.m.conf.resolve(it.returned)
		case missing != "" && it.m.exchange == missing:
			it.m.conf.resolve(d.r.mapErr(fmt.Sprintf("publish to exchange %q", it.m.exchange), cerr))
		default:
			it.m.conf.resolve(fmt.Errorf("bus: publish: %w: %w", ErrUnconfirmed, cause))
		}
	}
}

// forward hands replies to out until the channel closes or Close.
func (d *rabbitDirectReply) forward(deliveries <-chan amqp.Delivery) {
	defer close(d.fwdDone)
	defer close(d.out)
	for {
		select {
		case ad, ok := <-deliveries:
			if !ok {
				// The channel is closing: read records why (with the
				// broker's reason) as it fails what is pending.
				t := time.NewTimer(time.Second)
				select {
				case <-d.readDone:
				case <-d.stop:
				case <-t.C:
				}
				t.Stop()
				d.mu.Lock()
				if d.err == nil && !d.closed {
					if d.r.isClosed() {
						d.err = d.r.errClosed()
					} else {
						d.err = fmt.Errorf("%w: direct reply channel closed", ErrDisconnected)
					}
				}
				d.mu.Unlock()
				d.deadOnce.Do(func() { close(d.dead) })
				return
			}
			select {
			case d.out <- d.wrap(&ad):
			case <-d.stop:
				return
			case <-d.r.closed.Done():
				d.brokerClosed()
				return
			}
		case <-d.stop:
			return
		case <-d.r.closed.Done():
			// Nobody may be reading out: the broker's Close must not wait
			// for this goroutine on them.
			d.brokerClosed()
			return
		}
	}
}

// brokerClosed records that the broker closed under the DirectReply.
func (d *rabbitDirectReply) brokerClosed() {
	d.mu.Lock()
	if d.err == nil && !d.closed {
		d.err = d.r.errClosed()
	}
	d.mu.Unlock()
	d.deadOnce.Do(func() { close(d.dead) })
}

func (d *rabbitDirectReply) wrap(ad *amqp.Delivery) *Delivery {
	return &Delivery{
		Message: Message{
			Headers:       fromTable(ad.Headers),
			ContentType:   ad.ContentType,
			MessageID:     ad.MessageId,
			CorrelationID: ad.CorrelationId,
			Type:          ad.Type,
			AppID:         ad.AppId,
			ReplyTo:       ad.ReplyTo,
			Expiration:    parseExpiration(ad.Expiration),
			Persistent:    ad.DeliveryMode == amqp.Persistent,
			Timestamp:     ad.Timestamp,
			Body:          ad.Body,
		},
		Exchange:    ad.Exchange,
		RoutingKey:  ad.RoutingKey,
		Redelivered: ad.Redelivered,
		tag:         ad.DeliveryTag,
		gen:         d.gen,
		acker:       autoAcked{},
	}
}

// Deliveries returns the replies; see DirectReply.
func (d *rabbitDirectReply) Deliveries() <-chan *Delivery { return d.out }

// Err reports why Deliveries closed when it was not Close.
func (d *rabbitDirectReply) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	return d.err
}

// Close stops the replies and closes the channel in the background (the
// broker may be blocking the connection); the broker's Close waits for it.
func (d *rabbitDirectReply) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	items := d.pending
	d.pending = make(map[uint64]*drPending)
	d.rids.reset()
	d.mu.Unlock()
	close(d.stop)
	<-d.fwdDone
	for _, it := range items {
		if it.returned != nil {
			it.m.conf.resolve(it.returned)
			continue
		}
		it.m.conf.resolve(fmt.Errorf("bus: publish: %w: direct reply closed", ErrUnconfirmed))
	}
	if d.r.isClosed() {
		_ = d.ch.Close() // the connection is going: returns at once
		return nil
	}
	ch := d.ch
	d.r.goTracked(func() { _ = ch.Close() }) // may wait while the broker blocks us
	return nil
}
