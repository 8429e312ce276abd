package baseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// DeclareWorkQueue declares a durable queue on a connection of its own, as
// the work-queue tutorial does, and closes the connection.
func DeclareWorkQueue(url, queue string) error {
	return withChannel(url, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
		return err
	})
}

// DeleteQueue deletes a queue on a connection of its own.
func DeleteQueue(url, queue string) error {
	return withChannel(url, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(queue, false, false, false)
		return err
	})
}

// PurgeQueue removes the ready messages of a queue, on a connection of its
// own, and returns how many there were.
func PurgeQueue(url, queue string) (int, error) {
	var n int
	err := withChannel(url, func(ch *amqp.Channel) error {
		var err error
		n, err = ch.QueuePurge(queue, false)
		return err
	})
	return n, err
}

func withChannel(url string, f func(*amqp.Channel) error) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("baseline: dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("baseline: channel: %w", err)
	}
	if err := f(ch); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

// Producer is the plain work-queue producer: one connection, one channel in
// confirm mode, persistent messages to the default exchange, and a sliding
// window of at most Window unconfirmed publishes (the tutorial's "handling
// publisher confirms asynchronously").
type Producer struct {
	conn   *amqp.Connection
	ch     *amqp.Channel
	window int

	// SameWire makes every message carry what patbus puts on a work item
	// enqueued outside any chain (its context has no tx, so it has no
	// headers): the mandatory flag, a UUID message id (the item's id, its
	// dedup key) and a timestamp. RabbitMQ takes measurably longer over
	// such messages than over bare ones (the message id above all), so the
	// benchmarks compare with both.
	SameWire bool

	// Event, when not empty, makes every message carry what package
	// pubsub puts on an event of that canonical pattern: the header
	// patbus-pattern, a traceparent whose trace id is a fresh tx id, a
	// UUID message id and a timestamp (not mandatory). The pubsub
	// benchmarks compare with it, to tell what the event's wire costs the
	// broker from what patbus costs.
	Event string
}

// NewProducer connects to url and puts a channel in confirm mode.
func NewProducer(url string, window int) (*Producer, error) {
	if window < 1 {
		return nil, errors.New("baseline: window must be at least 1")
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("baseline: producer channel: %w", err)
	}
	return &Producer{conn: conn, ch: ch, window: window}, nil
}

// Publish sends n persistent copies of body to queue and returns once the
// broker confirmed all of them.
func (p *Producer) Publish(ctx context.Context, queue string, n int, body []byte) error {
	return p.PublishTo(ctx, "", queue, n, body)
}

// PublishTo sends n persistent copies of body to the exchange with the
// routing key, as Publish does to a queue: the plain publisher of the
// publish/subscribe tutorials with the confirm window of the publisher
// confirms one.
func (p *Producer) PublishTo(ctx context.Context, exchange, key string, n int, body []byte) error {
	pending := make([]*amqp.DeferredConfirmation, 0, p.window)
	wait := func(dc *amqp.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("baseline: confirm: %w", err)
		}
		if !ok {
			return errors.New("baseline: message nacked")
		}
		return nil
	}
	for i := 0; i < n; i++ {
		if len(pending) == p.window {
			if err := wait(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		pub := amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			Body:         body,
		}
		if p.SameWire {
			pub.MessageId = uuid.NewString()
			pub.Timestamp = time.Now()
		}
		if p.Event != "" {
			pub.MessageId = uuid.NewString()
			pub.Timestamp = time.Now()
			pub.Headers = amqp.Table{
				"patbus-pattern": p.Event,
				"traceparent":    "00-" + newID() + "-" + newID()[:16] + "-01",
			}
		}
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, p.SameWire, false, pub)
		if err != nil {
			return fmt.Errorf("baseline: publish: %w", err)
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		if err := wait(dc); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the producer's connection.
func (p *Producer) Close() error { return p.conn.Close() }

// Consumer is the plain work-queue consumer: one connection; each Consume
// opens a channel with the prefetch and acks the messages one by one, manual
// acks, as the tutorial does.
type Consumer struct{ conn *amqp.Connection }

// NewConsumer connects to url.
func NewConsumer(url string) (*Consumer, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: dial: %w", err)
	}
	return &Consumer{conn: conn}, nil
}

// Consume opens a channel, consumes queue with the prefetch, acks n
// messages and closes the channel (what it holds beyond n goes back). It
// returns early when ctx ends.
func (c *Consumer) Consume(ctx context.Context, queue string, n, prefetch int) error {
	ch, err := c.conn.Channel()
	if err != nil {
		return fmt.Errorf("baseline: channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("baseline: qos: %w", err)
	}
	msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("baseline: consume: %w", err)
	}
	for got := 0; got < n; got++ {
		select {
		case d, ok := <-msgs:
			if !ok {
				return errors.New("baseline: consumer closed")
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("baseline: ack: %w", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close closes the consumer's connection.
func (c *Consumer) Close() error { return c.conn.Close() }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
