package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// maxChannelErrors is how many channels a message may see closed by the
// broker (for example 404 for its exchange) before its Confirmation
// resolves with that error instead of the message being published again.
const maxChannelErrors = 5

// pubMsg is one Publish: it may be written more than once (on a fresh
// channel after a reset or a confirm timeout) but its Confirmation resolves
// once, from a broker answer or from Close.
type pubMsg struct {
	exchange  string
	key       string
	mandatory bool
	pub       amqp.Publishing
	conf      *Confirmation

	written   chan struct{} // closed after the first successful write
	writeOnce sync.Once
	chanErrs  int // channels closed by a broker error while it was pending
	lastErr   error

	// Expiration and the time of Publish: a copy written again carries
	// what is left of the expiration, and is not written once it passed.
	expiration time.Duration
	published  time.Time
	resend     bool // set by requeue

	// owed is when a retirement on probation published the message again
	// after the broker had acked it (see probationFor): its Confirmation
	// has resolved as confirmed, so a nack or return of a later copy must
	// not drop it; it goes out again until a copy is acked, for at most
	// owedFor.
	owed time.Time
}

// pending is one written copy of a message awaiting its confirm.
type pending struct {
	m        *pubMsg
	sent     time.Time
	match    string       // the id its basic.return would carry (returnIDs)
	returned *ReturnError // set when a basic.return arrived before the ack
}

// pubChan is one publishing channel in confirm mode. Only its worker
// publishes on it; its reader drains confirms and returns.
type pubChan struct {
	ch    *amqp.Channel
	gen   uint64
	slots chan struct{} // the confirm window: one token per unconfirmed copy

	// wmu is held while a message is written on ch, by the worker or by a
	// Publish that writes from its own goroutine (the fast path).
	wmu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]*pending
	rids    returnIDs

	brokerClosed atomic.Bool // the broker closed the channel for an error
	dead         chan struct{}
	deadOnce     sync.Once

	// A channel that only nacks for one destination is retired (see
	// nackRetire): it takes no new message, and is closed once its
	// pending copies are answered.
	nacksInRow map[destination]int // nacks since the destination's last ack; guarded by mu
	retiring   bool                // guarded by mu
	drained    chan struct{}       // closed when retiring and nothing is pending

	// During its probation (see probationFor) a channel keeps the
	// messages it got acks for, by destination, so that a retirement for
	// nacks can publish them again; nil once the probation is over.
	opened        time.Time
	probation     map[destination][]*pubMsg // guarded by mu
	probationOver bool                      // guarded by mu
	// The destinations pc was retired for: its acks for them, of copies
	// still pending then, are as doubtful as those before. Guarded by mu.
	suspect map[destination]bool
}

// probationFor is how long after its opening a publishing channel keeps
// the messages it got acks for, and probationCopies how many per
// destination (the newest). A channel opened while a quorum queue elects
// its leader can ack, for that queue, messages RabbitMQ 3.10 never
// enqueues, before the nacks that retire it (TestCluster/
// WorkAndEventsKillLeader in integration/cluster lost such items): a
// channel retired for nacks on a destination within its probation
// publishes what it acked for that destination again, on the fresh
// channel, and so do the channels opened with it (retireSiblings): one of
// them lost an acked event without nacking eight in a row. That is
// at-least-once: a copy the queue did hold arrives twice,
// with the same message id. The broken channels seen retire within half a
// second of their opening.
const (
	probationFor    = 2 * time.Second
	probationCopies = 256
	owedFor         = time.Minute
)

// nackRetire is how many nacks in a row for one destination (exchange
// and routing key), with no ack for it between them, retire a publishing
// channel. RabbitMQ 3.10 has a channel whose first publish to a quorum
// queue meets the queue without its leader (its node just died) stay
// broken for that queue for as long as the channel lives: it nacks most
// publishes to it, and acks some that it never enqueues, while a channel
// opened once the queue has a leader again works. The channel's publishes to other queues are
// acked as usual, so the nacks are counted per destination: counted per
// channel, a producer that sends to two queues would never see eight in a
// row, and would lose confirmed messages. A queue at its MaxLength nacks in a row
// too, and then costs a channel reopen and a nackPause per nackRetire
// nacks.
const nackRetire = 8

