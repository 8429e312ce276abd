package bus

import (
	"strconv"
	"strings"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publishIDHeader carries an internal id on a Mandatory message whose own
// message id cannot tell it apart from another one in flight on the same
// channel, so that a basic.return can be matched to its publish. The
// consumer side removes it again.
const publishIDHeader = "x-patbus-publish-id"

// internalIDPrefix starts every internal id.
const internalIDPrefix = "\x00r"

// returnIDs chooses, per channel, the id a basic.return of a Mandatory
// copy will be matched by. The message's own id serves when no other
// Mandatory copy pending on the channel has it: then the message goes out
// exactly as the caller built it, with no extra header for both ends to
// code and the broker to parse. Otherwise (no id, or a copy with the same
// id in flight, as workers' retries are) the copy carries an internal id in
// publishIDHeader. The owner's lock guards it.
type returnIDs struct {
	inFlight map[string]int
}

// take returns the Publishing to write for m and the id to match its
// return by ("" when m is not Mandatory). release must follow once the
// copy is no longer pending.
func (r *returnIDs) take(m *pubMsg, seq *atomic.Uint64) (amqp.Publishing, string) {
	if !m.mandatory {
		return m.pub, ""
	}
	if r.inFlight == nil {
		r.inFlight = make(map[string]int)
	}
	if id := m.pub.MessageId; id != "" && !strings.HasPrefix(id, internalIDPrefix) && r.inFlight[id] == 0 {
		r.inFlight[id] = 1
		return m.pub, id
	}
	// Internal ids are never reused, and a message id with their prefix
	// is never its own match: they cannot collide.
	id := internalIDPrefix + strconv.FormatUint(seq.Add(1), 36)
	pub := m.pub
	pub.Headers = make(amqp.Table, len(m.pub.Headers)+1)
	for k, v := range m.pub.Headers {
		pub.Headers[k] = v
	}
	pub.Headers[publishIDHeader] = id
	r.inFlight[id]++
	return pub, id
}

// release forgets a copy taken with id.
func (r *returnIDs) release(id string) {
	if id == "" {
		return
	}
	if n := r.inFlight[id]; n > 1 {
		r.inFlight[id] = n - 1
	} else {
		delete(r.inFlight, id)
	}
}

// reset forgets every copy (the channel is gone).
func (r *returnIDs) reset() { r.inFlight = nil }

// fromReturn gives the id a basic.return is matched by (the internal header
// when the copy carried one, else its message id) and its *ReturnError.
func fromReturn(rt amqp.Return) (string, *ReturnError) {
	id := rt.MessageId
	if v, ok := rt.Headers[publishIDHeader].(string); ok {
		id = v
	}
	return id, &ReturnError{Exchange: rt.Exchange, Key: rt.RoutingKey, ReplyCode: int(rt.ReplyCode), ReplyText: rt.ReplyText}
}
