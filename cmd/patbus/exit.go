package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/patterns"
)

// Exit statuses; doc.go and the main usage text list them for users.
const (
	exitOK          = 0
	exitError       = 1 // a typed error reply, or any failure not listed below
	exitUsage       = 2 // bad flags or arguments, malformed pattern or JSON
	exitNoRoute     = 3 // nobody serves the pattern, or the queue does not exist
	exitTimeout     = 4 // no reply in time
	exitUnavailable = 5 // the broker cannot be reached or blocks publishers
	exitPartial     = 6 // some messages were not confirmed
	exitInterrupted = 130
)

// inputError is bad input from the user: a malformed pattern or JSON.
// It maps to exitUsage.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func inputErrorf(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// exitCode maps an error to the exit status the documentation promises.
// A typed error reply is status 1 whatever sentinel its code matches, but
// for the code "timeout", status 4: the service ran out of time.
func exitCode(err error) int {
	var ie *inputError
	var pe *patbus.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ie), errors.Is(err, patterns.ErrInvalidPattern), errors.Is(err, patterns.ErrKeyTooLong),
		errors.Is(err, patbus.ErrInvalidInput), errors.Is(err, bus.ErrInvalidConfig):
		return exitUsage
	case errors.As(err, &pe):
		if pe.Code == patbus.CodeTimeout {
			// The service ran out of the caller's time: for the user, the
			// act timed out (the reply only beat the caller's own timer).
			return exitTimeout
		}
		return exitError
	case errors.Is(err, patbus.ErrNoRoute), errors.Is(err, bus.ErrUnroutable), errors.Is(err, bus.ErrNotFound):
		return exitNoRoute
	case errors.Is(err, patbus.ErrTimeout), errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, bus.ErrDisconnected):
		return exitTimeout
	case errors.Is(err, bus.ErrDisconnected), errors.Is(err, bus.ErrBlocked):
		return exitUnavailable
	case errors.Is(err, bus.ErrNacked), errors.Is(err, bus.ErrUnconfirmed):
		return exitPartial
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitError
}
