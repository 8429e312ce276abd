package patbus

import (
	"context"
	"errors"
	"strings"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/patterns"
)

// Sentinel errors shared by every patbus package. The packages export the
// same values under their own names (rpc.ErrNoRoute is ErrNoRoute,
// services.ErrClosed is ErrClosed), so a check with errors.Is works
// whichever package an error came from.
var (
	// ErrClosed: the broker, client, service, subscription or queue has
	// been closed.
	ErrClosed = bus.ErrClosed
	// ErrInvalidConfig: an option or constructor argument is invalid.
	ErrInvalidConfig = bus.ErrInvalidConfig
	// ErrTooLarge: a message exceeds the maximum size.
	ErrTooLarge = bus.ErrTooLarge
	// ErrInvalidPattern: a pattern does not parse or cannot be used where
	// it is given.
	ErrInvalidPattern = patterns.ErrInvalidPattern
	// ErrNoRoute: no service serves the pattern (no action in the
	// catalog, or no queue bound on the broker). Reported at once, never
	// as a timeout.
	ErrNoRoute = errors.New("patbus: no route")
	// ErrTimeout: the deadline passed before the answer came. Errors that
	// wrap it wrap context.DeadlineExceeded as well.
	ErrTimeout = errors.New("patbus: timeout")
	// ErrInvalidInput: a message or input is not what it must be (not a
	// JSON object, not decodable into the handler's type, malformed).
	// Work items and events that fail with it are not tried again.
	ErrInvalidInput = errors.New("patbus: invalid input")
	// ErrBadReply: a reply arrived that cannot be read or decoded.
	ErrBadReply = errors.New("patbus: bad reply")
	// ErrPanic: a handler panicked; the panic was recovered.
	ErrPanic = errors.New("patbus: handler panicked")
	// ErrExpired: a message arrived after its deadline and was not
	// handled: nobody waits for its answer any more.
	ErrExpired = errors.New("patbus: arrived after its deadline")
)

// Error codes. An error that travels on the wire (*Error) carries one;
// Code gives the code of any error a patbus package returns. Handlers may
// use codes of their own; these are the ones patbus itself chooses, and
// the ones its HTTP gateway maps to statuses.
const (
	// CodeInternal: a handler failed with an error that carried no code.
	CodeInternal = "internal"
	// CodePanic: a handler panicked.
	CodePanic = "panic"
	// CodeTimeout: the deadline passed.
	CodeTimeout = "timeout"
	// CodeCanceled: the context was canceled.
	CodeCanceled = "canceled"
	// CodeTooLarge: a message exceeded the maximum size.
	CodeTooLarge = "too_large"
	// CodeInvalidInput: the input is not what the action takes.
	CodeInvalidInput = "invalid_input"
	// CodeInvalidPattern: a pattern does not parse.
	CodeInvalidPattern = "invalid_pattern"
	// CodeInvalidConfig: an option or argument is invalid.
	CodeInvalidConfig = "invalid_config"
	// CodeNoRoute: nobody serves the pattern.
	CodeNoRoute = "no_route"
	// CodeNoAction: the act reached a service that has no action for it
	// (its catalog entry was stale).
	CodeNoAction = "no_action"
	// CodeClosed: something was used after it was closed.
	CodeClosed = "closed"
	// CodeUnavailable: the broker is unreachable or blocks publishers.
	CodeUnavailable = "unavailable"
	// CodeRejected: the broker refused a message (a full queue).
	CodeRejected = "rejected"
	// CodeUnconfirmed: it is not known whether the broker took a message.
	CodeUnconfirmed = "unconfirmed"
	// CodeBadReply: a reply could not be read.
	CodeBadReply = "bad_reply"

	// Codes for handlers to answer with (NewError), which the gateway
	// maps to HTTP statuses.

	// CodeNotFound: the thing asked for does not exist (HTTP 404).
	CodeNotFound = "not_found"
	// CodeConflict: the request conflicts with what exists, such as a
	// duplicate key (HTTP 409).
	CodeConflict = "conflict"
	// CodeUnauthorized: the caller is not authenticated (HTTP 401).
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the caller may not do this (HTTP 403).
	CodeForbidden = "forbidden"
)

// Code returns the code of err: the Code of a *Error in its chain (an
// error a handler answered with, here or in another service), or the code
// of the patbus sentinel it wraps. It returns "" for nil and CodeInternal
// for an error patbus does not know. The checks run in a fixed order, so
// an error that wraps two sentinels (a timeout while the broker was
// away) gets the code of the first: timeout before unavailable.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e != nil && e.Code != "" {
		return e.Code
	}
	switch {
	case errors.Is(err, ErrNoRoute), errors.Is(err, bus.ErrUnroutable):
		return CodeNoRoute
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrExpired), errors.Is(err, bus.ErrExpired):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, ErrPanic):
		return CodePanic
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrInvalidPattern):
		return CodeInvalidPattern
	case errors.Is(err, ErrInvalidInput):
		return CodeInvalidInput
	case errors.Is(err, ErrInvalidConfig):
		return CodeInvalidConfig
	case errors.Is(err, ErrBadReply):
		return CodeBadReply
	case errors.Is(err, ErrClosed):
		return CodeClosed
	case errors.Is(err, bus.ErrDisconnected), errors.Is(err, bus.ErrBlocked):
		return CodeUnavailable
	case errors.Is(err, bus.ErrNacked):
		return CodeRejected
	case errors.Is(err, bus.ErrUnconfirmed):
		return CodeUnconfirmed
	}
	return CodeInternal
}

// Error is an error that travels on the wire: what a handler failed with,
// as its caller receives it. Handlers return one (NewError) to choose the
// code, message and details the caller sees; patbus fills Service,
// Version, Tx and Pattern where they are empty. Callers find it with
// errors.As, and Code reads its code.
type Error struct {
	// Code is a short machine-readable reason ("not_found", "conflict",
	// "internal", "panic", "timeout" ...), never empty on the wire.
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
	// Pattern is the pattern of the act that failed.
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

// Error reads, for example, `patbus: remote error "not_found" from
// user@1.0.0 for pattern cmd:get: user not found`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("patbus: remote error ")
	b.WriteString(`"` + e.Code + `"`)
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

// Is maps codes to sentinels, so that a remote failure is told apart as
// a local one would be: "timeout" matches ErrTimeout and
// context.DeadlineExceeded, "canceled" context.Canceled, "invalid_input"
// ErrInvalidInput, "too_large" ErrTooLarge. ("no_route" does not match
// ErrNoRoute: the caller's act was routed; the service it reached failed
// to route one of its own.) A target that is itself a *Error matches when the
// codes are equal, so errors.Is(err, patbus.NewError("not_found", ""))
// works.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrTimeout, context.DeadlineExceeded:
		return e.Code == CodeTimeout
	case context.Canceled:
		return e.Code == CodeCanceled
	case ErrInvalidInput:
		return e.Code == CodeInvalidInput
	case ErrTooLarge:
		return e.Code == CodeTooLarge
	}
	var t *Error
	if errors.As(target, &t) && t != nil {
		return t.Code == e.Code
	}
	return false
}

// AsError turns any error into the *Error that travels on the wire: a
// *Error in err's chain is copied (an empty code becomes CodeInternal);
// any other error gets the code Code gives it and its text as the
// message. It returns nil for nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) && re != nil {
		cp := *re
		if cp.Code == "" {
			cp.Code = CodeInternal
		}
		return &cp
	}
	return &Error{Code: Code(err), Message: err.Error()}
}
