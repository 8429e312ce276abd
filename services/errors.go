package services

import (
	"errors"

	"github.com/patbus/patbus"
)

// Sentinel errors. The shared ones are the values of package patbus,
// named here too so that a caller of this package need not import it;
// errors.Is works whichever package an error came from. Errors returned by this package
// wrap one of them (or are a *patbus.Error carrying a handler's failure),
// so callers branch with errors.Is and errors.As, or with patbus.Code.
var (
	// ErrInvalidConfig: New was given an invalid name, version or option.
	ErrInvalidConfig = patbus.ErrInvalidConfig
	// ErrInvalidInput: the input of an act is not a JSON object (or cannot
	// be encoded as JSON, or does not decode into AddFunc's type).
	ErrInvalidInput = patbus.ErrInvalidInput
	// ErrBadReply: a reply does not decode into the value asked for.
	ErrBadReply = patbus.ErrBadReply
	// ErrNoRoute: no action, local or remote, matches the message, or the
	// broker found no queue for it.
	ErrNoRoute = patbus.ErrNoRoute
	// ErrTimeout: the act's deadline passed before its answer came.
	// Errors that wrap it wrap context.DeadlineExceeded as well.
	ErrTimeout = patbus.ErrTimeout
	// ErrClosed: the service has been closed.
	ErrClosed = patbus.ErrClosed
	// ErrNoPrior: Prior was called where the action has no prior.
	ErrNoPrior = errors.New("services: no prior action")
	// ErrDuplicatePlugin: Use was given a plugin whose name is taken.
	ErrDuplicatePlugin = errors.New("services: duplicate plugin")
)

// Error codes this package chooses for failures of local actions; they are
// the codes of package patbus, which rpc uses for remote ones, so a caller
// sees the same code wherever the action ran.
const (
	// CodeInternal: the handler returned an error that carried no code.
	CodeInternal = patbus.CodeInternal
	// CodePanic: the handler panicked.
	CodePanic = patbus.CodePanic
	// CodeTimeout: the handler failed with context.DeadlineExceeded.
	CodeTimeout = patbus.CodeTimeout
	// CodeCanceled: the handler failed with context.Canceled.
	CodeCanceled = patbus.CodeCanceled
	// CodeTooLarge: a message or reply exceeded the maximum size.
	CodeTooLarge = patbus.CodeTooLarge
	// CodeInvalidInput: the message is not what the action takes (it does
	// not decode into AddFunc's Req, or is not a JSON object).
	CodeInvalidInput = patbus.CodeInvalidInput
	// CodeNoAction: an act reached a service that has no action for it
	// (its catalog entry was stale).
	CodeNoAction = patbus.CodeNoAction
)

// NewError returns an error with a code and message for a handler to
// return (patbus.NewError); the caller receives it as a *patbus.Error
// (errors.As), whether the action ran in-process or remotely.
func NewError(code, message string) *patbus.Error { return patbus.NewError(code, message) }

// localError is how a failed local action comes back from Act: a
// *patbus.Error like a remote failure (so callers handle both alike with errors.As), that
// also unwraps to the handler's own error (so errors.Is finds the
// handler's sentinels in-process).
type localError struct {
	remote *patbus.Error
	cause  error
}

func (e *localError) Error() string   { return e.remote.Error() }
func (e *localError) Unwrap() []error { return []error{e.remote, e.cause} }

// toRemote turns a handler's error into the wire error (patbus.AsError),
// filling in the service, version, tx and pattern where they are empty.
func (s *Service) toRemote(err error, tx, pattern string) *patbus.Error {
	out := patbus.AsError(err)
	if out.Service == "" {
		out.Service, out.Version = s.name, s.version
	}
	if out.Tx == "" {
		out.Tx = tx
	}
	if out.Pattern == "" {
		out.Pattern = pattern
	}
	return out
}
