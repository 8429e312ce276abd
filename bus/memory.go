package bus

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
)

// Memory is the in-memory broker: exchanges, queues, bindings, confirms,
// mandatory returns, prefetch, acks, redelivery, message TTL, queue expiry
// and dead-lettering with RabbitMQ's semantics, inside one process. It is
// what Open returns for an empty address, and it passes the same
// conformance suite (package bustest) as the RabbitMQ broker.
//
// Everything lives in memory: Durable and Persistent are remembered but mean
// nothing across processes. A Memory is safe for concurrent use. Each
// Subscription runs one goroutine that hands deliveries out; Close stops
// them all. Publishing never blocks on consumers: a queue holds what its
// consumers have not taken, without bound unless the queue has a MaxLength.
//
// Differences from RabbitMQ worth knowing: there is one connection, so
// exclusive queues belong to the broker and go away with Close; per-message
// expiry is applied to every ready message, not only at the head of the
// queue; the exchange kinds are topic, direct and fanout only.
type Memory struct {
	cfg config

	mu        sync.Mutex // guards everything below and all queue and subscription state
	closed    bool
	exchanges map[string]*memExchange
	queues    map[string]*memQueue
	dirty     []*memQueue // queues that need a dispatch pass
}

var _ Broker = (*Memory)(nil)

// memExchange is a declared exchange and its bindings.
type memExchange struct {
	decl     Exchange
	bindings []*memBinding
	builtin  bool
}

type memBinding struct {
	queue *memQueue
	key   string
	words []string // topic binding key split on '.'
}

// NewMemory returns an empty in-memory broker with the exchanges RabbitMQ
// predeclares (amq.direct, amq.fanout, amq.topic) and the default exchange
// "". Options that only matter for RabbitMQ are accepted and ignored;
// WithMaxMessageSize and WithLogger apply. Invalid options give an error
// wrapping ErrInvalidConfig.
func NewMemory(opts ...Option) (*Memory, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	m := &Memory{
		cfg:       cfg,
		exchanges: make(map[string]*memExchange),
		queues:    make(map[string]*memQueue),
	}
	for _, ex := range []Exchange{
		{Name: "amq.direct", Kind: Direct, Durable: true},
		{Name: "amq.fanout", Kind: Fanout, Durable: true},
		{Name: "amq.topic", Kind: Topic, Durable: true},
	} {
		m.exchanges[ex.Name] = &memExchange{decl: ex, builtin: true}
	}
	return m, nil
}

func errClosed(op string) error { return fmt.Errorf("bus: %s: %w", op, ErrClosed) }

// begin checks the context and that the broker is open, and locks it.
func (m *Memory) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: %s: %w", op, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed(op)
	}
	return nil
}

// end runs pending dispatch passes and unlocks.
func (m *Memory) end() {
	m.flush()
	m.mu.Unlock()
}

// DeclareExchange creates the exchange if it does not exist; see Broker.
// Only the kinds Topic, Direct and Fanout are supported; the default
// exchange and names starting with "amq." cannot be declared (except an
// identical declaration of a predeclared one).
func (m *Memory) DeclareExchange(ctx context.Context, ex Exchange) error {
	if ex.Name == "" {
		return fmt.Errorf("%w: bus: the default exchange cannot be declared", ErrInvalidConfig)
	}
	if len(ex.Name) > MaxNameLen {
		return fmt.Errorf("%w: bus: exchange name longer than 255 bytes", ErrInvalidConfig)
	}
	switch ex.Kind {
	case Topic, Direct, Fanout:
	default:
		return fmt.Errorf("%w: bus: exchange %q: unsupported kind %q", ErrInvalidConfig, ex.Name, ex.Kind)
	}
	if err := m.begin(ctx, "declare exchange"); err != nil {
		return err
	}
	defer m.end()
	if old, ok := m.exchanges[ex.Name]; ok {
		if old.decl != ex {
			return fmt.Errorf("bus: exchange %q exists with other settings (%+v): %w", ex.Name, old.decl, ErrPrecondition)
		}
		return nil
	}
	if strings.HasPrefix(ex.Name, "amq.") {
		return fmt.Errorf("%w: bus: exchange name %q: the prefix amq. is reserved", ErrInvalidConfig, ex.Name)
	}
	m.exchanges[ex.Name] = &memExchange{decl: ex}
	return nil
}