// nackPause is how long a publishing worker waits before it replaces a
// channel retired for nacks: a channel opened while the quorum queue is
// still electing its leader meets it without one and breaks the same
// way: opened at once, one broken channel would follow another for the
// whole election, each acking a few messages it never enqueued. A second
// later the election is over (after a node's kill it takes well under a
// second).
const nackPause = time.Second

// maxNackDestinations bounds the destinations a channel counts nacks for
// (one per destination nacked since its last ack); past it the counts
// start again.
const maxNackDestinations = 1024

// destination is where a message was published: a channel broken for a
// quorum queue nacks what is routed there.
type destination struct{ exchange, key string }

func (pc *pubChan) kill() { pc.deadOnce.Do(func() { close(pc.dead) }) }

// takeAll removes and returns every pending copy.
func (pc *pubChan) takeAll() []*pending {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := make([]*pending, 0, len(pc.pending))
	for _, p := range pc.pending {
		out = append(out, p)
	}
	pc.pending = make(map[uint64]*pending)
	// The ids stay counted: a retired channel may still deliver the late
	// returns of these copies, which must not match a newer copy that
	// shares a message id. channelClosed forgets them.
	return out
}

// publisher owns the pool of publishing channels and the queue of messages
// to publish again.
type publisher struct {
	r    *Rabbit
	reqs chan *pubMsg
	up   atomic.Int32 // channels ready to publish
	ids  atomic.Uint64

	nackRetired atomic.Int64 // unix nanos of the last warning about a channel retired for nacks

	retryMu  sync.Mutex
	retry    []*pubMsg
	retrySig chan struct{}
	failed   bool // Close ran: requeued messages resolve at once

	blkMu       sync.Mutex
	blocked     bool
	unblockedAt time.Time
	blkChanged  chan struct{}

	// live holds the channels ready to publish (a copy-on-write slice),
	// for the fast path, which tries them in order.
	liveMu sync.Mutex
	live   atomic.Pointer[[]*pubChan]
}

func newPublisher(r *Rabbit) *publisher {
	return &publisher{
		r:          r,
		reqs:       make(chan *pubMsg),
		retrySig:   make(chan struct{}, 1),
		blkChanged: make(chan struct{}),
	}
}

func (p *publisher) start() {
	for i := 0; i < p.r.cfg.publishChans; i++ {
		p.r.goTracked(p.worker)
	}
}

// setBlocked records connection.blocked / unblocked.
func (p *publisher) setBlocked(b bool, reason string) {
	p.blkMu.Lock()
	defer p.blkMu.Unlock()
	if p.blocked == b {
		return
	}
	p.blocked = b
	if !b {
		p.unblockedAt = time.Now()
	}
	close(p.blkChanged)
	p.blkChanged = make(chan struct{})
}

func (p *publisher) blockState() (bool, time.Time, <-chan struct{}) {
	p.blkMu.Lock()
	defer p.blkMu.Unlock()
	return p.blocked, p.unblockedAt, p.blkChanged
}

// requeue queues a message to be published again on a fresh channel, or
// resolves it as unconfirmed once the broker is closed.
func (p *publisher) requeue(m *pubMsg) {
	p.retryMu.Lock()
	if p.failed {
		p.retryMu.Unlock()
		m.conf.resolve(fmt.Errorf("bus: publish: %w: %w", ErrUnconfirmed, p.r.errClosed()))
		return
	}
	m.resend = true
	p.retry = append(p.retry, m)
	p.retryMu.Unlock()
	select {
	case p.retrySig <- struct{}{}:
	default:
	}
}

func (p *publisher) popRetry() *pubMsg {
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	if len(p.retry) == 0 {
		return nil
	}
	m := p.retry[0]
	p.retry[0] = nil
	p.retry = p.retry[1:]
	if len(p.retry) > 0 {
		select {
		case p.retrySig <- struct{}{}:
		default:
		}
	}
	return m
}

