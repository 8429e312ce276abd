package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// topology remembers every exchange, queue and binding declared through
// the broker (and forgets them on DeleteQueue and Unbind), so that they can
// be declared again on a new connection.
type topology struct {
	mu        sync.Mutex
	exchanges map[string]Exchange
	queues    map[string]Queue
	bindings  map[Binding]struct{}
	order     []string // queue names in declaration order
}

func newTopology() *topology {
	return &topology{
		exchanges: make(map[string]Exchange),
		queues:    make(map[string]Queue),
		bindings:  make(map[Binding]struct{}),
	}
}

// fragile reports whether anything remembered goes away with a
// connection or a broker restart: an exclusive, auto-delete or transient
// queue, an auto-delete or transient exchange. Durable queues, exchanges
// and their bindings stay on the broker while a client reconnects.
func (t *topology) fragile() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, q := range t.queues {
		if q.Exclusive || q.AutoDelete || !(q.Durable || q.Quorum) {
			return true
		}
	}
	for _, e := range t.exchanges {
		if e.AutoDelete || !e.Durable {
			return true
		}
	}
	return false
}

func (t *topology) addExchange(ex Exchange) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exchanges[ex.Name] = ex
}

func (t *topology) hasExchange(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.exchanges[name]
	return ok
}

func (t *topology) addQueue(q Queue) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.queues[q.Name]; !ok {
		t.order = append(t.order, q.Name)
	}
	t.queues[q.Name] = q
}