// DeclareQueue creates the queue if it does not exist; see Broker. An
// empty Name gives a name starting "amq.gen-".
func (m *Memory) DeclareQueue(ctx context.Context, q Queue) (string, error) {
	if err := validateQueue(q); err != nil {
		return "", err
	}
	args, err := normalizeHeaders(q.Args)
	if err != nil {
		return "", err
	}
	q.Args = args
	if q.Quorum {
		q.Durable = true
	}
	if err := m.begin(ctx, "declare queue"); err != nil {
		return "", err
	}
	defer m.end()
	if q.Name == "" {
		for {
			q.Name = "amq.gen-" + randomName()
			if _, taken := m.queues[q.Name]; !taken {
				break
			}
		}
	} else if old, ok := m.queues[q.Name]; ok {
		if !sameQueue(old.decl, q) {
			return "", fmt.Errorf("bus: queue %q exists with other settings: %w", q.Name, ErrPrecondition)
		}
		old.touch(m)
		return q.Name, nil
	}
	nq := newMemQueue(q)
	m.queues[q.Name] = nq
	nq.touch(m)
	return q.Name, nil
}

func validateQueue(q Queue) error {
	var problems []string
	if len(q.Name) > MaxNameLen {
		problems = append(problems, "name longer than 255 bytes")
	}
	if strings.HasPrefix(q.Name, "amq.") {
		problems = append(problems, "the prefix amq. is reserved")
	}
	if q.MessageTTL < 0 {
		problems = append(problems, "negative message TTL")
	}
	if q.Expires < 0 {
		problems = append(problems, "negative expiry")
	}
	if q.MaxLength < 0 {
		problems = append(problems, "negative max length")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: bus: queue %q: %v", ErrInvalidConfig, q.Name, problems)
	}
	return nil
}

func sameQueue(a, b Queue) bool {
	if a.Durable != b.Durable || a.Exclusive != b.Exclusive || a.AutoDelete != b.AutoDelete ||
		a.DeadLetterExchange != b.DeadLetterExchange || a.DeadLetterKey != b.DeadLetterKey ||
		a.MessageTTL != b.MessageTTL || a.Expires != b.Expires || a.MaxLength != b.MaxLength ||
		a.Quorum != b.Quorum {
		return false
	}
	if len(a.Args) == 0 && len(b.Args) == 0 {
		return true
	}
	return reflect.DeepEqual(a.Args, b.Args)
}

// DeleteExchange deletes the exchange and its bindings; see Broker.
func (m *Memory) DeleteExchange(ctx context.Context, name string) error {
	if name == "" || strings.HasPrefix(name, "amq.") {
		return fmt.Errorf("%w: bus: exchange %q: the default and amq.* exchanges cannot be deleted", ErrInvalidConfig, name)
	}
	if err := m.begin(ctx, "delete exchange"); err != nil {
		return err
	}
	defer m.end()
	delete(m.exchanges, name)
	return nil
}

// DeleteQueue deletes the queue, its messages and its bindings; its
// subscriptions end with an error wrapping ErrNotFound. See Broker.
func (m *Memory) DeleteQueue(ctx context.Context, name string) error {
	if err := m.begin(ctx, "delete queue"); err != nil {
		return err
	}
	q, ok := m.queues[name]
	var subs []*memSub
	if ok {
		subs = m.deleteQueue(q)
	}
	m.end()
	waitStopped(subs)
	return nil
}

// deleteQueue removes q; the caller must wait for the returned
// subscriptions' goroutines after unlocking.
func (m *Memory) deleteQueue(q *memQueue) []*memSub {
	q.deleted = true
	delete(m.queues, q.decl.Name)
	q.stopTimers()
	q.ready.clear()
	for _, ex := range m.exchanges {
		if m.removeBindings(ex, func(b *memBinding) bool { return b.queue == q }) {
			m.maybeDeleteExchange(ex)
		}
	}
	subs := append([]*memSub(nil), q.subs...)
	err := fmt.Errorf("bus: queue %q was deleted: %w", q.decl.Name, ErrNotFound)
	for _, s := range subs {
		s.beginStop(err)
	}
	return subs
}

