package bus

import (
	"context"
	"fmt"
	"sync"
)

// memDirectReplyPrefetch bounds the replies the in-memory DirectReply
// hands out before they are received (RabbitMQ has no bound).
const memDirectReplyPrefetch = 1 << 16

var _ DirectReplier = (*Memory)(nil)

// memDirectReply emulates direct reply-to with a hidden queue named
// DirectReplyTo + ".<random>", which the default exchange routes to (as
// every queue); it is deleted on Close.
type memDirectReply struct {
	m    *Memory
	q    *memQueue
	sub  *memSub
	name string

	mu     sync.Mutex
	closed bool
}

// DirectReply opens an emulated direct reply-to; see DirectReplier. The
// replies' queue is invisible to DeclareQueue (names starting "amq." are
// reserved) and goes away on Close or with the broker.
func (m *Memory) DirectReply(ctx context.Context) (DirectReply, error) {
	if err := m.begin(ctx, "direct reply"); err != nil {
		return nil, err
	}
	defer m.end()
	var name string
	for {
		name = DirectReplyTo + "." + randomName()
		if _, taken := m.queues[name]; !taken {
			break
		}
	}
	q := newMemQueue(Queue{Name: name, Exclusive: true, AutoDelete: true})
	m.queues[name] = q
	s := newMemSub(m, q, ConsumeOptions{
		Prefetch:  memDirectReplyPrefetch,
		Exclusive: true,
		NoAck:     true,
		Tag:       "amq.ctag-" + randomName(),
	})
	q.attach(s)
	m.markDirty(q)
	go s.run()
	return &memDirectReply{m: m, q: q, sub: s, name: name}, nil
}

// Publish publishes msg with ReplyTo set to the DirectReply's queue; see
// DirectReply.
func (d *memDirectReply) Publish(ctx context.Context, exchange, key string, msg Message) (*Confirmation, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("bus: direct reply publish: %w", ErrClosed)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("bus: direct reply publish: %w", err)
	}
	msg.ReplyTo = d.name
	return d.m.Publish(ctx, exchange, key, msg)
}

// Deliveries returns the replies; see DirectReply.
func (d *memDirectReply) Deliveries() <-chan *Delivery { return d.sub.Deliveries() }

// Err reports why Deliveries closed when it was not Close.
func (d *memDirectReply) Err() error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil
	}
	return d.sub.Err()
}

// Close deletes the hidden queue and stops its consumer.
func (d *memDirectReply) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	m := d.m
	m.mu.Lock()
	var subs []*memSub
	if !m.closed && !d.q.deleted {
		subs = m.deleteQueue(d.q)
	}
	m.flush()
	m.mu.Unlock()
	waitStopped(subs)
	<-d.sub.done
	return nil
}