func (t *topology) removeQueue(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.queues[name]; !ok {
		return
	}
	delete(t.queues, name)
	for i, n := range t.order {
		if n == name {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
	for b := range t.bindings {
		if b.Queue == name {
			delete(t.bindings, b)
		}
	}
}

// forgotten is what takeQueue or takeExchange removed from the topology,
// to be put back when the broker refuses the deletion.
type forgotten struct {
	queue    *Queue
	exchange *Exchange
	bindings []Binding
	pos      int // the queue's place in the declaration order
}

// takeQueue forgets the queue and its bindings and returns them.
func (t *topology) takeQueue(name string) forgotten {
	t.mu.Lock()
	defer t.mu.Unlock()
	q, ok := t.queues[name]
	if !ok {
		return forgotten{}
	}
	f := forgotten{queue: &q, pos: len(t.order)}
	delete(t.queues, name)
	for i, n := range t.order {
		if n == name {
			f.pos = i
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
	for b := range t.bindings {
		if b.Queue == name {
			f.bindings = append(f.bindings, b)
			delete(t.bindings, b)
		}
	}
	return f
}

// takeExchange forgets the exchange and the bindings from it and returns
// them.
func (t *topology) takeExchange(name string) forgotten {
	t.mu.Lock()
	defer t.mu.Unlock()
	ex, ok := t.exchanges[name]
	if !ok {
		return forgotten{}
	}
	f := forgotten{exchange: &ex}
	delete(t.exchanges, name)
	for b := range t.bindings {
		if b.Exchange == name {
			f.bindings = append(f.bindings, b)
			delete(t.bindings, b)
		}
	}
	return f
}

// restore puts back what takeQueue or takeExchange removed, unless it was
// declared again meanwhile.
func (t *topology) restore(f forgotten) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if q := f.queue; q != nil {
		if _, again := t.queues[q.Name]; again {
			return
		}
		t.queues[q.Name] = *q
		pos := min(f.pos, len(t.order))
		t.order = append(t.order[:pos], append([]string{q.Name}, t.order[pos:]...)...)
	}
	if ex := f.exchange; ex != nil {
		if _, again := t.exchanges[ex.Name]; again {
			return
		}
		t.exchanges[ex.Name] = *ex
	}
	for _, b := range f.bindings {
		t.bindings[b] = struct{}{}
	}
}

func (t *topology) addBinding(b Binding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bindings[b] = struct{}{}
}

// takeBinding forgets b and reports whether it was remembered.
func (t *topology) takeBinding(b Binding) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.bindings[b]
	delete(t.bindings, b)
	return ok
}

// exclusive returns the remembered queue, its bindings and the
// remembered exchanges they bind to, when the queue is exclusive.
func (t *topology) exclusive(name string) (Queue, []Binding, []Exchange, bool) {
	q, bs, exs, ok := t.remembered(name)
	if !ok || !q.Exclusive {
		return Queue{}, nil, nil, false
	}
	return q, bs, exs, true
}

// remembered returns the remembered queue, its bindings and the
// remembered exchanges they bind to.
func (t *topology) remembered(name string) (Queue, []Binding, []Exchange, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q, ok := t.queues[name]
	if !ok {
		return Queue{}, nil, nil, false
	}
	var bs []Binding
	var exs []Exchange
	seen := make(map[string]bool)
	for b := range t.bindings {
		if b.Queue != name {
			continue
		}
		bs = append(bs, b)
		if ex, ok := t.exchanges[b.Exchange]; ok && !seen[ex.Name] {
			seen[ex.Name] = true
			exs = append(exs, ex)
		}
	}
	return q, bs, exs, true
}

// snapshot returns the topology in replay order.
func (t *topology) snapshot() ([]Exchange, []Queue, []Binding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	exs := make([]Exchange, 0, len(t.exchanges))
	for _, e := range t.exchanges {
		exs = append(exs, e)
	}
	qs := make([]Queue, 0, len(t.order))
	for _, n := range t.order {
		qs = append(qs, t.queues[n])
	}
	bs := make([]Binding, 0, len(t.bindings))
	for b := range t.bindings {
		bs = append(bs, b)
	}
	return exs, qs, bs
}

func declareExchange(ch *amqp.Channel, e Exchange) error {
	return ch.ExchangeDeclare(e.Name, string(e.Kind), e.Durable, e.AutoDelete, false, false, nil)
}

func declareQueue(ch *amqp.Channel, q Queue) (amqp.Queue, error) {
	args, err := queueArgs(q)
	if err != nil {
		return amqp.Queue{}, err
	}
	return ch.QueueDeclare(q.Name, q.Durable || q.Quorum, q.AutoDelete, q.Exclusive, false, args)
}

// queueArgs builds the x-arguments of a queue.
func queueArgs(q Queue) (amqp.Table, error) {
	args := amqp.Table{}
	for k, v := range q.Args {
		args[k] = toField(v)
	}
	if q.DeadLetterExchange != "" || q.DeadLetterKey != "" {
		args["x-dead-letter-exchange"] = q.DeadLetterExchange
	}
	if q.DeadLetterKey != "" {
		args["x-dead-letter-routing-key"] = q.DeadLetterKey
	}
	if q.MessageTTL > 0 {
		args["x-message-ttl"] = q.MessageTTL.Milliseconds()
	}
	if q.Expires > 0 {
		ms := q.Expires.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		args["x-expires"] = ms
	}
	if q.MaxLength > 0 {
		args["x-max-length"] = int64(q.MaxLength)
		if q.Quorum {
			// A quorum queue rejects publishes once it is over its
			// limit, not at it: one less gives MaxLength messages.
			args["x-max-length"] = int64(q.MaxLength - 1)
		}
		args["x-overflow"] = "reject-publish"
	}
	if q.Quorum {
		args["x-queue-type"] = "quorum"
	}
	if len(args) == 0 {
		return nil, nil
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("%w: queue arguments: %v", ErrInvalidConfig, err)
	}
	return args, nil
}

// declare runs f on the declaration channel of the consuming connection.
// It waits for a connection bounded by ctx, retries when the connection is
// lost mid-call, and runs record (under the same lock as topology replays)
// when f succeeds while the caller still waits: a call whose ctx ended
// first returns ctx's error, and is not recorded even if the broker takes
// it later. The declaration channel is replaced after the broker
// closes it for a refused declaration, so a refusal never poisons it.
func (r *Rabbit) declare(ctx context.Context, op string, f func(*amqp.Channel) error, record func()) error {
	if r.isClosed() {
		return fmt.Errorf("bus: %s: %w", op, r.errClosed())
	}
	for {
		cs, err := r.await(ctx, r.sub)
		if err != nil {
			return fmt.Errorf("bus: %s: %w", op, err)
		}
		select {
		case r.decl <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("bus: %s: %w: %w", op, ErrDisconnected, ctx.Err())
		case <-r.closed.Done():
			return fmt.Errorf("bus: %s: %w", op, r.errClosed())
		}
		if cur, _ := r.sub.current(); cur != cs {
			<-r.decl // replaced meanwhile: start again on the new one
			continue
		}
		// The call runs aside so that ctx bounds the wait; if ctx ends
		// first, the caller is told it failed, so a declaration the broker
		// takes later must not be remembered (and declared again after a
		// reconnect). The lock decides which came first.
		var mu sync.Mutex
		finished, abandoned := false, false
		done := make(chan error, 1)
		r.goTracked(func() {
			defer func() { <-r.decl }()
			err := r.onDeclChannel(cs.conn, f)
			mu.Lock()
			if err == nil && record != nil && !abandoned {
				record()
			}
			finished = true
			mu.Unlock()
			done <- err
		})
		select {
		case err = <-done:
		case <-ctx.Done():
			mu.Lock()
			if !finished {
				abandoned = true
				mu.Unlock()
				return fmt.Errorf("bus: %s: %w", op, ctx.Err())
			}
			mu.Unlock()
			err = <-done // it finished, and is remembered: report its outcome
		}
		if err != nil && isConnLoss(err) && !r.isClosed() {
			// Lost mid-call: wait for the reconnect and try again.
			select {
			case <-cs.dead:
				continue
			case <-ctx.Done():
				return fmt.Errorf("bus: %s: %w: %w", op, ErrDisconnected, ctx.Err())
			case <-r.closed.Done():
				return fmt.Errorf("bus: %s: %w", op, r.errClosed())
			}
		}
		return r.mapErr(op, err)
	}
}

// onDeclChannel runs f on the declaration channel, opening a fresh one when
// needed. The caller holds r.decl.
func (r *Rabbit) onDeclChannel(c *amqp.Connection, f func(*amqp.Channel) error) error {
	if r.declCh == nil || r.declCh.IsClosed() || r.declConn != c {
		if r.declCh != nil && !r.declCh.IsClosed() {
			_ = r.declCh.Close()
		}
		ch, err := c.Channel()
		if err != nil {
			r.declCh = nil
			return err
		}
		r.declCh, r.declConn = ch, c
	}
	return f(r.declCh)
}

// DeclareExchange declares the exchange on the consuming connection and
// remembers it for reconnects. Conflicting settings give ErrPrecondition.
func (r *Rabbit) DeclareExchange(ctx context.Context, ex Exchange) error {
	op := fmt.Sprintf("declare exchange %q", ex.Name)
	if err := checkShort("exchange name", ex.Name); err != nil {
		return fmt.Errorf("bus: %s: %w", op, err)
	}
	switch ex.Kind {
	case Topic, Direct, Fanout:
	default:
		return fmt.Errorf("bus: %s: %w: unknown kind %q", op, ErrInvalidConfig, ex.Kind)
	}
	if ex.Name == "" {
		return fmt.Errorf("bus: %s: %w: empty exchange name", op, ErrInvalidConfig)
	}
	return r.declare(ctx, op, func(ch *amqp.Channel) error { return declareExchange(ch, ex) },
		func() { r.topo.addExchange(ex) })
}

// DeleteExchange deletes the exchange and forgets it and its bindings, so
// that a reconnect does not declare them again.
func (r *Rabbit) DeleteExchange(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete exchange %q", name)
	if err := checkShort("exchange name", name); err != nil {
		return fmt.Errorf("bus: %s: %w", op, err)
	}
	if name == "" || strings.HasPrefix(name, "amq.") {
		return fmt.Errorf("bus: %s: %w: the default and amq.* exchanges cannot be deleted", op, ErrInvalidConfig)
	}
	// Forgotten first: from now on no replay declares it again. Put back
	// only if the broker refuses the deletion.
	was := r.topo.takeExchange(name)
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { return ch.ExchangeDelete(name, false, false) }, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if refused(err) {
		r.topo.restore(was)
	}
	return err
}

// refused reports whether err is the broker's refusal of an operation,
// as opposed to success, a missing target, or a call that ended without
// an answer (context, lost connection, Close), whose outcome is unknown.
func refused(err error) bool {
	return err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrDisconnected) && !errors.Is(err, ErrClosed) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// DeclareQueue declares the queue on the consuming connection and remembers
// it for reconnects. A queue with an empty Name must be Exclusive; it gets a
// name chosen here ("patbus.gen-…") rather than by the broker, so that it
// can be declared again under the same name after a reconnect.
func (r *Rabbit) DeclareQueue(ctx context.Context, q Queue) (string, error) {
	if q.Name == "" {
		if !q.Exclusive {
			return "", fmt.Errorf("bus: declare queue: %w: a queue without a name must be exclusive", ErrInvalidConfig)
		}
		var b [12]byte
		_, _ = rand.Read(b[:])
		q.Name = "patbus.gen-" + hex.EncodeToString(b[:])
	}
	op := fmt.Sprintf("declare queue %q", q.Name)
	if err := checkShort("queue name", q.Name); err != nil {
		return "", fmt.Errorf("bus: %s: %w", op, err)
	}
	if q.Quorum && (q.Exclusive || q.AutoDelete) {
		return "", fmt.Errorf("bus: %s: %w: a quorum queue cannot be exclusive or auto-delete", op, ErrInvalidConfig)
	}
	q, madeQuorum, err := r.cfg.quorumQueue(q)
	if err != nil {
		return "", fmt.Errorf("bus: %s: %w", op, err)
	}
	if _, err := queueArgs(q); err != nil {
		return "", fmt.Errorf("bus: %s: %w", op, err)
	}
	q.Args = copyArgs(q.Args)
	err = r.declare(ctx, op, func(ch *amqp.Channel) error { _, err := declareQueue(ch, q); return err },
		func() { r.topo.addQueue(q) })
	if err != nil {
		if madeQuorum && errors.Is(err, ErrPrecondition) {
			err = quorumHint(err)
		}
		return "", err
	}
	return q.Name, nil
}

func copyArgs(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// DeleteQueue deletes the queue and forgets it and its bindings. A queue
// that does not exist is not an error.
func (r *Rabbit) DeleteQueue(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete queue %q", name)
	if err := checkShort("queue name", name); err != nil {
		return fmt.Errorf("bus: %s: %w", op, err)
	}
	// Forgotten before the broker is asked: its consumers hear of the
	// deletion (basic.cancel) maybe before the deletion returns here, and
	// must find the queue no longer remembered, so that they end instead
	// of declaring it again; no replay declares it again either. Put back
	// only if the broker refuses the deletion.
	was := r.topo.takeQueue(name)
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err }, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if refused(err) {
		r.topo.restore(was)
	}
	return err
}

// Bind binds the queue to the exchange and remembers the binding. A missing
// exchange or queue gives ErrNotFound.
func (r *Rabbit) Bind(ctx context.Context, b Binding) error {
	op := fmt.Sprintf("bind %q to %q with %q", b.Queue, b.Exchange, b.Key)
	for what, s := range map[string]string{"exchange name": b.Exchange, "queue name": b.Queue, "binding key": b.Key} {
		if err := checkShort(what, s); err != nil {
			return fmt.Errorf("bus: %s: %w", op, err)
		}
	}
	return r.declare(ctx, op, func(ch *amqp.Channel) error { return ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil) },
		func() { r.topo.addBinding(b) })
}

// Unbind removes the binding and forgets it. A binding, exchange or queue
// that does not exist is not an error.
func (r *Rabbit) Unbind(ctx context.Context, b Binding) error {
	op := fmt.Sprintf("unbind %q from %q with %q", b.Queue, b.Exchange, b.Key)
	for what, s := range map[string]string{"exchange name": b.Exchange, "queue name": b.Queue, "binding key": b.Key} {
		if err := checkShort(what, s); err != nil {
			return fmt.Errorf("bus: %s: %w", op, err)
		}
	}
	known := r.topo.takeBinding(b)
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { return ch.QueueUnbind(b.Queue, b.Key, b.Exchange, nil) }, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if refused(err) && known {
		r.topo.addBinding(b)
	}
	return err
}