// Bind adds a binding; the exchange and the queue must exist (else an
// error wrapping ErrNotFound). Binding the same key twice is a no-op.
func (m *Memory) Bind(ctx context.Context, b Binding) error {
	if b.Exchange == "" {
		return fmt.Errorf("%w: bus: the default exchange cannot be bound", ErrInvalidConfig)
	}
	if len(b.Key) > MaxNameLen {
		return fmt.Errorf("%w: bus: binding key longer than 255 bytes", ErrInvalidConfig)
	}
	if err := m.begin(ctx, "bind"); err != nil {
		return err
	}
	defer m.end()
	ex, ok := m.exchanges[b.Exchange]
	if !ok {
		return fmt.Errorf("bus: bind: no exchange %q: %w", b.Exchange, ErrNotFound)
	}
	q, ok := m.queues[b.Queue]
	if !ok {
		return fmt.Errorf("bus: bind: no queue %q: %w", b.Queue, ErrNotFound)
	}
	for _, old := range ex.bindings {
		if old.queue == q && old.key == b.Key {
			return nil
		}
	}
	ex.bindings = append(ex.bindings, &memBinding{queue: q, key: b.Key, words: splitTopic(b.Key)})
	return nil
}

// Unbind removes a binding; a binding, exchange or queue that does not
// exist is not an error.
func (m *Memory) Unbind(ctx context.Context, b Binding) error {
	if err := m.begin(ctx, "unbind"); err != nil {
		return err
	}
	defer m.end()
	ex, ok := m.exchanges[b.Exchange]
	if !ok {
		return nil
	}
	if m.removeBindings(ex, func(x *memBinding) bool { return x.queue.decl.Name == b.Queue && x.key == b.Key }) {
		m.maybeDeleteExchange(ex)
	}
	return nil
}

// removeBindings drops ex's bindings for which drop is true and reports
// whether any went.
func (m *Memory) removeBindings(ex *memExchange, drop func(*memBinding) bool) bool {
	kept := ex.bindings[:0]
	for _, b := range ex.bindings {
		if !drop(b) {
			kept = append(kept, b)
		}
	}
	removed := len(kept) != len(ex.bindings)
	for i := len(kept); i < len(ex.bindings); i++ {
		ex.bindings[i] = nil
	}
	ex.bindings = kept
	return removed
}

// maybeDeleteExchange deletes an auto-delete exchange whose last binding
// went away.
func (m *Memory) maybeDeleteExchange(ex *memExchange) {
	if ex.decl.AutoDelete && len(ex.bindings) == 0 && !ex.builtin {
		delete(m.exchanges, ex.decl.Name)
	}
}

// Publish routes a copy of msg; see Broker. The Confirmation is resolved
// before Publish returns: nil, a *ReturnError for a Mandatory message that
// matched no queue, or ErrNacked when a queue it matched is at MaxLength
// (the other queues still get it). Publishing to an exchange that does
// not exist is an error wrapping ErrNotFound.
func (m *Memory) Publish(ctx context.Context, exchange, key string, msg Message) (*Confirmation, error) {
	if len(msg.Body) > m.cfg.maxMessageSize {
		return nil, fmt.Errorf("bus: publish: body of %d bytes exceeds %d: %w", len(msg.Body), m.cfg.maxMessageSize, ErrTooLarge)
	}
	if len(key) > MaxNameLen {
		return nil, fmt.Errorf("%w: bus: publish: routing key longer than 255 bytes", ErrInvalidConfig)
	}
	stored, err := copyMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("bus: publish: %w", err)
	}
	if err := m.begin(ctx, "publish"); err != nil {
		return nil, err
	}
	defer m.end()
	queues, err := m.route(exchange, key)
	if err != nil {
		return nil, err
	}
	c := newConfirmation()
	if len(queues) == 0 {
		if msg.Mandatory {
			c.resolve(&ReturnError{Exchange: exchange, Key: key, ReplyCode: 312, ReplyText: "NO_ROUTE"})
		} else {
			c.resolve(nil)
		}
		return c, nil
	}
	var full *memQueue
	now := time.Now()
	for _, q := range queues {
		if !q.enqueue(m, &memMsg{msg: stored, exchange: exchange, key: key}, now) {
			full = q
		}
	}
	if full != nil {
		c.resolve(fmt.Errorf("bus: queue %q is at its max length %d: %w", full.decl.Name, full.decl.MaxLength, ErrNacked))
	} else {
		c.resolve(nil)
	}
	return c, nil
}

