package gateway

import (
	"errors"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
)

// This file reads the errors of the services and rpc packages that are not
// yet the root package's own: *rpc.Error (what a failed action comes back
// as) and their own sentinels. Once those packages return *patbus.Error and
// patbus's sentinels, errorCode is patbus.Code and this file goes.

// errorCode returns the code of err: patbus.Code, or, where that knows
// nothing better than "internal", the code of an *rpc.Error or of a
// services or rpc sentinel in err's chain.
func errorCode(err error) string {
	code := patbus.Code(err)
	if code != patbus.CodeInternal {
		return code
	}
	var re *rpc.Error
	if errors.As(err, &re) && re != nil && re.Code != "" {
		return re.Code
	}
	switch {
	case errors.Is(err, rpc.ErrNoRoute): // services.ErrNoRoute too
		return patbus.CodeNoRoute
	case errors.Is(err, rpc.ErrTimeout):
		return patbus.CodeTimeout
	case errors.Is(err, services.ErrClosed), errors.Is(err, rpc.ErrClosed):
		return patbus.CodeClosed
	case errors.Is(err, services.ErrInvalidInput):
		return patbus.CodeInvalidInput
	case errors.Is(err, services.ErrBadReply), errors.Is(err, rpc.ErrBadReply):
		return patbus.CodeBadReply
	}
	return code
}

// legacyMessage is actionMessage for an *rpc.Error.
func legacyMessage(err error) (string, map[string]any, bool) {
	var re *rpc.Error
	if errors.As(err, &re) && re != nil {
		return re.Message, re.Details, true
	}
	return "", nil, false
}
