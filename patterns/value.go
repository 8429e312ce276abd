package patterns

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
)

// scalarString returns the string form of a message or pattern value, as
// Patrun would compare it (JavaScript's String(value)). Strings and bools
// come back in s with b == nil; numbers are appended to buf (which must not
// be nil) and come back in b, so that callers can look it up with m[string(b)]
// without allocating. ok is false for nil, nested and unsupported values.
func scalarString(v any, buf []byte) (s string, b []byte, ok bool) {
	switch x := v.(type) {
	case string:
		return x, nil, true
	case bool:
		if x {
			return "true", nil, true
		}
		return "false", nil, true
	case float64:
		return "", appendJSNumber(buf, x, 64), true
	case int:
		return "", strconv.AppendInt(buf, int64(x), 10), true
	case int64:
		return "", strconv.AppendInt(buf, x, 10), true
	case json.Number:
		return "", appendJSONNumber(buf, string(x)), true
	case float32:
		return "", appendJSNumber(buf, float64(x), 32), true
	case int8:
		return "", strconv.AppendInt(buf, int64(x), 10), true
	case int16:
		return "", strconv.AppendInt(buf, int64(x), 10), true
	case int32:
		return "", strconv.AppendInt(buf, int64(x), 10), true
	case uint:
		return "", strconv.AppendUint(buf, uint64(x), 10), true
	case uint8:
		return "", strconv.AppendUint(buf, uint64(x), 10), true
	case uint16:
		return "", strconv.AppendUint(buf, uint64(x), 10), true
	case uint32:
		return "", strconv.AppendUint(buf, uint64(x), 10), true
	case uint64:
		return "", strconv.AppendUint(buf, x, 10), true
	case uintptr:
		return "", strconv.AppendUint(buf, uint64(x), 10), true
	case nil, map[string]any, []any:
		return "", nil, false
	}
	// Named types of the scalar kinds (type Role string, ...).
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), nil, true
	case reflect.Bool:
		if rv.Bool() {
			return "true", nil, true
		}
		return "false", nil, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "", strconv.AppendInt(buf, rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "", strconv.AppendUint(buf, rv.Uint(), 10), true
	case reflect.Float32:
		return "", appendJSNumber(buf, rv.Float(), 32), true
	case reflect.Float64:
		return "", appendJSNumber(buf, rv.Float(), 64), true
	}
	return "", nil, false
}

// appendJSONNumber appends the JavaScript form of a JSON number literal: the
// number JSON.parse would produce, printed as Number#toString prints it. A
// literal that is not a number is appended as it is.
func appendJSONNumber(buf []byte, lit string) []byte {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return append(buf, lit...)
		}
		// Out of range: f is ±Inf or ±0, as JavaScript rounds it.
	}
	return appendJSNumber(buf, f, 64)
}

// appendJSNumber appends f as JavaScript's Number#toString prints it (ECMA-262
// Number::toString with radix 10): the shortest digits that round-trip,
// plain notation for exponents from -7 to 20 and "d.ddde+X" beyond, "NaN",
// "Infinity", and "0" for -0. bitSize 32 takes the shortest digits of a
// float32, so float32(0.1) prints as "0.1".
func appendJSNumber(buf []byte, f float64, bitSize int) []byte {
	switch {
	case f != f:
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "Infinity"...)
	case math.IsInf(f, -1):
		return append(buf, "-Infinity"...)
	case f == 0:
		return append(buf, '0')
	}
	if f < 0 {
		buf = append(buf, '-')
		f = -f
	}
	// Fast path for integers that print the same in both languages.
	if bitSize == 64 && f < 1e15 && f == math.Trunc(f) {
		return strconv.AppendInt(buf, int64(f), 10)
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, bitSize) // d.ddddde±XX
	var digs [32]byte
	k := 0
	i := 0
	for ; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' {
			digs[k] = e[i]
			k++
		}
	}
	exp := 0
	neg := false
	i++ // skip 'e'
	if i < len(e) && (e[i] == '+' || e[i] == '-') {
		neg = e[i] == '-'
		i++
	}
	for ; i < len(e); i++ {
		exp = exp*10 + int(e[i]-'0')
	}
	if neg {
		exp = -exp
	}
	n := exp + 1 // the position of the decimal point, as ECMA-262 names it
	d := digs[:k]
	switch {
	case k <= n && n <= 21:
		buf = append(buf, d...)
		for j := 0; j < n-k; j++ {
			buf = append(buf, '0')
		}
	case 0 < n && n <= 21:
		buf = append(buf, d[:n]...)
		buf = append(buf, '.')
		buf = append(buf, d[n:]...)
	case -6 < n && n <= 0:
		buf = append(buf, '0', '.')
		for j := 0; j < -n; j++ {
			buf = append(buf, '0')
		}
		buf = append(buf, d...)
	default:
		buf = append(buf, d[0])
		if k > 1 {
			buf = append(buf, '.')
			buf = append(buf, d[1:]...)
		}
		buf = append(buf, 'e')
		if n-1 < 0 {
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(1-n), 10)
		} else {
			buf = append(buf, '+')
			buf = strconv.AppendInt(buf, int64(n-1), 10)
		}
	}
	return buf
}

// JSON returns the value as the JSON scalar it reads as, the way Seneca's
// jsonic types a pattern's values when they become part of a message:
// "true" and "false" as bools, a number in JavaScript's normal form ("1",
// "-2.5", "1e+21") as a json.Number, anything else as a string. A value
// that was quoted in the pattern text but reads as a number ('7') becomes a
// number too: a Pattern keeps values, not how they were written. Matching is
// not affected, since it compares values as strings.
func (p Pair) JSON() any {
	switch p.Value {
	case "true":
		return true
	case "false":
		return false
	}
	if isJSONNumber(p.Value) {
		var buf [32]byte
		if string(appendJSONNumber(buf[:0], p.Value)) == p.Value {
			return json.Number(p.Value)
		}
	}
	return p.Value
}
