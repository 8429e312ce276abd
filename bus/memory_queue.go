package bus

import (
	"strconv"
	"time"
)

// memMsg is one message in one queue of the in-memory broker. The Message
// is never changed after publish and may be shared between queues; each
// delivery gets its own copy.
type memMsg struct {
	msg         Message
	exchange    string
	key         string
	redelivered bool
	expireAt    time.Time // zero: never
}

// memQueue is a queue of the in-memory broker. All fields are guarded by
// Memory.mu.
type memQueue struct {
	decl Queue

	// Effective settings: the Queue fields, else the matching x-arguments.
	ttl, expires time.Duration
	maxLen       int
	dlx, dlk     string
	hasDLX       bool

	ready     msgDeque
	consumers []*memSub // taking deliveries, in round-robin order
	subs      []*memSub // attached and not yet released (a superset)
	rr        int
	deleted   bool
	dirty     bool

	expTimer  *time.Timer // fires at expAt to expire ready messages
	expAt     time.Time
	idleTimer *time.Timer // Expires: deletes the queue when unused
	idleGen   uint64
}

func newMemQueue(d Queue) *memQueue {
	q := &memQueue{decl: d, ttl: d.MessageTTL, expires: d.Expires, maxLen: d.MaxLength, dlx: d.DeadLetterExchange, dlk: d.DeadLetterKey}
	q.hasDLX = d.DeadLetterExchange != "" || d.DeadLetterKey != ""
	if v, ok := d.Args["x-dead-letter-exchange"].(string); ok && !q.hasDLX {
		q.dlx, q.hasDLX = v, true
	}
	if v, ok := d.Args["x-dead-letter-routing-key"].(string); ok && q.dlk == "" {
		q.dlk = v
	}
	if v, ok := d.Args["x-message-ttl"].(int64); ok && q.ttl == 0 && v >= 0 {
		q.ttl = time.Duration(v) * time.Millisecond
	}
	if v, ok := d.Args["x-expires"].(int64); ok && q.expires == 0 && v > 0 {
		q.expires = time.Duration(v) * time.Millisecond
	}
	if v, ok := d.Args["x-max-length"].(int64); ok && q.maxLen == 0 && v > 0 {
		q.maxLen = int(v)
	}
	return q
}

// enqueue adds mm at the tail, or reports false when the queue is at its
// max length (overflow reject-publish).
func (q *memQueue) enqueue(m *Memory, mm *memMsg, now time.Time) bool {
	if q.deleted {
		return true
	}
	if q.maxLen > 0 && q.ready.len() >= q.maxLen {
		return false
	}
	mm.expireAt = time.Time{}
	if q.ttl > 0 {
		mm.expireAt = now.Add(q.ttl)
	}
	if e := mm.msg.Expiration; e > 0 {
		if t := now.Add(e); mm.expireAt.IsZero() || t.Before(mm.expireAt) {
			mm.expireAt = t
		}
	}
	q.ready.push(mm)
	if !mm.expireAt.IsZero() {
		q.scheduleExpiry(m, mm.expireAt)
	}
	m.markDirty(q)
	return true
}

// requeue puts messages back at the head of the queue, in order.
func (q *memQueue) requeue(m *Memory, ms []*memMsg) {
	if q.deleted || len(ms) == 0 {
		return
	}
	q.ready.pushFront(ms)
	for _, mm := range ms {
		if !mm.expireAt.IsZero() {
			q.scheduleExpiry(m, mm.expireAt)
		}
	}
	m.markDirty(q)
}

// scheduleExpiry makes sure the expiry timer fires no later than at.
func (q *memQueue) scheduleExpiry(m *Memory, at time.Time) {
	if q.expTimer != nil && !q.expAt.After(at) {
		return
	}
	if q.expTimer != nil {
		q.expTimer.Stop()
	}
	q.expAt = at
	q.expTimer = time.AfterFunc(time.Until(at), func() { m.expireDue(q) })
}

