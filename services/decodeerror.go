package services

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// decodeError is a message that does not decode into an action's type.
// Its text says what is wrong in the message's own terms (the JSON path,
// the kind of value expected and the kind sent), because it crosses the
// wire to the caller and, through the gateway, to an HTTP client: Go type
// names are the service's business. errors.As still finds encoding/json's
// error.
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }

// newDecodeError describes err, a failure of json.Unmarshal of a message.
func newDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		where := te.Field
		if where == "" {
			where = "the message"
		}
		return &decodeError{msg: fmt.Sprintf("%s: want %s, got %s", where, jsonKind(te.Type), te.Value), err: err}
	case errors.As(err, &se):
		return &decodeError{msg: fmt.Sprintf("the message is not valid JSON (at byte %d)", se.Offset), err: err}
	}
	// An UnmarshalJSON method's own error: the type's author wrote it.
	return &decodeError{msg: "decode message: " + err.Error(), err: err}
}

// jsonKind names the JSON value that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a value of another kind"
}
