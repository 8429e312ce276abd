package services

import (
	"context"
	"errors"
	"fmt"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/rpc"
)

// Sentinel errors. Errors returned by this package wrap one of them (or are
// a *rpc.Error carrying a handler's failure), so callers branch with
// errors.Is and errors.As.
var (
	// ErrInvalidConfig: New was given an invalid name, version or option.
	ErrInvalidConfig = errors.New("services: invalid configuration")
	// ErrInvalidInput: the input of an act is not a JSON object (or cannot
	// be encoded as JSON).
	ErrInvalidInput = errors.New("services: invalid input")
	// ErrBadReply: a reply does not decode into the value asked for.
	ErrBadReply = errors.New("services: bad reply")
	// ErrNoRoute: no action, local or remote, matches the message. It is
	// the very value of rpc.ErrNoRoute, so errors.Is(err, ErrNoRoute) holds
	// whether the catalog or the broker found no service.
	ErrNoRoute = rpc.ErrNoRoute
	// ErrNoPrior: Prior was called where the action has no prior.
	ErrNoPrior = errors.New("services: no prior action")
	// ErrClosed: the service has been closed.
	ErrClosed = errors.New("services: closed")
	// ErrDuplicatePlugin: Use was given a plugin whose name is taken.
	ErrDuplicatePlugin = errors.New("services: duplicate plugin")
)

// Error codes this package chooses for failures of local actions; they are
// the codes rpc uses for remote ones, so a caller sees the same code
// wherever the action ran.
const (
	// CodeInternal: the handler returned an error that is not a *rpc.Error.
	CodeInternal = rpc.CodeInternal
	// CodePanic: the handler panicked.
	CodePanic = rpc.CodePanic
	// CodeTimeout: the handler failed with context.DeadlineExceeded.
	CodeTimeout = rpc.CodeTimeout
	// CodeCanceled: the handler failed with context.Canceled.
	CodeCanceled = rpc.CodeCanceled
	// CodeTooLarge: a message or reply exceeded the maximum size.
	CodeTooLarge = rpc.CodeTooLarge
)

// NewError returns an error with a code and message for a handler to
// return; the caller receives it as a *rpc.Error (errors.As), whether the
// action ran in-process or remotely.
func NewError(code, message string) *rpc.Error { return rpc.NewError(code, message) }

// localError is how a failed local action comes back from Act: a *rpc.Error
// like a remote failure (so callers handle both alike with errors.As), that
// also unwraps to the handler's own error (so errors.Is finds the
// handler's sentinels in-process).
type localError struct {
	remote *rpc.Error
	cause  error
}

func (e *localError) Error() string   { return e.remote.Error() }
func (e *localError) Unwrap() []error { return []error{e.remote, e.cause} }

// panicError is a recovered handler panic.
type panicError struct{ value any }

func (e *panicError) Error() string { return fmt.Sprintf("services: handler panicked: %v", e.value) }

// toRemote turns a handler's error into the wire error, filling in the
// service, version, tx and pattern where they are empty. The rules are
// rpc's: a *rpc.Error keeps its code; a deadline is "timeout", a
// cancellation "canceled", a panic "panic", anything else "internal".
func (s *Service) toRemote(err error, tx, pattern string) *rpc.Error {
	var out rpc.Error
	var re *rpc.Error
	var pe *panicError
	switch {
	case errors.As(err, &re) && re != nil:
		out = *re
		if out.Code == "" {
			out.Code = CodeInternal
		}
	case errors.As(err, &pe):
		out = rpc.Error{Code: CodePanic, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		out = rpc.Error{Code: CodeTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		out = rpc.Error{Code: CodeCanceled, Message: err.Error()}
	case errors.Is(err, bus.ErrTooLarge):
		out = rpc.Error{Code: CodeTooLarge, Message: err.Error()}
	default:
		out = rpc.Error{Code: CodeInternal, Message: err.Error()}
	}
	if out.Service == "" {
		out.Service, out.Version = s.name, s.version
	}
	if out.Tx == "" {
		out.Tx = tx
	}
	if out.Pattern == "" {
		out.Pattern = pattern
	}
	return &out
}