// expireDue dead-letters (or drops) every ready message whose time is up,
// and schedules the timer for the next one.
func (m *Memory) expireDue(q *memQueue) {
	m.mu.Lock()
	defer m.end()
	if m.closed || q.deleted {
		return
	}
	now := time.Now()
	if q.expTimer != nil && q.expAt.After(now) {
		return // a stale timer: a newer one is set
	}
	q.expTimer, q.expAt = nil, time.Time{}
	var next time.Time
	expired := q.ready.removeIf(func(mm *memMsg) bool {
		if mm.expireAt.IsZero() {
			return false
		}
		if !mm.expireAt.After(now) {
			return true
		}
		if next.IsZero() || mm.expireAt.Before(next) {
			next = mm.expireAt
		}
		return false
	})
	if !next.IsZero() {
		q.scheduleExpiry(m, next)
	}
	for _, mm := range expired {
		m.deadLetter(q, mm, "expired")
	}
}

// dispatch hands ready messages to consumers with room under their
// prefetch, in turn, dead-lettering those that expired on the way.
func (q *memQueue) dispatch(m *Memory) {
	if q.deleted {
		return
	}
	var now time.Time
	for q.ready.len() > 0 {
		s := q.nextConsumer()
		if s == nil {
			return
		}
		mm := q.ready.pop()
		if !mm.expireAt.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			if !mm.expireAt.After(now) {
				m.deadLetter(q, mm, "expired")
				continue
			}
		}
		s.push(mm)
	}
}

// nextConsumer returns the next consumer in turn that has room, or nil.
func (q *memQueue) nextConsumer() *memSub {
	n := len(q.consumers)
	for i := 0; i < n; i++ {
		s := q.consumers[(q.rr+i)%n]
		if s.inflight() < s.prefetch {
			q.rr = (q.rr + i + 1) % n
			return s
		}
	}
	return nil
}

// attach adds a new consumer.
func (q *memQueue) attach(s *memSub) {
	q.consumers = append(q.consumers, s)
	q.subs = append(q.subs, s)
	q.stopIdle()
}

// detach stops giving s deliveries.
func (q *memQueue) detach(s *memSub) {
	q.consumers = removeSub(q.consumers, s)
	if q.rr >= len(q.consumers) {
		q.rr = 0
	}
}

// release forgets s; when it was the last, an auto-delete queue is deleted
// (the returned subscriptions must be waited for), else the expiry clock
// starts.
func (q *memQueue) release(m *Memory, s *memSub) []*memSub {
	q.detach(s)
	q.subs = removeSub(q.subs, s)
	if len(q.subs) > 0 || q.deleted {
		return nil
	}
	if q.decl.AutoDelete {
		return m.deleteQueue(q)
	}
	q.touch(m)
	return nil
}

func removeSub(list []*memSub, s *memSub) []*memSub {
	for i, x := range list {
		if x == s {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			return list[:len(list)-1]
		}
	}
	return list
}

// touch records a use of the queue: the Expires clock starts again.
func (q *memQueue) touch(m *Memory) {
	q.stopIdle()
	if q.expires <= 0 || len(q.subs) > 0 {
		return
	}
	gen := q.idleGen
	q.idleTimer = time.AfterFunc(q.expires, func() { m.expireQueue(q, gen) })
}

func (q *memQueue) stopIdle() {
	q.idleGen++
	if q.idleTimer != nil {
		q.idleTimer.Stop()
		q.idleTimer = nil
	}
}

func (q *memQueue) stopTimers() {
	q.stopIdle()
	if q.expTimer != nil {
		q.expTimer.Stop()
		q.expTimer = nil
	}
}

// expireQueue deletes q if it has stayed unused since generation gen.
func (m *Memory) expireQueue(q *memQueue, gen uint64) {
	m.mu.Lock()
	if m.closed || q.deleted || gen != q.idleGen || len(q.subs) > 0 {
		m.mu.Unlock()
		return
	}
	subs := m.deleteQueue(q)
	m.end()
	waitStopped(subs)
}

