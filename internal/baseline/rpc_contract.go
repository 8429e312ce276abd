package baseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The contract variants below are the tutorial's RPC client and server with
// what patbus promises on the wire added, written as a user of plain
// amqp091-go would: requests published mandatory on a confirm-mode channel
// of a connection of their own, with an expiration, a message id, the
// pattern as type, a timestamp and the headers traceparent and
// patbus-deadline; the handler bounded by that deadline and run on a pool
// of workers; each reply published on the request's channel and the request
// acked after it, as the tutorial does and as patbus's Server does by
// default. Comparing patbus with them measures the framework's own
// overhead; comparing them with the tutorial measures what the contract
// costs RabbitMQ and amqp091-go.

// ContractServer is RPCServer keeping patbus's contract.
type ContractServer struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	queue string
	done  chan struct{}
}

// NewContractServer starts a ContractServer on queue (declared auto-delete)
// with workers goroutines, as many as the prefetch.
func NewContractServer(url, queue string, prefetch int, handle func([]byte) []byte) (*ContractServer, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	s := &ContractServer{conn: conn, queue: queue, done: make(chan struct{})}
	fail := func(err error) (*ContractServer, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("baseline: contract server: %w", err)
	}
	if s.ch, err = conn.Channel(); err != nil {
		return fail(err)
	}
	if _, err := s.ch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		return fail(err)
	}
	if err := s.ch.Qos(prefetch, 0, false); err != nil {
		return fail(err)
	}
	msgs, err := s.ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return fail(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < prefetch; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range msgs {
				s.answer(d, handle)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return s, nil
}

func (s *ContractServer) answer(d amqp.Delivery, handle func([]byte) []byte) {
	ctx := context.Background()
	if dl, ok := d.Headers["patbus-deadline"].(int64); ok {
		if !time.Now().Before(time.UnixMilli(dl)) {
			_ = d.Ack(false) // nobody waits any more
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(dl))
		defer cancel()
	}
	body := handle(d.Body)
	err := s.ch.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
		ContentType:   "application/json",
		CorrelationId: d.CorrelationId,
		AppId:         "bench@1.0.0",
		Body:          body,
	})
	if err != nil {
		_ = d.Nack(false, true)
		return
	}
	_ = d.Ack(false)
}

// Bind binds the server's queue with key to the topic exchange named
// exchange, declared auto-delete (it goes with its last binding), so that
// requests reach it as acts reach a service by default.
func (s *ContractServer) Bind(exchange, key string) error {
	if err := s.ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		return fmt.Errorf("baseline: declare %s: %w", exchange, err)
	}
	if err := s.ch.QueueBind(s.queue, key, exchange, false, nil); err != nil {
		return fmt.Errorf("baseline: bind %s: %w", s.queue, err)
	}
	return nil
}

// Close stops the server and closes its connection.
func (s *ContractServer) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// ContractClient is RPCClient keeping patbus's contract.
type ContractClient struct {
	sub, pub *amqp.Connection
	ch, pch  *amqp.Channel
	reply    string
	done     chan struct{}

	pmu sync.Mutex // one publisher at a time on pch

	mu      sync.Mutex
	pending map[string]chan answer
}

// answer is a reply, or the return of the request (no route).
type answer struct {
	body     []byte
	returned bool
}

// NewContractClient connects to url (twice) and starts consuming its reply
// queue.
func NewContractClient(url string) (*ContractClient, error) {
	sub, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	pub, err := amqp.Dial(url)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	c := &ContractClient{sub: sub, pub: pub, done: make(chan struct{}), pending: map[string]chan answer{}}
	fail := func(err error) (*ContractClient, error) {
		_ = sub.Close()
		_ = pub.Close()
		return nil, fmt.Errorf("baseline: contract client: %w", err)
	}
	if c.pch, err = pub.Channel(); err != nil {
		return fail(err)
	}
	if err := c.pch.Confirm(false); err != nil {
		return fail(err)
	}
	// Returns end a call at once; confirms need no reader (deferred).
	returns := c.pch.NotifyReturn(make(chan amqp.Return, 16))
	go func() {
		for r := range returns {
			c.deliver(r.CorrelationId, answer{returned: true})
		}
	}()
	if c.ch, err = sub.Channel(); err != nil {
		return fail(err)
	}
	q, err := c.ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return fail(err)
	}
	c.reply = q.Name
	msgs, err := c.ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fail(err)
	}
	go func() {
		defer close(c.done)
		for d := range msgs {
			c.deliver(d.CorrelationId, answer{body: d.Body})
		}
	}()
	return c, nil
}

func (c *ContractClient) deliver(id string, a answer) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- a
	}
}

// Call publishes body to exchange with key and waits for the reply or ctx;
// a returned request fails at once.
func (c *ContractClient) Call(ctx context.Context, exchange, key, pattern string, body []byte) ([]byte, error) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:16])
	ch := make(chan answer, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.pmu.Lock()
	_, err := c.pch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, amqp.Publishing{
		ContentType:   "application/json",
		CorrelationId: id,
		MessageId:     id,
		ReplyTo:       c.reply,
		Type:          pattern,
		Expiration:    strconv.FormatInt(time.Until(deadline).Milliseconds(), 10),
		Timestamp:     time.Now(),
		Headers: amqp.Table{
			"traceparent":     "00-" + id + "-" + hex.EncodeToString(b[16:]) + "-01",
			"patbus-deadline": deadline.UnixMilli(),
		},
		Body: body,
	})
	c.pmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("baseline: publish: %w", err)
	}
	select {
	case a := <-ch:
		if a.returned {
			return nil, errors.New("baseline: no route")
		}
		return a.body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, errors.New("baseline: client closed")
	}
}

// Close closes the client's connections.
func (c *ContractClient) Close() error {
	err := c.sub.Close()
	<-c.done
	return errors.Join(err, c.pub.Close())
}
