package patbus

import (
	"context"

	"github.com/patbus/patbus/internal/wire"
)

// Tx returns the tx id that ctx carries, or "" when it carries none.
//
// The tx id is Seneca's tx$: one id for the whole chain of acts, events
// and work items that one request causes. Every handler's context carries
// the tx id of the message it handles, and everything a handler sends
// with that context (acts, events, work items) carries it on, across
// services. A tx id made by patbus is 32 lower-case hex digits, so that it
// doubles as the trace id of a W3C traceparent.
func Tx(ctx context.Context) string { return wire.Tx(ctx) }

// WithTx returns a context that carries tx as its tx id: everything sent
// with it belongs to that chain. Use it to tie a chain to an id that
// arrived from elsewhere (an HTTP request id, a trace id); an empty tx
// leaves ctx as it is.
func WithTx(ctx context.Context, tx string) context.Context {
	if tx == "" {
		return ctx
	}
	return wire.WithTx(ctx, tx)
}

// NewTx returns a fresh tx id: 128 random bits as 32 lower-case hex
// digits, valid as a W3C trace id.
func NewTx() string { return wire.NewID() }