// failAll resolves every message waiting to be published again as
// unconfirmed; from now on requeue does so at once.
func (p *publisher) failAll() {
	p.retryMu.Lock()
	p.failed = true
	ms := p.retry
	p.retry = nil
	p.retryMu.Unlock()
	for _, m := range ms {
		m.conf.resolve(fmt.Errorf("bus: publish: %w: %w", ErrUnconfirmed, p.r.errClosed()))
	}
}

// Publish hands msg to a publishing channel (or, when one is idle and
// publishers are not blocked, writes it on that channel itself) and returns
// once it has been written to the connection; the Confirmation resolves when the broker
// acks (nil), nacks (ErrNacked) or returns it (*ReturnError), or with
// ErrUnconfirmed when the broker is closed first. A copy whose confirm does
// not come within the confirm timeout, or whose channel or connection is
// lost, is published again on a fresh channel, with what is left of its
// Expiration, or not at all once that has passed (ErrExpired): delivery is
// at least once and the Confirmation never reports success without a
// broker ack.
//
// While the connection is down, the client's topology is being declared
// again after a reconnect (see the package documentation), or the broker
// blocks publishers, Publish waits, bounded by ctx: it then fails with an
// error wrapping ErrDisconnected or ErrBlocked and ctx.Err(), and the
// message was not sent. Once a channel has taken the message, Publish returns its
// Confirmation even if ctx ends before the write completes: the message is
// on its way. Bodies over the maximum size fail with ErrTooLarge.
func (r *Rabbit) Publish(ctx context.Context, exchange, key string, msg Message) (*Confirmation, error) {
	if r.isClosed() {
		return nil, fmt.Errorf("bus: publish: %w", r.errClosed())
	}
	m, err := r.pubs.prepare(exchange, key, msg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, r.pubs.waitErr(err)
	}
	if !r.pubs.direct(m) {
		select {
		case r.pubs.reqs <- m:
		case <-ctx.Done():
			return nil, r.pubs.waitErr(ctx.Err())
		case <-r.closed.Done():
			return nil, fmt.Errorf("bus: publish: %w", r.errClosed())
		}
	}
	select {
	case <-m.written:
	case <-ctx.Done():
	case <-m.conf.Done():
	}
	return m.conf, nil
}

// maxDirectBody is the largest body the fast path writes itself.
const maxDirectBody = 16 << 10

// direct is the fast path of Publish: when publishers are not blocked and
// a publishing channel is idle (no other write on it) with room in its
// confirm window, m is written from the caller's goroutine, saving the
// hand-off to the channel's worker and back. It reports whether m was
// taken (written, or queued to be written again if the write failed);
// false means Publish hands m to a worker as usual, which is also what
// happens whenever the broker has said it blocks publishers. One case is
// left: on a link that stalls without RabbitMQ's blocked notice, a small
// fast-path write can wait for the socket until the heartbeat declares the
// connection dead (about two heartbeat intervals), past its context; with
// write coalescing (the default) only once a megabyte waits for the socket.
//
// The channels are tried in order, the first one first: publishes fill
// one channel and spill over to the next only while it is busy or its
// window is full. Spread evenly instead, each channel's confirms batch
// less (RabbitMQ acks "multiple" per channel) and every publish costs the
// broker more: at 64 concurrent calls, 15 % more CPU per call on both
// sides, measured with the rpc benchmarks.
func (p *publisher) direct(m *pubMsg) bool {
	// Large bodies are what fill a stalled socket's send buffer, so they
	// always go through a worker, and Publish returns by its context.
	if len(m.pub.Body) > maxDirectBody {
		return false
	}
	chans := p.live.Load()
	if chans == nil || len(*chans) == 0 {
		return false
	}
	if blocked, _, _ := p.blockState(); blocked {
		return false
	}
	if open, _ := p.r.gate.state(); !open {
		return false
	}
	for _, pc := range *chans {
		if !pc.wmu.TryLock() {
			continue
		}
		select {
		case <-pc.dead:
			pc.wmu.Unlock()
			continue
		default:
		}
		select {
		case <-pc.slots:
		default:
			pc.wmu.Unlock()
			continue
		}
		p.write(pc, m)
		pc.wmu.Unlock()
		return true
	}
	return false
}

