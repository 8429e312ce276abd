package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/patbus/patbus"
)

// Codes the gateway answers with for failures of HTTP itself, beside the
// patbus codes (patbus.CodeNotFound, patbus.CodeInvalidInput, ...).
const (
	// CodeMethodNotAllowed: the path has routes, none for this verb (405).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeUnsupportedMediaType: the body is not application/json (415).
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// HTTPStatus returns the status the gateway answers an error code with:
//
//	invalid_input                      400 Bad Request
//	unauthorized                       401 Unauthorized
//	forbidden                          403 Forbidden
//	not_found                          404 Not Found
//	method_not_allowed                 405 Method Not Allowed
//	conflict                           409 Conflict
//	too_large                          413 Content Too Large
//	unsupported_media_type             415 Unsupported Media Type
//	canceled                           499 (the client went away; nginx's "client closed request")
//	interrupted                        502 Bad Gateway (the answer was lost with a connection; the act may have run)
//	no_route, no_action, unavailable,
//	closed, rejected                   503 Service Unavailable
//	timeout                            504 Gateway Timeout
//	anything else                      500 Internal Server Error
//
// no_action (the catalog named a service that no longer has the action),
// closed (the service or broker is closed) and rejected (a full queue
// refused the act) are, like no_route, conditions that pass or that
// another instance does not have.
func HTTPStatus(code string) int {
	switch code {
	case patbus.CodeInvalidInput:
		return http.StatusBadRequest
	case patbus.CodeUnauthorized:
		return http.StatusUnauthorized
	case patbus.CodeForbidden:
		return http.StatusForbidden
	case patbus.CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case patbus.CodeConflict:
		return http.StatusConflict
	case patbus.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case patbus.CodeCanceled:
		return StatusClientClosedRequest
	case patbus.CodeInterrupted:
		return http.StatusBadGateway
	case patbus.CodeNoRoute, patbus.CodeNoAction, patbus.CodeUnavailable, patbus.CodeClosed, patbus.CodeRejected:
		return http.StatusServiceUnavailable
	case patbus.CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// StatusClientClosedRequest is the status of an act canceled because its
// client went away (nginx's 499); the client never reads it, the logs do.
const StatusClientClosedRequest = 499

// ErrorBody is the JSON body of every error response:
//
//	{"code":"not_found","message":"no user 7","tx":"4bf92f3577b34da6a3ce929d0e0e4736"}
//
// Code is the error's code (see HTTPStatus). Message is the handler's own
// message when the status is below 500 and the action chose it
// (patbus.NewError); otherwise it is a fixed text for the code, so that no
// internal detail (an error's text, a panic value, a stack) leaves the
// gateway: those go to the log, with the tx. Tx is the request's tx id, as
// in the X-Request-Id response header. Details are the handler's details
// (patbus.Error.Details), under the same rule as Message.
type ErrorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Tx      string         `json:"tx,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// fixedMessage is the text of an error response whose message does not
// come from the action.
func fixedMessage(code string, status int) string {
	switch code {
	case patbus.CodeNoRoute, patbus.CodeNoAction:
		return "no service answers this route"
	case patbus.CodeUnavailable, patbus.CodeClosed, patbus.CodeRejected:
		return "the service is unavailable"
	case patbus.CodeTimeout:
		return "the service did not answer in time"
	case patbus.CodeCanceled:
		return "the request was canceled"
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "error " + strconv.Itoa(status)
}

// bodyFor builds the error response for err, the failure of an act.
func bodyFor(err error, tx string) (int, ErrorBody) {
	code := patbus.Code(err)
	status := HTTPStatus(code)
	out := ErrorBody{Code: code, Tx: tx}
	if status < 500 {
		if msg, details, ok := actionMessage(err); ok {
			out.Message, out.Details = msg, details
		}
	}
	if out.Message == "" {
		out.Message = fixedMessage(code, status)
	}
	return status, out
}

// actionMessage returns the message and details an action chose: those
// of the *patbus.Error in err's chain.
func actionMessage(err error) (string, map[string]any, bool) {
	var e *patbus.Error
	if errors.As(err, &e) && e != nil {
		return e.Message, e.Details, true
	}
	return "", nil, false
}

// writeError writes an error response. Nothing may have been written yet.
func writeError(w http.ResponseWriter, status int, body ErrorBody) {
	b, err := json.Marshal(body)
	if err != nil {
		// Details that do not encode: answer without them.
		body.Details = nil
		b, _ = json.Marshal(body)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