// copyMessage returns msg as the broker keeps it: headers normalized and
// copied, body copied, timestamp in whole seconds, expiration in whole
// milliseconds, and no Mandatory flag.
func copyMessage(msg Message) (Message, error) {
	if msg.Expiration < 0 {
		return Message{}, fmt.Errorf("%w: negative expiration", ErrInvalidConfig)
	}
	h, err := normalizeHeaders(msg.Headers)
	if err != nil {
		return Message{}, err
	}
	msg.Headers = h
	if msg.Body != nil {
		msg.Body = append([]byte{}, msg.Body...)
	}
	if !msg.Timestamp.IsZero() {
		msg.Timestamp = time.Unix(msg.Timestamp.Unix(), 0)
	}
	if msg.Expiration > 0 {
		ms := msg.Expiration.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		msg.Expiration = time.Duration(ms) * time.Millisecond
	}
	msg.Mandatory = false
	return msg, nil
}

// route returns the queues a message published to exchange with key goes
// to, each once.
func (m *Memory) route(exchange, key string) ([]*memQueue, error) {
	if exchange == "" {
		if q, ok := m.queues[key]; ok {
			return []*memQueue{q}, nil
		}
		return nil, nil
	}
	ex, ok := m.exchanges[exchange]
	if !ok {
		return nil, fmt.Errorf("bus: publish: no exchange %q: %w", exchange, ErrNotFound)
	}
	var out []*memQueue
	var words []string
	if ex.decl.Kind == Topic {
		words = splitTopic(key)
	}
	for _, b := range ex.bindings {
		var match bool
		switch ex.decl.Kind {
		case Fanout:
			match = true
		case Direct:
			match = b.key == key
		case Topic:
			match = topicMatch(b.words, words)
		}
		if match && !containsQueue(out, b.queue) {
			out = append(out, b.queue)
		}
	}
	return out, nil
}

func containsQueue(qs []*memQueue, q *memQueue) bool {
	for _, x := range qs {
		if x == q {
			return true
		}
	}
	return false
}

// Consume starts a consumer on queue; see Broker. The queue must exist
// (else ErrNotFound). An exclusive consumer needs the queue to have no
// other consumer, and no consumer can join a queue that has an exclusive
// one: both are errors wrapping ErrPrecondition. A negative Prefetch is an
// error wrapping ErrInvalidConfig.
func (m *Memory) Consume(ctx context.Context, queue string, opts ConsumeOptions) (Subscription, error) {
	if opts.Prefetch < 0 {
		return nil, fmt.Errorf("%w: bus: consume: negative prefetch", ErrInvalidConfig)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = DefaultPrefetch
	}
	if opts.Tag == "" {
		opts.Tag = "amq.ctag-" + randomName()
	}
	if err := m.begin(ctx, "consume"); err != nil {
		return nil, err
	}
	defer m.end()
	q, ok := m.queues[queue]
	if !ok {
		return nil, fmt.Errorf("bus: consume: no queue %q: %w", queue, ErrNotFound)
	}
	for _, s := range q.consumers {
		if s.exclusive || opts.Exclusive {
			return nil, fmt.Errorf("bus: consume: queue %q is in exclusive use: %w", queue, ErrPrecondition)
		}
	}
	s := newMemSub(m, q, opts)
	q.attach(s)
	m.markDirty(q)
	go s.run()
	return s, nil
}

// Close stops every consumer (their Deliveries close, Err wraps ErrClosed)
// and drops every queue. It is idempotent; afterwards every method returns
// an error wrapping ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var subs []*memSub
	for _, q := range m.queues {
		q.deleted = true
		q.stopTimers()
		q.ready.clear()
		for _, s := range q.subs {
			s.beginStop(errClosed("broker"))
			subs = append(subs, s)
		}
	}
	m.queues = nil
	m.exchanges = nil
	m.dirty = nil
	m.mu.Unlock()
	waitStopped(subs)
	return nil
}

// markDirty asks for a dispatch pass over q before the lock is released.
func (m *Memory) markDirty(q *memQueue) {
	if q.dirty {
		return
	}
	q.dirty = true
	m.dirty = append(m.dirty, q)
}

// flush dispatches every dirty queue; dispatching may dead-letter and so
// dirty other queues, which are handled in the same pass.
func (m *Memory) flush() {
	for len(m.dirty) > 0 {
		q := m.dirty[0]
		m.dirty[0] = nil
		m.dirty = m.dirty[1:]
		q.dirty = false
		q.dispatch(m)
	}
	m.dirty = nil
}

func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
