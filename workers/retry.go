package workers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/engine"
)

// maxErrorText bounds the error text carried in a header.
const maxErrorText = 1024

// retry publishes a copy of the item, attempt raised, to the retry queue of
// this attempt's backoff step; once the broker confirmed it, it acks the
// original. If the copy cannot be published, the original goes back to the
// work queue unchanged.
func (q *Queue) retry(ctx context.Context, d *bus.Delivery, it *Item, cause error) {
	delay, _ := q.Backoff(it.Attempt)
	target := q.retryQs[delay]
	h := copyHeaders(d.Headers)
	h[HeaderAttempt] = int64(it.Attempt + 1)
	h[HeaderError] = errorText(cause)
	if err := q.publishCopy(ctx, target, d, h); err != nil {
		q.log.Warn("workers: cannot publish retry; handing the item back", "id", it.ID, "tx", it.Tx, "attempt", it.Attempt, "err", err)
		q.requeue(d, it)
		return
	}
	q.log.Debug("workers: item failed; retry scheduled", "id", it.ID, "tx", it.Tx, "attempt", it.Attempt, "delay", delay, "err", cause)
	q.ack(d, it)
}

// deadLetter publishes a copy of the item with headers h and the reason to
// the dead-letter queue; once the broker confirmed it, it acks the
// original. If the copy cannot be published, the original goes back to
// the work queue unchanged.
func (q *Queue) deadLetter(ctx context.Context, d *bus.Delivery, it *Item, h map[string]any, reason string, cause error) {
	h[HeaderAttempt] = int64(it.Attempt)
	h[HeaderError] = errorText(cause)
	h[HeaderDeadReason] = reason
	h[HeaderQueue] = q.name
	h[HeaderFailedAt] = time.Now().UnixMilli()
	if err := q.publishCopy(ctx, q.dead, d, h); err != nil {
		q.log.Warn("workers: cannot dead-letter; handing the item back", "id", it.ID, "tx", it.Tx, "attempt", it.Attempt, "err", err)
		q.requeue(d, it)
		return
	}
	q.log.Warn("workers: item dead-lettered", "id", it.ID, "tx", it.Tx, "attempt", it.Attempt, "reason", reason, "err", cause)
	q.ack(d, it)
}

// publishCopy publishes the delivery's message with new headers to queue,
// persistent and mandatory, and waits for the confirm, for at most
// WithPublishTimeout. It gives up when the worker is closed (or its
// graceful stop runs out of time), not when the item's own deadline
// passes: a retry or a dead letter must still go out then.
func (q *Queue) publishCopy(ctx context.Context, queue string, d *bus.Delivery, h map[string]any) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.publishTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if engine.Closing(ctx) {
			cancel()
		}
	})
	defer stop()
	msg := bus.Message{
		Headers:       h,
		ContentType:   d.ContentType,
		MessageID:     d.MessageID,
		CorrelationID: d.CorrelationID,
		ReplyTo:       d.ReplyTo,
		Type:          d.Type,
		AppID:         d.AppID,
		Persistent:    true,
		Mandatory:     true,
		Timestamp:     d.Timestamp,
		Body:          d.Body,
	}
	if err := bus.PublishAndWait(pctx, q.b, "", queue, msg); err != nil {
		return fmt.Errorf("workers: publish to %s: %w", queue, err)
	}
	return nil
}

func copyHeaders(h map[string]any) map[string]any {
	out := make(map[string]any, len(h)+5)
	maps.Copy(out, h)
	return out
}

func errorText(err error) string {
	s := err.Error()
	if len(s) > maxErrorText {
		s = strings.ToValidUTF8(s[:maxErrorText], "") + "…"
	}
	return s
}