// deadLetter sends mm, taken out of q for reason ("rejected", "expired"),
// to q's dead-letter exchange, or drops it if q has none. As RabbitMQ does,
// it records the death in the x-death header, removes the per-message
// expiration, and drops the message where it would come back to a queue
// it died in without a rejection on the way.
func (m *Memory) deadLetter(q *memQueue, mm *memMsg, reason string) {
	if !q.hasDLX {
		return
	}
	key := mm.key
	if q.dlk != "" {
		key = q.dlk
	}
	targets, err := m.route(q.dlx, key)
	if err != nil || len(targets) == 0 {
		m.cfg.logger.Debug("bus: dead letter dropped: no route", "queue", q.decl.Name, "exchange", q.dlx, "key", key)
		return
	}
	msg := mm.msg
	msg.Headers = addDeath(mm, q.decl.Name, reason)
	msg.Expiration = 0
	now := time.Now()
	for _, t := range targets {
		if reason != "rejected" && isDeathCycle(msg.Headers, t.decl.Name) {
			continue
		}
		if !t.enqueue(m, &memMsg{msg: msg, exchange: q.dlx, key: key}, now) {
			m.cfg.logger.Debug("bus: dead letter dropped: queue full", "queue", t.decl.Name)
		}
	}
}

// addDeath returns a copy of mm's headers with the death recorded as
// RabbitMQ 3.x records it.
func addDeath(mm *memMsg, queue, reason string) map[string]any {
	h := cloneHeaders(mm.msg.Headers)
	if h == nil {
		h = make(map[string]any)
	}
	old, _ := h["x-death"].([]any)
	deaths := make([]any, 0, len(old)+1)
	var count int64 = 1
	for _, e := range old {
		t, ok := e.(map[string]any)
		if ok && t["queue"] == queue && t["reason"] == reason {
			if c, ok := t["count"].(int64); ok {
				count = c + 1
			}
			continue
		}
		deaths = append(deaths, e)
	}
	entry := map[string]any{
		"count":        count,
		"reason":       reason,
		"queue":        queue,
		"time":         time.Unix(time.Now().Unix(), 0),
		"exchange":     mm.exchange,
		"routing-keys": []any{mm.key},
	}
	if mm.msg.Expiration > 0 {
		entry["original-expiration"] = strconv.FormatInt(mm.msg.Expiration.Milliseconds(), 10)
	}
	h["x-death"] = append([]any{entry}, deaths...)
	if _, ok := h["x-first-death-reason"]; !ok {
		h["x-first-death-reason"] = reason
		h["x-first-death-queue"] = queue
		h["x-first-death-exchange"] = mm.exchange
	}
	return h
}

// isDeathCycle reports whether a message with these headers already died
// in queue, with no rejection in its history.
func isDeathCycle(h map[string]any, queue string) bool {
	deaths, _ := h["x-death"].([]any)
	seen := false
	for _, e := range deaths {
		t, _ := e.(map[string]any)
		if t["reason"] == "rejected" {
			return false
		}
		if t["queue"] == queue {
			seen = true
		}
	}
	return seen
}

// msgDeque is a FIFO of messages with cheap pops at the head.
type msgDeque struct {
	buf  []*memMsg
	head int
}

func (d *msgDeque) len() int { return len(d.buf) - d.head }

func (d *msgDeque) push(mm *memMsg) { d.buf = append(d.buf, mm) }

func (d *msgDeque) pop() *memMsg {
	mm := d.buf[d.head]
	d.buf[d.head] = nil
	d.head++
	switch {
	case d.head == len(d.buf):
		d.buf, d.head = d.buf[:0], 0
	case d.head >= 1024 && d.head*2 >= len(d.buf):
		n := copy(d.buf, d.buf[d.head:])
		clear(d.buf[n:])
		d.buf, d.head = d.buf[:n], 0
	}
	return mm
}

// pushFront puts ms before the head, keeping their order.
func (d *msgDeque) pushFront(ms []*memMsg) {
	if len(ms) <= d.head {
		d.head -= len(ms)
		copy(d.buf[d.head:], ms)
		return
	}
	nb := make([]*memMsg, 0, len(ms)+d.len()+8)
	nb = append(nb, ms...)
	nb = append(nb, d.buf[d.head:]...)
	d.buf, d.head = nb, 0
}

// removeIf removes and returns, in order, the messages for which f is true.
func (d *msgDeque) removeIf(f func(*memMsg) bool) []*memMsg {
	var out []*memMsg
	kept := d.buf[:d.head]
	for _, mm := range d.buf[d.head:] {
		if f(mm) {
			out = append(out, mm)
		} else {
			kept = append(kept, mm)
		}
	}
	clear(d.buf[len(kept):])
	d.buf = kept
	return out
}

func (d *msgDeque) clear() { d.buf, d.head = nil, 0 }