// setLive adds (add) or removes pc from the channels of the fast path.
func (p *publisher) setLive(pc *pubChan, add bool) {
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	var old []*pubChan
	if cur := p.live.Load(); cur != nil {
		old = *cur
	}
	next := make([]*pubChan, 0, len(old)+1)
	for _, c := range old {
		if c != pc {
			next = append(next, c)
		}
	}
	if add {
		next = append(next, pc)
	}
	p.live.Store(&next)
}

// prepare validates msg and builds the publishing.
func (p *publisher) prepare(exchange, key string, msg Message) (*pubMsg, error) {
	pub, err := p.publishing(exchange, key, msg)
	if err != nil {
		return nil, err
	}
	// A copy: the message may be written again after a reset, and the
	// caller may reuse its buffer once Publish returns.
	pub.Body = append([]byte(nil), msg.Body...)
	return &pubMsg{
		exchange:   exchange,
		key:        key,
		mandatory:  msg.Mandatory,
		conf:       newConfirmation(),
		written:    make(chan struct{}),
		pub:        pub,
		expiration: msg.Expiration,
		published:  time.Now(),
	}, nil
}

// publishing checks msg against the broker's limits and turns it into the
// library's form (the body is not copied).
func (p *publisher) publishing(exchange, key string, msg Message) (amqp.Publishing, error) {
	if len(msg.Body) > p.r.cfg.maxMessageSize {
		return amqp.Publishing{}, fmt.Errorf("bus: publish: %w: %d bytes, limit %d", ErrTooLarge, len(msg.Body), p.r.cfg.maxMessageSize)
	}
	for _, f := range [...]struct{ what, s string }{
		{"exchange name", exchange}, {"routing key", key}, {"message id", msg.MessageID},
		{"correlation id", msg.CorrelationID}, {"reply-to", msg.ReplyTo}, {"content type", msg.ContentType},
		{"type", msg.Type}, {"app id", msg.AppID},
	} {
		if err := checkShort(f.what, f.s); err != nil {
			return amqp.Publishing{}, fmt.Errorf("bus: publish: %w", err)
		}
	}
	headers, err := toTable(msg.Headers)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("bus: publish: %w", err)
	}
	// The header is the broker's own, to match returns: a caller's copy
	// (a message consumed and published again) would confuse that.
	delete(headers, publishIDHeader)
	pub := amqp.Publishing{
		Headers:       headers,
		ContentType:   msg.ContentType,
		MessageId:     msg.MessageID,
		CorrelationId: msg.CorrelationID,
		Type:          msg.Type,
		AppId:         msg.AppID,
		ReplyTo:       msg.ReplyTo,
		Expiration:    expirationString(msg.Expiration),
		Timestamp:     msg.Timestamp,
		Body:          msg.Body,
	}
	if msg.Persistent {
		pub.DeliveryMode = amqp.Persistent
	}
	return pub, nil
}

// waitErr explains why a Publish whose ctx ended was not taken.
func (p *publisher) waitErr(ctxErr error) error {
	if p.r.isClosed() {
		return fmt.Errorf("bus: publish: %w", p.r.errClosed())
	}
	if blocked, _, _ := p.blockState(); blocked {
		return fmt.Errorf("bus: publish: %w: %w", ErrBlocked, ctxErr)
	}
	if open, _ := p.r.gate.state(); !open || p.up.Load() == 0 {
		return fmt.Errorf("bus: publish: %w: %w", ErrDisconnected, ctxErr)
	}
	return fmt.Errorf("bus: publish: %w", ctxErr)
}

