package patbus

import "context"

// Handler handles consumed messages. Every consumer in patbus (an rpc
// server, a subscription, a worker, the services' catalog) runs one
// engine: it reads each delivery into a Message, runs it through the
// middleware, then the package's own handler, and settles it by what
// Handle returned. Returning nil acks an event or a work item; an error
// retries or dead-letters it by the rules of its package; for an act,
// the error is the answer the caller receives (see Error).
//
// Handle may be called from several goroutines at once (up to the
// consumer's concurrency). Its context carries the message's tx id (Tx)
// and deadline, and is canceled when the consumer is closed or its
// graceful stop runs out of time. A panic is recovered by the engine and
// counts as an error wrapping ErrPanic.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f(ctx, m).
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// Middleware wraps a Handler, as net/http's wrappers do: it may look at
// the message before and after the next handler runs, change the context,
// or answer without calling next. Give it to a consumer with the
// package's WithMiddleware option; the engine runs recovery, the tx and
// deadline context and logging outside of it.
type Middleware func(next Handler) Handler

// Chain returns h wrapped in mw, the first outermost: Chain(h, a, b)
// runs a, then b, then h.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] != nil {
			h = mw[i](h)
		}
	}
	return h
}

// Typed returns a Handler that decodes each message's JSON body into a T
// and calls fn with it. A message that does not decode into a T fails
// with an error wrapping ErrInvalidInput, and fn is not called. Unknown
// object fields are ignored, so producers may add fields before their
// consumers know them.
func Typed[T any](fn func(ctx context.Context, v T) error) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) error {
		var v T
		if err := m.Decode(&v); err != nil {
			return err
		}
		return fn(ctx, v)
	})
}
