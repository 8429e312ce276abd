package rpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/patbus/patbus"
)

// Sentinel errors: the values of package patbus, named here too so that a
// caller of this package need not import it; errors.Is works whichever
// package an error came from. Errors returned by this package wrap one of them (or
// are a *Error from the remote side).
var (
	// ErrNoRoute: no queue is bound for the request's routing key, so no
	// service can answer it. Call reports it as soon as the broker returns
	// the request, never as a timeout.
	ErrNoRoute = patbus.ErrNoRoute
	// ErrTimeout: the caller's deadline passed before the reply arrived.
	// Call's errors that wrap it wrap context.DeadlineExceeded as well.
	ErrTimeout = patbus.ErrTimeout
	// ErrClosed: the Client or Server has been closed, or its broker has.
	ErrClosed = patbus.ErrClosed
	// ErrInvalidConfig: an option or constructor argument is invalid.
	ErrInvalidConfig = patbus.ErrInvalidConfig
	// ErrBadReply: a reply arrived that could not be understood (for
	// example an error reply whose body is not an error object).
	ErrBadReply = patbus.ErrBadReply
	// ErrInterrupted: the connection of the Client's replies was lost
	// while the call waited; the request may have run. Call fails with it
	// at once instead of waiting for the deadline.
	ErrInterrupted = patbus.ErrInterrupted
)

// Error codes that the Server itself chooses (package patbus has them
// all). Handlers may use any code.
const (
	// CodeInternal: the handler returned an error that carried no code.
	CodeInternal = patbus.CodeInternal
	// CodePanic: the handler panicked.
	CodePanic = patbus.CodePanic
	// CodeTimeout: the handler returned an error wrapping
	// context.DeadlineExceeded (usually: it ran past the caller's deadline).
	CodeTimeout = patbus.CodeTimeout
	// CodeCanceled: the handler returned an error wrapping context.Canceled.
	CodeCanceled = patbus.CodeCanceled
	// CodeTooLarge: the request or the handler's result exceeded the
	// maximum message size.
	CodeTooLarge = patbus.CodeTooLarge
)

// Error is an error that travels on the wire: patbus.Error. Handlers
// return one (NewError) to choose the code, message and details; the
// Server fills Service, Version, Tx and Pattern where they are empty. Call
// returns it as it is, so errors.As finds it.
type Error = patbus.Error

// NewError returns an error with the code and message, for a handler to
// return (patbus.NewError).
func NewError(code, message string) *Error { return patbus.NewError(code, message) }

// CallError is how Call fails when there is no remote answer: no route, no
// reply before the deadline, the client closed, or a broker error. It names
// the pattern, the target and how long the caller waited.
type CallError struct {
	// Pattern is Request.Pattern.
	Pattern string
	// Target is Request.Target (service[@version]), may be empty.
	Target string
	// Waited is the time from the start of Call to the failure.
	Waited time.Duration
	// Err is the cause; it wraps ErrNoRoute, ErrTimeout, ErrClosed, a bus
	// error or a context error.
	Err error
}

// Error reads, for example, "rpc: no service for pattern cmd:login (target
// user@1.0.0) after 1ms: patbus: no route: ...".
func (e *CallError) Error() string {
	var b strings.Builder
	switch {
	case errors.Is(e.Err, ErrNoRoute):
		b.WriteString("rpc: no service for pattern ")
	case errors.Is(e.Err, ErrTimeout):
		b.WriteString("rpc: no reply in time for pattern ")
	case errors.Is(e.Err, context.Canceled):
		b.WriteString("rpc: call canceled for pattern ")
	case errors.Is(e.Err, ErrClosed):
		b.WriteString("rpc: client closed during call for pattern ")
	default:
		b.WriteString("rpc: call failed for pattern ")
	}
	if e.Pattern == "" {
		b.WriteString("(none)")
	} else {
		b.WriteString(e.Pattern)
	}
	if e.Target != "" {
		b.WriteString(" (target ")
		b.WriteString(e.Target)
		b.WriteString(")")
	}
	b.WriteString(" after ")
	b.WriteString(roundWait(e.Waited).String())
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Err.
func (e *CallError) Unwrap() error { return e.Err }

func roundWait(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
