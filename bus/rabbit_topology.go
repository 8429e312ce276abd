package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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

// removeExchange forgets the exchange and the bindings from it.
func (t *topology) removeExchange(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.exchanges, name)
	for b := range t.bindings {
		if b.Exchange == name {
			delete(t.bindings, b)
		}
	}
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

func (t *topology) addBinding(b Binding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bindings[b] = struct{}{}
}

func (t *topology) removeBinding(b Binding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.bindings, b)
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

// replayTopology declares everything remembered on a new consuming
// connection. A declaration the broker refuses is logged and skipped; the
// channel it closed is replaced. An exclusive queue still held by the
// previous connection (which the broker has not yet dropped) is declared
// again, with its bindings, by retryExclusive once the broker lets go.
func (r *Rabbit) replayTopology(c *amqp.Connection) {
	exs, qs, bs := r.topo.snapshot()
	if len(exs)+len(qs)+len(bs) == 0 {
		return
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
				r.log.Warn("topology replay: no channel", "err", r.scrub(err))
				return false
			}
		}
		if err := f(ch); err != nil {
			r.log.Warn("topology replay failed", "what", what, "err", r.scrub(err))
			return !isConnLoss(err) || !c.IsClosed()
		}
		return true
	}
	for _, e := range exs {
		e := e
		if !run("exchange "+e.Name, func(ch *amqp.Channel) error { return declareExchange(ch, e) }) {
			return
		}
	}
	var locked []string // exclusive queues still held by a previous connection
	for _, q := range qs {
		q := q
		var qerr error
		if !run("queue "+q.Name, func(ch *amqp.Channel) error { _, qerr = declareQueue(ch, q); return qerr }) {
			return
		}
		if q.Exclusive && exclusiveLost(qerr) {
			locked = append(locked, q.Name)
		}
	}
	if len(locked) > 0 {
		// The broker has not yet noticed that the previous connection is
		// gone: declare them again (with their bindings) once it has.
		r.goTracked(func() { r.retryExclusive(c, locked) })
	}
	for _, b := range bs {
		b := b
		if contains(locked, b.Queue) {
			continue // bound by retryExclusive
		}
		if !run("binding "+b.Exchange+"->"+b.Queue, func(ch *amqp.Channel) error { return ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil) }) {
			return
		}
	}
	r.log.Info("topology replayed", "exchanges", len(exs), "queues", len(qs), "bindings", len(bs))
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
// until each is declared or forgotten, c closes, or the broker closes.
func (r *Rabbit) retryExclusive(c *amqp.Connection, names []string) {
	closes := c.NotifyClose(make(chan *amqp.Error, 1))
	for fails := 1; len(names) > 0; fails++ {
		t := time.NewTimer(r.backoff(fails))
		select {
		case <-t.C:
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
			default:
				r.log.Debug("exclusive queue still held by the previous connection", "queue", n, "err", r.scrub(err))
				left = append(left, n)
			}
		}
		names = left
	}
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
		return err
	}
	// An auto-delete exchange may have gone with the old queue's bindings.
	for _, e := range exs {
		if err := declareExchange(ch, e); err != nil {
			return err
		}
	}
	for _, b := range bs {
		if err := ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil); err != nil {
			return err
		}
	}
	return nil
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
// when f succeeds. The declaration channel is replaced after the broker
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
		done := make(chan error, 1)
		r.goTracked(func() {
			defer func() { <-r.decl }()
			err := r.onDeclChannel(cs.conn, f)
			if err == nil && record != nil {
				record()
			}
			done <- err
		})
		select {
		case err = <-done:
		case <-ctx.Done():
			return fmt.Errorf("bus: %s: %w", op, ctx.Err())
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
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { return ch.ExchangeDelete(name, false, false) },
		func() { r.topo.removeExchange(name) })
	if errors.Is(err, ErrNotFound) {
		r.topo.removeExchange(name)
		return nil
	}
	return err
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
	if _, err := queueArgs(q); err != nil {
		return "", fmt.Errorf("bus: %s: %w", op, err)
	}
	q.Args = copyArgs(q.Args)
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { _, err := declareQueue(ch, q); return err },
		func() { r.topo.addQueue(q) })
	if err != nil {
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
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err },
		func() { r.topo.removeQueue(name) })
	if errors.Is(err, ErrNotFound) {
		r.topo.removeQueue(name)
		return nil
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
	err := r.declare(ctx, op, func(ch *amqp.Channel) error { return ch.QueueUnbind(b.Queue, b.Key, b.Exchange, nil) },
		func() { r.topo.removeBinding(b) })
	if errors.Is(err, ErrNotFound) {
		r.topo.removeBinding(b)
		return nil
	}
	return err
}
