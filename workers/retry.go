package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// maxErrorText bounds the error text carried in a header.
const maxErrorText = 1024

// validJSONBody reports whether a body that claims to be JSON (or claims
// nothing) is JSON. Bodies with another content type are the handler's
// business.
func validJSONBody(d *bus.Delivery) bool {
	ct := d.ContentType
	if ct != "" && !strings.HasPrefix(ct, wire.ContentTypeJSON) {
		return true
	}
	return json.Valid(d.Body)
}

// retry publishes a copy of the item, attempt raised, to the retry queue of
// this attempt's backoff step; once the broker confirmed it, it acks the
// original. If the copy cannot be published, the original goes back to the
// work queue unchanged.
func (w *worker) retry(d *bus.Delivery, it *Item, cause error) {
	q := w.q
	delay, _ := q.Backoff(it.Attempt)
	target := q.retryQs[delay]
	h := copyHeaders(d.Headers)
	h[HeaderAttempt] = int64(it.Attempt + 1)
	h[HeaderError] = errorText(cause)
	if err := w.publishCopy(target, d, h); err != nil {
		w.log.Warn("workers: cannot publish retry; handing the item back", "id", it.ID, "attempt", it.Attempt, "err", err)
		w.settle(d, d.Nack(true), "nack")
		return
	}
	w.log.Debug("workers: item failed; retry scheduled", "id", it.ID, "attempt", it.Attempt, "delay", delay, "err", cause)
	w.settle(d, d.Ack(), "ack")
}

// deadLetter publishes a copy of the item with the reason to the dead-letter
// queue; once the broker confirmed it, it acks the original.
func (w *worker) deadLetter(d *bus.Delivery, it *Item, reason string, cause error) {
	q := w.q
	h := copyHeaders(d.Headers)
	h[HeaderAttempt] = int64(it.Attempt)
	h[HeaderError] = errorText(cause)
	h[HeaderDeadReason] = reason
	h[HeaderQueue] = q.name
	h[HeaderFailedAt] = time.Now().UnixMilli()
	if err := w.publishCopy(q.dead, d, h); err != nil {
		w.log.Warn("workers: cannot dead-letter; handing the item back", "id", it.ID, "attempt", it.Attempt, "err", err)
		w.settle(d, d.Nack(true), "nack")
		return
	}
	w.log.Warn("workers: item dead-lettered", "id", it.ID, "attempt", it.Attempt, "reason", reason, "err", cause)
	w.settle(d, d.Ack(), "ack")
}

// publishCopy publishes the delivery's message with new headers to queue,
// persistent and mandatory, and waits for the confirm.
func (w *worker) publishCopy(queue string, d *bus.Delivery, h map[string]any) error {
	ctx, cancel := context.WithTimeout(w.hardCtx, w.q.cfg.publishTimeout)
	defer cancel()
	msg := bus.Message{
		Headers:       h,
		ContentType:   d.ContentType,
		MessageID:     d.MessageID,
		CorrelationID: d.CorrelationID,
		ReplyTo:       d.ReplyTo,
		Persistent:    true,
		Mandatory:     true,
		Timestamp:     d.Timestamp,
		Body:          d.Body,
	}
	if err := bus.PublishAndWait(ctx, w.q.b, "", queue, msg); err != nil {
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
