package wire

import (
	"math"
	"strconv"
	"time"
)

// Reply headers of request/reply (package rpc).
const (
	// HeaderStatus on a reply says how the handler ended: StatusOK (the body
	// is the handler's result) or StatusError (the body is an error object).
	HeaderStatus = "patbus-status"
	// StatusOK marks a successful reply.
	StatusOK = "ok"
	// StatusError marks a reply whose body is an error object.
	StatusError = "error"
)

// DeadlineValue is the value of HeaderDeadline for t: Unix milliseconds.
func DeadlineValue(t time.Time) int64 { return t.UnixMilli() }

// ParseDeadline decodes a HeaderDeadline value. It accepts every integer
// type, a whole float64 and a decimal string, so that producers in other
// languages need not send exactly a 64-bit integer. ok is false when v is
// absent, not a number, or not positive.
func ParseDeadline(v any) (t time.Time, ok bool) {
	var ms int64
	switch x := v.(type) {
	case int64:
		ms = x
	case int32:
		ms = int64(x)
	case int:
		ms = int64(x)
	case int16:
		ms = int64(x)
	case int8:
		ms = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return time.Time{}, false
		}
		ms = int64(x)
	case uint32:
		ms = int64(x)
	case uint16:
		ms = int64(x)
	case uint8:
		ms = int64(x)
	case float64:
		if x != x || x < 1 || x > math.MaxInt64/2 {
			return time.Time{}, false
		}
		ms = int64(x)
	case float32:
		return ParseDeadline(float64(x))
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		ms = n
	case []byte:
		return ParseDeadline(string(x))
	default:
		return time.Time{}, false
	}
	if ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