// worker keeps one publishing channel open on the current publishing
// connection and writes messages to it, within its confirm window.
func (p *publisher) worker() {
	r := p.r
	fails := 0
	for {
		cs, err := r.await(r.closed, r.pub)
		if err != nil {
			return
		}
		pc, err := p.open(cs.conn)
		if err != nil {
			if r.isClosed() {
				return
			}
			fails++
			r.log.Debug("publish channel open failed", "err", r.scrub(err))
			select {
			case <-cs.dead:
			case <-time.After(r.backoff(fails)):
			case <-r.closed.Done():
				return
			}
			continue
		}
		p.up.Add(1)
		p.setLive(pc, true)
		p.run(pc)
		p.setLive(pc, false)
		p.up.Add(-1)
		pc.kill()
		ch := pc.ch
		pc.mu.Lock()
		retiring := pc.retiring
		pc.mu.Unlock()
		r.goTracked(func() {
			if retiring {
				// Let the copies still pending get their answers here,
				// rather than publish them again elsewhere.
				t := time.NewTimer(r.cfg.confirmTimeout)
				select {
				case <-pc.drained:
				case <-t.C:
				case <-r.closed.Done():
				}
				t.Stop()
			}
			_ = ch.Close() // may wait while the broker blocks us
		})
		// A channel retired for nacks met a quorum queue without its
		// leader: the next one waits until the election is likely over.
		if retiring {
			if !r.sleep(r.closed, nackPause) {
				return
			}
		}
		// Back off only when the broker keeps closing the channel (for
		// example 404 for a missing exchange); a lost connection is
		// waited for in await.
		if pc.brokerClosed.Load() {
			fails++
			if !r.sleep(r.closed, r.backoff(fails)) {
				return
			}
		} else {
			fails = 0
		}
	}
}

// open opens a channel in confirm mode and starts its reader.
func (p *publisher) open(c *amqp.Connection) (*pubChan, error) {
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	window := p.r.cfg.confirmWindow
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	returns := ch.NotifyReturn(make(chan amqp.Return, window+1))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	pc := &pubChan{
		ch:      ch,
		gen:     p.r.chanGen.Add(1),
		slots:   make(chan struct{}, window),
		pending: make(map[uint64]*pending, window),
		dead:    make(chan struct{}),
		drained: make(chan struct{}),
		opened:  time.Now(),
	}
	for i := 0; i < window; i++ {
		pc.slots <- struct{}{}
	}
	p.r.goTracked(func() { p.read(pc, confirms, returns, closes) })
	return pc, nil
}

// run writes messages on pc until it dies or the broker closes.
func (p *publisher) run(pc *pubChan) {
	closed := p.r.closed.Done()
	for {
		select {
		case <-pc.slots:
		case <-pc.dead:
			return
		case <-closed:
			return
		}
		var m *pubMsg
		for m == nil {
			blocked, _, changed := p.blockState()
			open, gateChanged := p.r.gate.state()
			if blocked || !open {
				// Blocked by the broker, or held until the client's
				// topology is declared again (see gate): messages wait,
				// new ones in Publish, by their context.
				select {
				case <-changed:
					continue
				case <-gateChanged:
					continue
				case <-pc.dead:
					return
				case <-closed:
					return
				}
			}
			if m = p.popRetry(); m != nil {
				break
			}
			select {
			case m = <-p.reqs:
			case <-p.retrySig:
			case <-changed:
			case <-gateChanged:
			case <-pc.dead:
				return
			case <-closed:
				return
			}
		}
		pc.wmu.Lock()
		select {
		case <-pc.dead:
			// Retired while this worker waited for work: m goes to a
			// live channel.
			pc.wmu.Unlock()
			p.requeue(m)
			return
		default:
		}
		ok := p.write(pc, m)
		pc.wmu.Unlock()
		if !ok {
			return
		}
	}
}

// write publishes one copy of m on pc; on failure m is queued again and pc
// is dead. The caller holds pc.wmu and one of pc's window slots. A copy
// written again (after a lost channel or an overdue confirm) carries the
// expiration left since Publish; when none is left it is not written,
// and its Confirmation fails with ErrExpired.
func (p *publisher) write(pc *pubChan, m *pubMsg) bool {
	if m.resend && m.expiration > 0 {
		left := m.expiration - time.Since(m.published)
		if left <= 0 {
			m.conf.resolve(fmt.Errorf("bus: publish to exchange %q key %q: %w: %w: its expiration of %v passed before it could be published again",
				m.exchange, m.key, ErrUnconfirmed, ErrExpired, m.expiration))
			select {
			case pc.slots <- struct{}{}:
			default:
			}
			return true
		}
		m.pub.Expiration = expirationString(left)
	}
	seq := pc.ch.GetNextPublishSeqNo()
	pc.mu.Lock()
	pub, match := pc.rids.take(m, &p.ids)
	pc.pending[seq] = &pending{m: m, sent: time.Now(), match: match}
	pc.mu.Unlock()
	_, err := pc.ch.PublishWithDeferredConfirm(m.exchange, m.key, m.mandatory, false, pub)
	if err != nil {
		pc.mu.Lock()
		it, mine := pc.pending[seq]
		delete(pc.pending, seq)
		if mine {
			pc.rids.release(it.match)
		}
		pc.mu.Unlock()
		if mine {
			p.requeue(m)
		}
		pc.kill()
		return false
	}
	m.writeOnce.Do(func() { close(m.written) })
	return true
}

