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

// Int64 reads an integer header value as producers in other languages may
// send it: any integer type, a whole float (NaN, infinities and values
// beyond int64 are refused), or a decimal string or byte string. ok is
// false for anything else.
func Int64(v any) (n int64, ok bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case float64:
		if x != x || x < math.MinInt64/2 || x > math.MaxInt64/2 || x != math.Trunc(x) {
			return 0, false
		}
		return int64(x), true
	case float32:
		return Int64(float64(x))
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	case []byte:
		return Int64(string(x))
	}
	return 0, false
}

// ParseDeadline decodes a HeaderDeadline value (Int64). ok is false when v
// is absent, not an integer, or not positive.
func ParseDeadline(v any) (t time.Time, ok bool) {
	ms, ok := Int64(v)
	if !ok || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
