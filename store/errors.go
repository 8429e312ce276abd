package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/patbus/patbus"
)

// Errors a store operation fails with. The store returns a new
// *patbus.Error with the code of the case and a message that names the
// collection and the id; errors.Is matches it against these values by
// code (see patbus.Error.Is), and patbus.Code gives the code:
//
//	CodeNotFound     errors.Is(err, ErrNotFound)          no entity with the id
//	CodeConflict     errors.Is(err, ErrConflict)          a unique index already holds the key
//	CodeInvalidInput errors.Is(err, patbus.ErrInvalidInput)  a malformed id, filter or document
//	CodeUnavailable  errors.Is(err, ErrUnavailable)       no server could be reached
//	CodeTimeout      errors.Is(err, context.DeadlineExceeded)
//	CodeCanceled     errors.Is(err, context.Canceled)
//	CodeClosed       errors.Is(err, patbus.ErrClosed)     the DB was closed
//
// Any other failure wraps the driver's error and has the code "internal".
// A handler may return these errors as they are: the caller of an act
// receives the code and the message.
//
// The values are shared: do not modify them.
var (
	// ErrNotFound matches an error with the code patbus.CodeNotFound.
	ErrNotFound = patbus.NewError(patbus.CodeNotFound, "store: not found")
	// ErrConflict matches an error with the code patbus.CodeConflict.
	ErrConflict = patbus.NewError(patbus.CodeConflict, "store: duplicate key")
	// ErrUnavailable matches an error with the code
	// patbus.CodeUnavailable: no server answered within the dial timeout,
	// or a connection broke.
	ErrUnavailable = patbus.NewError(patbus.CodeUnavailable, "store: server unavailable")
)

// MongoDB's error codes the store tells apart.
const (
	codeInternalError   = 1
	codeBadValue        = 2
	codeFailedToParse   = 9
	codeTypeMismatch    = 14
	codeInvalidLength   = 16
	codeDollarPrefixed  = 52
	codeInvalidIDField  = 53
	codeEmptyFieldName  = 56
	codeInvalidOptions  = 72
	codeNotImplemented  = 238
	codeSortBadValue    = 15974
	codeFieldPathFormat = 16410 // a field path that starts with '$'
	codeFieldPathDotted = 15998 // a field name with '.' in it
)

// notFound returns the error for a missing entity.
func notFound(coll, id string) error {
	return patbus.NewError(patbus.CodeNotFound, fmt.Sprintf("store: %s: no entity with id %q", coll, id)).
		WithDetails(map[string]any{"collection": coll, "id": id})
}

// invalidInput returns the error for a malformed argument.
func invalidInput(coll, format string, args ...any) error {
	return patbus.NewError(patbus.CodeInvalidInput, "store: "+coll+": "+fmt.Sprintf(format, args...)).
		WithDetails(map[string]any{"collection": coll})
}

// classify turns a driver error from op on target (a collection or
// database name) into the store's error: typed for the cases callers
// branch on, wrapped with op and target otherwise.
func classify(ctx context.Context, op, target string, err error) error {
	var sse topology.ServerSelectionError
	var me mongo.MarshalError
	var se mongo.ServerError
	selection := errors.As(err, &sse)
	switch {
	case err == nil:
		return nil
	case mongo.IsDuplicateKeyError(err), isSQLiteUniqueViolation(err):
		return patbus.NewError(patbus.CodeConflict, fmt.Sprintf("store: %s: %s: duplicate key", target, op)).
			WithDetails(map[string]any{"collection": target})
	case ctx.Err() != nil && selection:
		return fmt.Errorf("store: %s %s: no server answered before the context ended: %w", op, target, joinCause(ctx.Err(), err))
	case ctx.Err() != nil:
		return fmt.Errorf("store: %s %s: %w", op, target, joinCause(ctx.Err(), err))
	case errors.Is(err, mongo.ErrClientDisconnected):
		return &opError{op: op, target: target, what: "closed", kind: patbus.ErrClosed, cause: err}
	case !selection && errors.Is(err, context.DeadlineExceeded):
		// The operation's own timeout (WithTimeout) passed with a server
		// selected: it is slow or hung, not down, and the caller may
		// retry, so the code is "timeout" rather than "unavailable".
		return fmt.Errorf("store: %s %s: no answer within the store's timeout: %w (%s)",
			op, target, context.DeadlineExceeded, driverText(err))
	case selection, mongo.IsNetworkError(err):
		// The driver's error wraps context.DeadlineExceeded when the dial
		// timeout passes; the chain is cut so that the caller's context,
		// which has not ended, is not blamed.
		return &opError{op: op, target: target, what: "server unavailable", kind: ErrUnavailable, cause: err}
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("store: %s %s: %w", op, target, err)
	case errors.As(err, &me), errors.Is(err, mongo.ErrNilDocument), errors.Is(err, mongo.ErrNilValue):
		return invalidInput(target, "%s: %v", op, err)
	case errors.As(err, &se) && se.HasErrorCode(codeNotImplemented):
		return fmt.Errorf("store: %s %s: the server does not implement this: %w", op, target, err)
	case errors.As(err, &se) && isInvalidInput(se):
		return invalidInput(target, "%s: %v", op, err)
	}
	return fmt.Errorf("store: %s %s: %w", op, target, err)
}

// joinCause returns the context's error, with the driver's text after it
// when the driver's error does not wrap it already.
func joinCause(ctxErr, err error) error {
	if errors.Is(err, ctxErr) {
		return err
	}
	return fmt.Errorf("%w: %v", ctxErr, err)
}

// opError is a failed operation whose kind is one of the store's or
// patbus's sentinels. It reads "store: OP TARGET: WHAT: CAUSE" and
// unwraps to the sentinel only: the driver's error is text.
type opError struct {
	op, target, what string
	kind             error
	cause            error
}

func (e *opError) Error() string {
	return "store: " + e.op + " " + e.target + ": " + e.what + ": " + driverText(e.cause)
}

// driverText returns err's text once: the driver's command errors read
// "MESSAGE: WRAPPED" where the message is often the wrapped error's text.
func driverText(err error) string {
	s := strings.TrimSpace(err.Error())
	if n := len(s); n%2 == 0 && n > 2 {
		half := (n - 2) / 2 // "X: X" is 2*len(X)+2 bytes long
		if s[half:half+2] == ": " && s[:half] == s[half+2:] {
			return s[:half]
		}
	}
	return s
}

func (e *opError) Unwrap() error { return e.kind }

// isInvalidInput reports whether se says the filter, sort or document the
// caller gave is malformed.
func isInvalidInput(se mongo.ServerError) bool {
	for _, c := range []int{
		codeBadValue, codeFailedToParse, codeTypeMismatch, codeInvalidLength,
		codeDollarPrefixed, codeInvalidIDField, codeEmptyFieldName,
		codeInvalidOptions, codeSortBadValue, codeFieldPathFormat, codeFieldPathDotted,
	} {
		if se.HasErrorCode(c) {
			return true
		}
	}
	return false
}

// isSQLiteUniqueViolation reports whether err is FerretDB's answer to an
// update that breaks a unique index: its SQLite handler reports an
// InternalError with SQLite's text instead of MongoDB's duplicate key
// error (11000), which it gives for inserts only.
func isSQLiteUniqueViolation(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.HasErrorCode(codeInternalError) &&
		strings.Contains(ce.Message, "UNIQUE constraint failed")
}

// isNotImplemented reports whether err says the server lacks a feature
// (FerretDB answers so for TTL indexes).
func isNotImplemented(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(codeNotImplemented)
}