// read drains pc's confirms and returns until the channel closes, resolves
// confirmations, and retires the channel when a confirm is overdue.
func (p *publisher) read(pc *pubChan, confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	every := p.r.cfg.confirmTimeout / 4
	if every > 250*time.Millisecond {
		every = 250 * time.Millisecond
	}
	if every < time.Millisecond {
		every = time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-confirms:
			if !ok {
				p.channelClosed(pc, returns, closes)
				return
			}
			// A return comes before the ack of the same message: take
			// every return already queued before settling this confirm.
			returns = p.drainReturns(pc, returns)
			p.confirmed(pc, c)
		case rt, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.markReturned(pc, rt)
		case now := <-tick.C:
			if p.overdue(pc, now) {
				p.retireOverdue(pc)
			}
		}
	}
}

func (p *publisher) drainReturns(pc *pubChan, returns <-chan amqp.Return) <-chan amqp.Return {
	for returns != nil {
		select {
		case rt, ok := <-returns:
			if !ok {
				return nil
			}
			p.markReturned(pc, rt)
		default:
			return returns
		}
	}
	return nil
}

// markReturned ties a basic.return to the pending copy it names: the match
// ids of a channel's pending copies are distinct (returnIDs).
func (p *publisher) markReturned(pc *pubChan, rt amqp.Return) {
	id, re := fromReturn(rt)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var best *pending
	var bestSeq uint64
	for seq, it := range pc.pending {
		if it.m.mandatory && it.returned == nil && it.match == id && (best == nil || seq < bestSeq) {
			best, bestSeq = it, seq
		}
	}
	if best != nil {
		best.returned = re
	}
}

