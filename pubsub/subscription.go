package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
	"github.com/patbus/patbus/patterns"
)

// Subscription is a running consumer that hands events to a Handler,
// through the middleware. It runs the consumer engine that every patbus
// consumer runs (see the package documentation). It is safe for
// concurrent use. Stop it with Shutdown or Close.
type Subscription struct {
	p     *PubSub
	queue string
	group string
	pat   *patterns.Pattern // checked against each event's body when set
	fate  string            // what rejection does to an event, for the logs
	log   *slog.Logger
	c     *engine.Consumer

	endOnce sync.Once
}

// Queue returns the name of the queue the subscription consumes.
func (s *Subscription) Queue() string { return s.queue }

// Done is closed once the subscription has stopped serving: after
// Shutdown or Close has finished with the handlers, or when its consumer
// ended by itself (its queue was deleted, the broker closed), which Err
// then explains. A subscription whose consumer ended should be closed;
// subscribing again declares its queue again.
func (s *Subscription) Done() <-chan struct{} { return s.c.Done() }

// Err reports why the consumer ended by itself: an error wrapping
// bus.ErrNotFound when the queue was deleted, bus.ErrClosed when the
// broker closed. It is nil while the subscription serves and after
// Shutdown or Close.
func (s *Subscription) Err() error {
	if err := s.c.Err(); err != nil {
		return fmt.Errorf("pubsub: consumer of %s ended: %w", s.queue, err)
	}
	return nil
}

// Shutdown stops the subscription gracefully: it takes no more events,
// lets running handlers finish and their events be settled, hands back
// what it had not started, and releases the consumer. If ctx ends first,
// it cancels the handlers' context, waits for them to return (their events
// go back to the queue) and returns ctx.Err(). A broadcast queue goes away
// with its consumer. Shutdown is idempotent; the broker stays open.
func (s *Subscription) Shutdown(ctx context.Context) error {
	err := s.c.Shutdown(ctx)
	s.end()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("pubsub: shutdown of %s: %w", s.queue, err)
}

// Close stops the subscription at once: the handlers' context is
// canceled, the consumer released and unsettled events go back to the
// queue. It waits for the handlers to return. Close is idempotent; the
// broker stays open.
func (s *Subscription) Close() error {
	err := s.c.Close()
	s.end()
	if err != nil {
		return fmt.Errorf("pubsub: close of %s: %w", s.queue, err)
	}
	return nil
}

// end releases what the subscription holds in its PubSub.
func (s *Subscription) end() {
	s.endOnce.Do(func() {
		s.p.mu.Lock()
		delete(s.p.subs, s)
		s.p.mu.Unlock()
		if s.group != "" {
			s.p.releaseGroup(s.queue)
		}
	})
}

// match is the first middleware of a subscription with a pattern to
// check: an event whose body the pattern does not match (a glob pair, or
// an exact pair a group's queue is still bound for) is skipped, acked
// without running the rest of the chain; a body that is not a JSON object
// fails with ErrInvalidInput.
func (s *Subscription) match(next patbus.Handler) patbus.Handler {
	return patbus.HandlerFunc(func(ctx context.Context, ev *Event) error {
		obj, ok := decodeObject(ev.Body)
		if !ok {
			return fmt.Errorf("pubsub: %w: the body of event %s is not a JSON object", ErrInvalidInput, ev.ID)
		}
		if !s.pat.Match(obj) {
			s.log.Debug("pubsub: event does not match the subscription; skipped",
				"queue", s.queue, "id", ev.ID, "key", ev.RoutingKey)
			return nil
		}
		return next.Handle(ctx, ev)
	})
}

// settle acks, requeues or rejects one event by how its handler chain
// ended: nil acks; a subscription closing under the handler requeues; a
// failure wrapping ErrInvalidInput rejects at once, for a retry cannot
// succeed; another failure requeues the first delivery and rejects a
// redelivered one. A rejected event goes to a group's dead-letter queue,
// or is dropped from a broadcast queue.
func (s *Subscription) settle(ctx context.Context, d *bus.Delivery, ev *Event, err error) {
	var serr error
	what := "ack"
	switch {
	case err == nil:
		serr = d.Ack()
	case engine.Closing(ctx):
		what = "requeue"
		serr = d.Nack(true)
	case errors.Is(err, ErrInvalidInput):
		what = "reject"
		s.logEvent(ctx, slog.LevelError, "pubsub: event cannot be handled; rejected, "+s.fate, ev, err)
		serr = d.Nack(false)
	case !d.Redelivered:
		what = "requeue"
		s.logEvent(ctx, slog.LevelWarn, "pubsub: handler failed; event requeued once", ev, err)
		serr = d.Nack(true)
	default:
		what = "reject"
		s.logEvent(ctx, slog.LevelError, "pubsub: handler failed again; event rejected, "+s.fate, ev, err)
		serr = d.Nack(false)
	}
	if serr != nil {
		// The broker puts back what it did not see settled.
		s.logEvent(ctx, slog.LevelWarn, "pubsub: "+what+" failed; the event will be delivered again", ev, serr)
	}
}

func (s *Subscription) logEvent(ctx context.Context, level slog.Level, msg string, ev *Event, err error) {
	s.log.LogAttrs(ctx, level, msg, slog.String("queue", s.queue), slog.String("id", ev.ID),
		slog.String("pattern", ev.Pattern), slog.String("key", ev.RoutingKey), slog.String("tx", ev.Tx),
		slog.String("err", err.Error()))
}

// decodeObject decodes a JSON object with numbers kept as json.Number, so
// that they compare as Patrun compares them.
func decodeObject(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, false
	}
	return obj, true
}
