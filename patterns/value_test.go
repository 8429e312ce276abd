package patterns

import (
	"encoding/json"
	"math"
	"testing"
)

func TestJSNumber(t *testing.T) {
	tests := []struct {
		name string
		f    float64
		want string
	}{
		{"one", 1, "1"},
		{"negative", -1, "-1"},
		{"half", 1.5, "1.5"},
		{"zero", 0, "0"},
		{"negative zero", math.Copysign(0, -1), "0"},
		{"tenth", 0.1, "0.1"},
		{"point one plus point two", 0.30000000000000004, "0.30000000000000004"},
		{"1e20 plain", 1e20, "100000000000000000000"},
		{"1e21 exponent", 1e21, "1e+21"},
		{"1.5e21", 1.5e21, "1.5e+21"},
		{"123e18", 123e18, "123000000000000000000"},
		{"1e-6 plain", 1e-6, "0.000001"},
		{"1e-7 exponent", 1e-7, "1e-7"},
		{"1.25e-7", 1.25e-7, "1.25e-7"},
		{"123.456", 123.456, "123.456"},
		{"max safe integer", 9007199254740991, "9007199254740991"},
		{"2^53+2", 9007199254740994, "9007199254740994"},
		{"1e15+0.5", 1e15 + 0.5, "1000000000000000.5"},
		{"max float", math.MaxFloat64, "1.7976931348623157e+308"},
		{"smallest denormal", 5e-324, "5e-324"},
		{"nan", math.NaN(), "NaN"},
		{"infinity", math.Inf(1), "Infinity"},
		{"negative infinity", math.Inf(-1), "-Infinity"},
		{"negative small", -0.000123, "-0.000123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendJSNumber(nil, tt.f, 64)); got != tt.want {
				t.Errorf("appendJSNumber(%v) = %q, want %q", tt.f, got, tt.want)
			}
		})
	}
}

type role string
type level int

func TestScalarString(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
		ok   bool
	}{
		{"string", "x", "x", true},
		{"empty string", "", "", true},
		{"true", true, "true", true},
		{"false", false, "false", true},
		{"float64", 2.0, "2", true},
		{"float32", float32(0.1), "0.1", true},
		{"float32 large", float32(123456789), "123456790", true},
		{"int", 42, "42", true},
		{"int8", int8(-8), "-8", true},
		{"int16", int16(16), "16", true},
		{"int32", int32(32), "32", true},
		{"int64", int64(math.MinInt64), "-9223372036854775808", true},
		{"uint", uint(7), "7", true},
		{"uint8", uint8(255), "255", true},
		{"uint16", uint16(16), "16", true},
		{"uint32", uint32(32), "32", true},
		{"uint64", uint64(math.MaxUint64), "18446744073709551615", true},
		{"uintptr", uintptr(9), "9", true},
		{"json number integer", json.Number("1"), "1", true},
		{"json number float", json.Number("1.0"), "1", true},
		{"json number exponent", json.Number("1e21"), "1e+21", true},
		{"json number huge integer", json.Number("12345678901234567890"), "12345678901234567000", true},
		{"json number out of range", json.Number("1e400"), "Infinity", true},
		{"json number invalid", json.Number("abc"), "abc", true},
		{"named string", role("admin"), "admin", true},
		{"named int", level(3), "3", true},
		{"nil", nil, "", false},
		{"map", map[string]any{"a": 1}, "", false},
		{"slice", []any{1}, "", false},
		{"typed slice", []string{"a"}, "", false},
		{"struct", struct{}{}, "", false},
		{"pointer", new(int), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf [32]byte
			s, b, ok := scalarString(tt.v, buf[:0])
			if b != nil {
				s = string(b)
			}
			if s != tt.want || ok != tt.ok {
				t.Errorf("scalarString(%#v) = %q, %v; want %q, %v", tt.v, s, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestMessageValues checks the value rules through Find: how each kind of
// message value compares with pattern values.
func TestMessageValues(t *testing.T) {
	r := NewRouter[string]()
	r.Add(MustParse("a:1"), "one")
	r.Add(MustParse("a:true"), "true")
	r.Add(MustParse("a:1.5"), "one and a half")
	r.Add(MustParse("a:1e+21"), "big")
	r.Add(MustParse(`a:"null"`), "null text")
	r.Add(MustParse(`b:*`), "any b")
	r.Add(MustParse(`c:"[object Object]"`), "object text")
	tests := []struct {
		name string
		msg  map[string]any
		want string // "" means not found
	}{
		{"float one", map[string]any{"a": 1.0}, "one"},
		{"string one", map[string]any{"a": "1"}, "one"},
		{"int one", map[string]any{"a": 1}, "one"},
		{"json number one point zero", map[string]any{"a": json.Number("1.0")}, "one"},
		{"bool true", map[string]any{"a": true}, "true"},
		{"string true", map[string]any{"a": "true"}, "true"},
		{"float one and a half", map[string]any{"a": 1.5}, "one and a half"},
		{"float big", map[string]any{"a": 1e21}, "big"},
		{"string null", map[string]any{"a": "null"}, "null text"},
		{"nil is absent", map[string]any{"a": nil}, ""},
		{"nil does not match star", map[string]any{"b": nil}, ""},
		{"map does not match star", map[string]any{"b": map[string]any{}}, ""},
		{"slice does not match star", map[string]any{"b": []any{1}}, ""},
		{"empty string matches star", map[string]any{"b": ""}, "any b"},
		{"number matches star", map[string]any{"b": 0.0}, "any b"},
		{"object never stringified", map[string]any{"c": map[string]any{}}, ""},
		{"dollar key ignored", map[string]any{"a$": 1.0}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := r.Find(tt.msg)
			if (tt.want != "") != ok || got != tt.want {
				t.Errorf("Find(%v) = %q, %v; want %q\n%s", tt.msg, got, ok, tt.want, r.Explain(tt.msg))
			}
		})
	}
}
