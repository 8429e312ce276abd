package baseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RPCServer is the RabbitMQ tutorial's RPC server: it consumes one queue
// with a prefetch and, in one loop, publishes each reply to the default
// exchange with the request's reply-to and correlation id, then acks.
type RPCServer struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	queue string
	done  chan struct{}
}

// NewRPCServer connects to url, declares queue (auto-delete), and starts
// answering each request with handle(body).
func NewRPCServer(url, queue string, prefetch int, handle func([]byte) []byte) (*RPCServer, error) {
	return NewRPCServerOn(url, "", "", queue, prefetch, handle)
}

// NewRPCServerOn is NewRPCServer with the queue also bound to the topic
// exchange (declared durable) with key, for callers that publish there, as
// patbus acts do: the same program a plain amqp091-go user writes to route
// requests by a topic key.
func NewRPCServerOn(url, exchange, key, queue string, prefetch int, handle func([]byte) []byte) (*RPCServer, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	s := &RPCServer{conn: conn, queue: queue, done: make(chan struct{})}
	fail := func(err error) (*RPCServer, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("baseline: rpc server: %w", err)
	}
	if s.ch, err = conn.Channel(); err != nil {
		return fail(err)
	}
	if _, err := s.ch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		return fail(err)
	}
	if exchange != "" {
		if err := s.ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
			return fail(err)
		}
		if err := s.ch.QueueBind(queue, key, exchange, false, nil); err != nil {
			return fail(err)
		}
	}
	if err := s.ch.Qos(prefetch, 0, false); err != nil {
		return fail(err)
	}
	msgs, err := s.ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return fail(err)
	}
	go s.serve(msgs, handle)
	return s, nil
}

func (s *RPCServer) serve(msgs <-chan amqp.Delivery, handle func([]byte) []byte) {
	defer close(s.done)
	for d := range msgs {
		_ = s.ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp.Publishing{
			ContentType:   "application/json",
			CorrelationId: d.CorrelationId,
			Body:          handle(d.Body),
		})
		_ = d.Ack(false)
	}
}

// Close stops the server and closes its connection (the queue goes away
// with its consumer).
func (s *RPCServer) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// RPCClient is the RabbitMQ tutorial's RPC client, made safe for
// concurrent calls: one exclusive, server-named reply queue consumed with
// auto-ack, a random correlation id per call, replies matched by it.
type RPCClient struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	reply string
	done  chan struct{}

	mu      sync.Mutex
	pending map[string]chan []byte
}

// NewRPCClient connects to url and starts consuming its reply queue.
func NewRPCClient(url string) (*RPCClient, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	c := &RPCClient{conn: conn, done: make(chan struct{}), pending: map[string]chan []byte{}}
	fail := func(err error) (*RPCClient, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("baseline: rpc client: %w", err)
	}
	if c.ch, err = conn.Channel(); err != nil {
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
	go c.demux(msgs)
	return c, nil
}

func (c *RPCClient) demux(msgs <-chan amqp.Delivery) {
	defer close(c.done)
	for d := range msgs {
		c.mu.Lock()
		ch := c.pending[d.CorrelationId]
		delete(c.pending, d.CorrelationId)
		c.mu.Unlock()
		if ch != nil {
			ch <- d.Body
		}
	}
}

// Call publishes body to exchange with key and waits for the reply or ctx.
func (c *RPCClient) Call(ctx context.Context, exchange, key string, body []byte) ([]byte, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	err := c.ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{
		ContentType:   "application/json",
		CorrelationId: id,
		ReplyTo:       c.reply,
		Body:          body,
	})
	if err != nil {
		return nil, fmt.Errorf("baseline: publish: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, errors.New("baseline: client closed")
	}
}

// Close closes the client's connection.
func (c *RPCClient) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}