// confirmed settles one broker ack or nack, and retires pc when it has
// nacked nackRetire times in a row for one destination.
func (p *publisher) confirmed(pc *pubChan, c amqp.Confirmation) {
	pc.mu.Lock()
	it := pc.pending[c.DeliveryTag]
	delete(pc.pending, c.DeliveryTag)
	var dest destination // unknown for a copy already handed elsewhere
	if it != nil {
		pc.rids.release(it.match)
		dest = destination{it.m.exchange, it.m.key}
	}
	acked := it != nil && c.Ack && it.returned == nil
	nacks := 0
	if !pc.probationOver {
		// Keep acked messages while the channel is on probation; the
		// map goes once it is over.
		if time.Since(pc.opened) >= probationFor {
			pc.probationOver = true
			pc.probation = nil
		} else if acked && !pc.retiring {
			if pc.probation == nil {
				pc.probation = make(map[destination][]*pubMsg)
			}
			kept := pc.probation[dest]
			if len(kept) == probationCopies {
				kept = append(kept[:0], kept[1:]...)
			}
			pc.probation[dest] = append(kept, it.m)
		}
	}
	if c.Ack {
		delete(pc.nacksInRow, dest)
	} else {
		if pc.nacksInRow == nil || len(pc.nacksInRow) >= maxNackDestinations {
			pc.nacksInRow = make(map[destination]int)
		}
		pc.nacksInRow[dest]++
		nacks = pc.nacksInRow[dest]
	}
	// An ack that a channel retired for nacks on dest gives later, for a
	// copy pending at its retirement, is no better than those before.
	var again []*pubMsg
	if acked && pc.suspect[dest] {
		again = append(again, it.m)
	}
	retire := nacks >= nackRetire && !pc.retiring
	if retire {
		again = append(again, pc.retireFor(dest)...)
	}
	pc.markDrained()
	pc.mu.Unlock()
	if retire {
		// The channels opened with pc are as likely to be broken for
		// dest: they go too, with what they acked for it.
		siblings := p.retireSiblings(pc, dest)
		// One warning a minute: a full queue could retire channels often.
		now := time.Now().UnixNano()
		if last := p.nackRetired.Load(); now-last > int64(time.Minute) && p.nackRetired.CompareAndSwap(last, now) {
			p.r.log.Warn("publish channel nacks a destination in a row: publishing on a fresh channel", "nacks", nackRetire, "exchange", dest.exchange, "key", dest.key, "republished", len(again), "siblings", siblings)
		} else {
			p.r.log.Debug("publish channel nacks a destination in a row: publishing on a fresh channel", "nacks", nackRetire, "exchange", dest.exchange, "key", dest.key, "republished", len(again), "siblings", siblings)
		}
		pc.kill()
	}
	if it == nil {
		p.owe(again)
		return // the copy was already handed to another channel
	}
	select {
	case pc.slots <- struct{}{}:
	default:
	}
	if !it.m.owed.IsZero() && (!c.Ack || it.returned != nil) {
		p.owedAgain(it.m, !c.Ack)
		p.owe(again)
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
	// Published again only after its caller has been told: an owed
	// message's Confirmation stays confirmed.
	p.owe(again)
}

// retireFor retires pc for nacks on dest: it takes no new message, its
// later acks for dest are suspect (see confirmed), and what it acked for
// dest during its probation is returned, to be published again. The
// caller holds pc.mu.
func (pc *pubChan) retireFor(dest destination) []*pubMsg {
	pc.retiring = true
	if pc.suspect == nil {
		pc.suspect = make(map[destination]bool, 1)
	}
	pc.suspect[dest] = true
	again := pc.probation[dest]
	pc.probation = nil
	pc.probationOver = true
	return again
}

// markDrained closes drained once pc is retiring and nothing is pending.
// The caller holds pc.mu.
func (pc *pubChan) markDrained() {
	if !pc.retiring || len(pc.pending) > 0 {
		return
	}
	select {
	case <-pc.drained:
	default:
		close(pc.drained)
	}
}

// retireSiblings retires, for nacks on dest, every other live channel
// still on probation, and publishes again what each acked for dest. It
// returns how many it retired.
func (p *publisher) retireSiblings(pc *pubChan, dest destination) int {
	chans := p.live.Load()
	if chans == nil {
		return 0
	}
	n := 0
	for _, o := range *chans {
		if o == pc {
			continue
		}
		o.mu.Lock()
		if o.retiring || o.probationOver || time.Since(o.opened) >= probationFor {
			o.mu.Unlock()
			continue
		}
		again := o.retireFor(dest)
		o.markDrained()
		o.mu.Unlock()
		o.kill()
		p.owe(again)
		n++
	}
	return n
}

// owe publishes ms again as owed messages (see pubMsg.owed): the broker
// acked them on a channel that may not have enqueued them.
func (p *publisher) owe(ms []*pubMsg) {
	at := time.Now()
	for _, m := range ms {
		if m.owed.IsZero() {
			m.owed = at
		}
		p.requeue(m)
	}
}

// owedAgain handles a nack (or return) of a copy of an owed message (see
// pubMsg.owed): its caller was told it is confirmed, so it is published
// again, until owedFor has passed since it became owed; then, and for a
// return (its queue is gone), the loss is logged as an error, with the
// message id that consumers deduplicate by.
func (p *publisher) owedAgain(m *pubMsg, nacked bool) {
	if nacked && time.Since(m.owed) < owedFor {
		p.r.log.Debug("publish: a copy of a message acked on a retired channel was nacked; publishing it again",
			"exchange", m.exchange, "key", m.key, "message_id", m.pub.MessageId)
		p.requeue(m)
		return
	}
	why := "returned"
	if nacked {
		why = "nacked for " + owedFor.String()
	}
	p.r.log.Error("publish: a message the broker acked on a channel retired for nacks could not be published again; it may be lost",
		"exchange", m.exchange, "key", m.key, "message_id", m.pub.MessageId, "copies", why)
}

// overdue reports whether a copy waited longer than the confirm timeout.
// While the broker blocks publishers, and for a timeout after, nothing is
// overdue: confirms are late for a known reason.
func (p *publisher) overdue(pc *pubChan, now time.Time) bool {
	blocked, unblockedAt, _ := p.blockState()
	if blocked {
		return false
	}
	limit := p.r.cfg.confirmTimeout
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, it := range pc.pending {
		start := it.sent
		if unblockedAt.After(start) {
			start = unblockedAt
		}
		if now.Sub(start) > limit {
			return true
		}
	}
	return false
}

// retireOverdue gives up on pc: its unconfirmed copies are published again
// on a fresh channel; the reader keeps draining until pc closes.
func (p *publisher) retireOverdue(pc *pubChan) {
	items := pc.takeAll()
	if p.r.down.republishing(len(items)) {
		p.r.log.Debug("confirm overdue: publishing again on a fresh channel", "unconfirmed", len(items), "timeout", p.r.cfg.confirmTimeout)
	} else {
		p.r.log.Warn("confirm overdue: publishing again on a fresh channel", "unconfirmed", len(items), "timeout", p.r.cfg.confirmTimeout)
	}
	pc.kill()
	for _, it := range items {
		if it.returned != nil {
			it.m.conf.resolve(it.returned)
			continue
		}
		p.requeue(it.m)
	}
}

// channelClosed handles the loss of pc: copies already returned resolve
// with their return; copies to an exchange the broker says does not exist
// (and that this broker never declared) resolve with ErrNotFound; the rest
// are published again.
func (p *publisher) channelClosed(pc *pubChan, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	p.drainReturns(pc, returns)
	var cerr *amqp.Error
	select {
	case e, ok := <-closes:
		if ok {
			cerr = e
		}
	default:
	}
	brokerErr := cerr != nil && cerr.Server && !isConnLoss(cerr)
	pc.brokerClosed.Store(brokerErr)
	pc.kill()
	items := pc.takeAll()
	pc.mu.Lock()
	pc.rids.reset() // nothing more comes from this channel
	pc.mu.Unlock()
	// named is the exchange the broker's error names, if it names one: only
	// messages for it count the failure, the others on the channel were
	// innocent and are simply sent again. missing is named when this broker
	// never declared it: those messages fail at once.
	named, missing := "", ""
	if brokerErr && cerr.Code == amqp.NotFound {
		named = missingExchange(cerr.Reason)
		missing = named
		if missing != "" && p.r.topo.hasExchange(missing) {
			missing = ""
		}
		p.r.log.Warn("publish channel closed by broker", "reason", p.r.scrubText(cerr.Reason))
	} else if brokerErr {
		p.r.log.Warn("publish channel closed by broker", "code", cerr.Code, "reason", p.r.scrubText(cerr.Reason))
	}
	if !brokerErr && len(items) > 0 {
		p.r.down.republishing(len(items))
	}
	for _, it := range items {
		m := it.m
		switch {
		case it.returned != nil:
			m.conf.resolve(it.returned)
		case missing != "" && m.exchange == missing:
			m.conf.resolve(p.r.mapErr(fmt.Sprintf("publish to exchange %q", m.exchange), cerr))
		case brokerErr && (named == "" || m.exchange == named):
			m.chanErrs++
			m.lastErr = cerr
			if m.chanErrs >= maxChannelErrors {
				m.conf.resolve(p.r.mapErr(fmt.Sprintf("publish to exchange %q", m.exchange), m.lastErr))
				continue
			}
			p.requeue(m)
		default:
			p.requeue(m)
		}
	}
}

// missingExchange reads the exchange name out of "NOT_FOUND - no exchange
// 'x' in vhost '/'".
func missingExchange(reason string) string {
	const pre = "no exchange '"
	i := strings.Index(reason, pre)
	if i < 0 {
		return ""
	}
	rest := reason[i+len(pre):]
	j := strings.Index(rest, "' in vhost")
	if j < 0 {
		return ""
	}
	return rest[:j]
}
