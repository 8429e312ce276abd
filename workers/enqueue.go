package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// Enqueue publishes data as a persistent JSON item on the queue and returns
// once the broker has confirmed it: a nil error means the broker has taken
// responsibility for the item. data is encoded with encoding/json; a []byte
// or json.RawMessage is sent as it is and must hold valid JSON (otherwise
// the error wraps ErrInvalidInput and nothing is sent). The item gets a
// fresh message id (a random UUID, Item.ID), which it keeps across its
// retries and redeliveries. The context's tx id (patbus.Tx), when it has
// one, travels with the item, inside its traceparent (WIRE.md); with none,
// no tx header is sent and the worker makes a fresh tx. If ctx ends before the confirm, the error wraps bus.ErrUnconfirmed:
// the item may still arrive. Enqueue does not depend on a running worker.
//
// An Enqueue that failed without a confirm and is called again with the
// same data sends a second item with another id: both may arrive. A
// producer that must not duplicate items keeps its own key in the data.
func (q *Queue) Enqueue(ctx context.Context, data any) error {
	c, err := q.publish(ctx, data)
	if err != nil {
		return err
	}
	if err := c.Wait(ctx); err != nil {
		return fmt.Errorf("workers: enqueue on %s: %w", q.name, err)
	}
	return nil
}

// EnqueueBatch enqueues every item as Enqueue does, but publishes them all
// before it waits for the confirms, so many are in flight at once. It
// returns nil when every item was confirmed; otherwise errors.Join of one
// *ItemError per item that failed (items not mentioned were confirmed). An
// item that fails to encode is reported and the others are still sent.
func (q *Queue) EnqueueBatch(ctx context.Context, items ...any) error {
	confs := make([]*bus.Confirmation, len(items))
	var errs []error
	for i, data := range items {
		c, err := q.publish(ctx, data)
		if err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
			if ctx.Err() != nil {
				// Nothing further can be sent; report the rest as not sent.
				for j := i + 1; j < len(items); j++ {
					errs = append(errs, &ItemError{Index: j, Err: fmt.Errorf("workers: not sent: %w", ctx.Err())})
				}
				break
			}
			continue
		}
		confs[i] = c
	}
	for i, c := range confs {
		if c == nil {
			continue
		}
		if err := c.Wait(ctx); err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
		}
	}
	return errors.Join(errs...)
}

// EnqueueAsync publishes data as Enqueue does but does not wait for the
// broker's confirm: it returns once the item has been handed to the broker,
// with the Confirmation that resolves when the broker confirms it (nil), or
// fails with an error wrapping bus.ErrNacked, bus.ErrUnroutable or
// bus.ErrUnconfirmed. Keeping a window of confirmations outstanding, as
// RabbitMQ's publisher-confirm tutorial does, gives the best throughput;
// an item is only safe once its Confirmation resolved with nil.
func (q *Queue) EnqueueAsync(ctx context.Context, data any) (*bus.Confirmation, error) {
	return q.publish(ctx, data)
}

// publish encodes and publishes one item without waiting for the confirm.
func (q *Queue) publish(ctx context.Context, data any) (*bus.Confirmation, error) {
	body, err := encode(data)
	if err != nil {
		return nil, err
	}
	msg := bus.Message{
		// The tx only when ctx carries one (wire.ChainHeaders).
		Headers:     wire.ChainHeaders(wire.Tx(ctx)),
		ContentType: wire.ContentTypeJSON,
		MessageID:   uuid.NewString(),
		Persistent:  true,
		Mandatory:   true,
		Timestamp:   time.Now(),
		Body:        body,
	}
	c, err := q.b.Publish(ctx, "", q.name, msg)
	if err != nil {
		return nil, fmt.Errorf("workers: enqueue on %s: %w", q.name, err)
	}
	return c, nil
}

// encode turns data into a JSON body.
func encode(data any) ([]byte, error) {
	switch v := data.(type) {
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, fmt.Errorf("workers: cannot encode item: %w: raw message is not valid JSON", ErrInvalidInput)
		}
		return v, nil
	case []byte:
		if !json.Valid(v) {
			return nil, fmt.Errorf("workers: cannot encode item: %w: []byte is not valid JSON", ErrInvalidInput)
		}
		return v, nil
	}
	body, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("workers: cannot encode item: %w: %w", ErrInvalidInput, err)
	}
	return body, nil
}
