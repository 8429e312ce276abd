package rpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
)

// Sentinel errors. Errors returned by this package wrap one of them (or are
// a *Error from the remote side), so callers branch with errors.Is.
var (
	// ErrNoRoute: no queue is bound for the request's routing key, so no
	// service can answer it. Call reports it as soon as the broker returns
	// the request, never as a timeout.
	ErrNoRoute = errors.New("rpc: no route")
	// ErrTimeout: the caller's deadline passed before the reply arrived.
	// Call's errors that wrap it wrap context.DeadlineExceeded as well.
	ErrTimeout = errors.New("rpc: timeout")
	// ErrClosed: the Client or Server has been closed, or its broker has.
	ErrClosed = errors.New("rpc: closed")
	// ErrInvalidConfig: an option or constructor argument is invalid.
	ErrInvalidConfig = errors.New("rpc: invalid configuration")
	// ErrBadReply: a reply arrived that could not be understood (for
	// example an error reply whose body is not an error object).
	ErrBadReply = errors.New("rpc: bad reply")
)

// Error codes that the Server itself chooses. Handlers may use any code.
const (
	// CodeInternal: the handler returned an error that is not a *Error.
	CodeInternal = "internal"
	// CodePanic: the handler panicked.
	CodePanic = "panic"
	// CodeTimeout: the handler returned an error wrapping
	// context.DeadlineExceeded (usually: it ran past the caller's deadline).
	CodeTimeout = "timeout"
	// CodeCanceled: the handler returned an error wrapping context.Canceled
	// (usually: the server was closed under it).
	CodeCanceled = "canceled"
	// CodeTooLarge: the request or the handler's result exceeded the
	// maximum message size.
	CodeTooLarge = "too_large"
)

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
// user@1.0.0) after 1ms: rpc: no route: ...".
func (e *CallError) Error() string {
	var b strings.Builder
	switch {
	case errors.Is(e.Err, ErrNoRoute):
		b.WriteString("rpc: no service for pattern ")
	case errors.Is(e.Err, ErrTimeout):
		b.WriteString("rpc: no reply in time for pattern ")
	case errors.Is(e.Err, context.Canceled):
		b.WriteString("rpc: call canceled for pattern ")
	case errors.Is(e.Err, ErrClosed), errors.Is(e.Err, bus.ErrClosed):
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

// Error is an error that travels on the wire: what a handler failed with,
// as the caller receives it. Handlers return a *Error (NewError) to choose
// the code, message and details; the Server fills Service, Version, Tx and
// Pattern where they are empty. Call returns it as it is, so errors.As
// finds it.
type Error struct {
	// Code is a short machine-readable reason ("not_found", "invalid",
	// "internal", "panic", "timeout" ...).
	Code string `json:"code"`
	// Message is the human-readable text.
	Message string `json:"message"`
	// Details holds optional structured data.
	Details map[string]any `json:"details,omitempty"`
	// Service and Version name the service that answered.
	Service string `json:"service,omitempty"`
	Version string `json:"version,omitempty"`
	// Tx is the tx id of the act.
	Tx string `json:"tx,omitempty"`
	// Pattern is the pattern of the request that failed.
	Pattern string `json:"pattern,omitempty"`
}

// NewError returns an error with the code and message, for a handler to
// return.
func NewError(code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// WithDetails sets Details and returns e, for chaining after NewError.
func (e *Error) WithDetails(details map[string]any) *Error {
	e.Details = details
	return e
}

// Error reads, for example, `rpc: remote error "not_found" from
// user@1.0.0 for pattern cmd:get: user not found`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rpc: remote error ")
	if e.Code == "" {
		b.WriteString(`""`)
	} else {
		b.WriteString(`"` + e.Code + `"`)
	}
	if e.Service != "" {
		b.WriteString(" from ")
		b.WriteString(e.Service)
		if e.Version != "" {
			b.WriteString("@")
			b.WriteString(e.Version)
		}
	}
	if e.Pattern != "" {
		b.WriteString(" for pattern ")
		b.WriteString(e.Pattern)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is maps codes to sentinels: "timeout" matches ErrTimeout and
// context.DeadlineExceeded, "canceled" matches context.Canceled. A target
// that is itself a *Error matches when the codes are equal, so
// errors.Is(err, rpc.NewError("not_found", "")) works.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrTimeout, context.DeadlineExceeded:
		return e.Code == CodeTimeout
	case context.Canceled:
		return e.Code == CodeCanceled
	}
	var t *Error
	if errors.As(target, &t) && t != nil {
		return t.Code == e.Code
	}
	return false
}

// toError turns whatever a handler returned into the error sent back.
func toError(err error) *Error {
	var re *Error
	if errors.As(err, &re) && re != nil {
		cp := *re
		if cp.Code == "" {
			cp.Code = CodeInternal
		}
		return &cp
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: err.Error()}
	case errors.Is(err, bus.ErrTooLarge):
		return &Error{Code: CodeTooLarge, Message: err.Error()}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
