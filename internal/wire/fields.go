package wire

import "time"

// Headers of work items (package workers): the attempt on retried items,
// and the last error on retried and dead-lettered ones.
const (
	// HeaderAttempt is the attempt a work item is on (int64, 1-based;
	// absent means 1).
	HeaderAttempt = "patbus-attempt"
	// HeaderError is the error text of the last failed attempt.
	HeaderError = "patbus-error"
)

// Fields are the patbus headers of one message, as Read finds them. The
// one codec for every kind of message: acts, replies, events, work items
// and catalog messages all carry their patbus headers in the same form
// (WIRE.md), and every consumer reads them here.
type Fields struct {
	// Pattern is HeaderPattern ("" when absent).
	Pattern string
	// Tx is HeaderTx, else the trace id of Traceparent ("" when neither).
	Tx string
	// Traceparent is HeaderTraceparent as it came.
	Traceparent string
	// Deadline is HeaderDeadline (zero when absent or invalid).
	Deadline time.Time
	// Status is HeaderStatus of a reply.
	Status string
	// Attempt is HeaderAttempt, at least 1.
	Attempt int
	// Error is HeaderError.
	Error string
}

// Read decodes the patbus headers of h. String headers may come as
// strings or as bytes (RabbitMQ hands back whichever the producer sent),
// numbers as any integer type, a whole float or a decimal string, so that
// producers in other languages need not match Go's types exactly.
func Read(h map[string]any) Fields {
	f := Fields{Attempt: 1}
	if len(h) == 0 {
		return f
	}
	f.Pattern = String(h, HeaderPattern)
	f.Traceparent = String(h, HeaderTraceparent)
	f.Tx = String(h, HeaderTx)
	if f.Tx == "" && f.Traceparent != "" {
		f.Tx = TxFromTraceparent(f.Traceparent)
	}
	if v, ok := h[HeaderDeadline]; ok {
		f.Deadline, _ = ParseDeadline(v)
	}
	f.Status = String(h, HeaderStatus)
	if v, ok := h[HeaderAttempt]; ok {
		f.Attempt = parseAttempt(v)
	}
	f.Error = String(h, HeaderError)
	return f
}

// String returns the string header key of h, whether it came as a string
// or as bytes; "" otherwise.
func String(h map[string]any, key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// PutTx writes the tx id into h in the compact form every patbus producer
// uses: a tx that is a W3C trace id travels only as the trace id of a
// traceparent with a fresh span; another one in HeaderTx, next to a
// traceparent of a fresh trace. A traceparent already in h (forwarded from
// elsewhere) is kept, and HeaderTx is then set only when tx is not its
// trace id.
func PutTx(h map[string]any, tx string) {
	tp, ok := h[HeaderTraceparent].(string)
	if !ok || TxFromTraceparent(tp) == "" {
		tp = Traceparent(tx)
		h[HeaderTraceparent] = tp
	}
	if TxFromTraceparent(tp) != tx {
		h[HeaderTx] = tx
	} else {
		delete(h, HeaderTx)
	}
}

// ChainHeaders returns the headers that tie a message to the chain of tx
// (PutTx's), or nil when tx is "": a message that starts a chain carries
// no tx header at all, and its consumer makes a fresh tx. Every header
// costs RabbitMQ to parse on every message it routes (a traceparent alone
// took a third of its publishing throughput for small persistent
// messages), so events and work items pay for it only when there is a
// chain to carry on.
func ChainHeaders(tx string) map[string]any {
	if tx == "" {
		return nil
	}
	h := make(map[string]any, 2)
	PutTx(h, tx)
	return h
}

// parseAttempt reads HeaderAttempt (Int64); anything missing or odd counts
// as 1, and the count is capped so that arithmetic on it cannot overflow.
func parseAttempt(v any) int {
	n, ok := Int64(v)
	if !ok || n < 1 {
		return 1
	}
	return int(min(n, 1<<30))
}
