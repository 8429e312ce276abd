package patterns

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestFromMap(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]any
		want string
		err  bool
	}{
		{"nil map", nil, "", false},
		{"strings", map[string]any{"role": "user", "cmd": "login"}, "cmd:login,role:user", false},
		{"numbers", map[string]any{"a": 1.0, "b": 1.5, "c": int64(-3), "d": uint8(4), "e": json.Number("1.0")}, "a:1,b:1.5,c:-3,d:4,e:1", false},
		{"bools", map[string]any{"a": true, "b": false}, "a:true,b:false", false},
		{"nan", map[string]any{"a": math.NaN()}, "a:NaN", false},
		{"named type", map[string]any{"r": role("admin")}, "r:admin", false},
		{"nil value", map[string]any{"a": nil}, "", true},
		{"nested map", map[string]any{"a": map[string]any{}}, "", true},
		{"slice", map[string]any{"a": []any{}}, "", true},
		{"dollar key", map[string]any{"tx$": "x"}, "", true},
		{"empty key", map[string]any{"": "x"}, "", true},
		{"invalid utf8 value", map[string]any{"a": "\xff"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FromMap(tt.m)
			if tt.err {
				if !errors.Is(err, ErrInvalidPattern) {
					t.Fatalf("FromMap(%v) error = %v, want ErrInvalidPattern", tt.m, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromPairs(t *testing.T) {
	p, err := FromPairs(Pair{"role", "user"}, Pair{"cmd", "login"})
	if err != nil || p.String() != "cmd:login,role:user" {
		t.Fatalf("FromPairs = %v, %v", p, err)
	}
	bad := []struct {
		name  string
		pairs []Pair
	}{
		{"duplicate", []Pair{{"a", "1"}, {"a", "2"}}},
		{"empty key", []Pair{{"", "1"}}},
		{"dollar key", []Pair{{"x$", "1"}}},
		{"invalid utf8 key", []Pair{{"\xff", "1"}}},
		{"invalid utf8 value", []Pair{{"a", "\xfe"}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FromPairs(tt.pairs...); !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("FromPairs(%v) error = %v, want ErrInvalidPattern", tt.pairs, err)
			}
		})
	}
}

func TestPatternMethods(t *testing.T) {
	p := MustParse("role:user,cmd:login")
	if v, ok := p.Get("role"); !ok || v != "user" {
		t.Errorf("Get(role) = %q, %v", v, ok)
	}
	if _, ok := p.Get("nope"); ok {
		t.Error("Get(nope) found")
	}
	q := p.With("role", "admin")
	if q.String() != "cmd:login,role:admin" || p.String() != "cmd:login,role:user" {
		t.Errorf("With replaced: %s (p now %s)", q, p)
	}
	q = p.With("a", "1")
	if q.String() != "a:1,cmd:login,role:user" {
		t.Errorf("With added: %s", q)
	}
	if p.With("x$", "1").String() != p.String() || p.With("", "1").Len() != 2 {
		t.Error("With accepted an invalid key")
	}
	if got := p.Without("cmd").String(); got != "role:user" {
		t.Errorf("Without(cmd) = %s", got)
	}
	if got := p.Without("nope"); !got.Equal(p) {
		t.Errorf("Without(nope) = %s", got)
	}
	if got := MustParse("a:1").Without("a"); got.Len() != 0 || !got.Equal(Pattern{}) {
		t.Errorf("Without last = %s", got)
	}
	if !p.Equal(MustParse("cmd:login, role:user")) || p.Equal(q) || p.Equal(Pattern{}) {
		t.Error("Equal")
	}
	pairs := p.Pairs()
	pairs[0].Value = "changed"
	if p.String() != "cmd:login,role:user" {
		t.Error("Pairs returned the pattern's own slice")
	}
	if p.HasGlob() || !MustParse("a:x*").HasGlob() || !MustParse("a:?").HasGlob() {
		t.Error("HasGlob")
	}
	if got := MustParse("a:1,b:x*,c:2").Exact().String(); got != "a:1,c:2" {
		t.Errorf("Exact = %s", got)
	}
	m := p.Map()
	if len(m) != 2 || m["role"] != "user" {
		t.Errorf("Map = %v", m)
	}
	if !p.Contains(MustParse("role:user")) || p.Contains(MustParse("role:x")) || !p.Contains(Pattern{}) {
		t.Error("Contains")
	}
	var zero Pattern
	if zero.String() != "" || zero.Len() != 0 || zero.Pairs() != nil {
		t.Error("zero pattern")
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		pat  string
		msg  map[string]any
		want bool
	}{
		{"empty pattern matches all", "", map[string]any{"a": 1.0}, true},
		{"empty pattern matches empty", "", nil, true},
		{"exact", "a:1,b:x", map[string]any{"a": 1.0, "b": "x", "c": 3.0}, true},
		{"missing key", "a:1,b:x", map[string]any{"a": 1.0}, false},
		{"wrong value", "a:1", map[string]any{"a": 2.0}, false},
		{"glob", "cmd:log*", map[string]any{"cmd": "login"}, true},
		{"glob no match", "cmd:log*", map[string]any{"cmd": "sign"}, false},
		{"star needs key", "cmd:*", map[string]any{}, false},
		{"star on number", "n:*", map[string]any{"n": 12.5}, true},
		{"question on number", "n:1?", map[string]any{"n": 12.0}, true},
		{"nil never matches", "n:*", map[string]any{"n": nil}, false},
		{"nested never matches", "n:*", map[string]any{"n": []any{}}, false},
		{"bool", "ok:true", map[string]any{"ok": true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MustParse(tt.pat).Match(tt.msg); got != tt.want {
				t.Errorf("%s.Match(%v) = %v", tt.pat, tt.msg, got)
			}
		})
	}
}

func TestPatternJSON(t *testing.T) {
	p := MustParse(`role:user,cmd:login,n:1,q:"a\"b"`)
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `{"cmd":"login","n":"1","q":"a\"b","role":"user"}`; got != want {
		t.Errorf("MarshalJSON = %s, want %s", got, want)
	}
	var q Pattern
	if err := json.Unmarshal(data, &q); err != nil || !q.Equal(p) {
		t.Errorf("UnmarshalJSON = %v, %v", q, err)
	}
	if err := json.Unmarshal([]byte(`{"a":1.0,"b":true}`), &q); err != nil || q.String() != "a:1,b:true" {
		t.Errorf("UnmarshalJSON numbers = %v, %v", q, err)
	}
	if err := json.Unmarshal([]byte(`"role:user,cmd:login"`), &q); err != nil || !q.Equal(MustParse("cmd:login,role:user")) {
		t.Errorf("UnmarshalJSON string = %v, %v", q, err)
	}
	before := q
	if err := json.Unmarshal([]byte(`null`), &q); err != nil || !q.Equal(before) {
		t.Errorf("UnmarshalJSON null changed the pattern: %v, %v", q, err)
	}
	for _, bad := range []string{`{"a":null}`, `{"a":{}}`, `[1]`, `"a:"`, `{"x$":1}`, `{`} {
		if err := json.Unmarshal([]byte(bad), &q); err == nil {
			t.Errorf("UnmarshalJSON(%s) succeeded", bad)
		} else if !errors.Is(err, ErrInvalidPattern) {
			var se *json.SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("UnmarshalJSON(%s) error %v wraps neither ErrInvalidPattern nor a JSON syntax error", bad, err)
			}
		}
	}
	empty, _ := json.Marshal(Pattern{})
	if string(empty) != "{}" {
		t.Errorf("empty pattern JSON = %s", empty)
	}
	// As a struct field, and as a map key through its text form.
	type holder struct {
		P Pattern `json:"p"`
	}
	data, err = json.Marshal(holder{P: p})
	if err != nil || string(data) != `{"p":{"cmd":"login","n":"1","q":"a\"b","role":"user"}}` {
		t.Errorf("field = %s, %v", data, err)
	}
	text, err := p.MarshalText()
	if err != nil || string(text) != p.String() {
		t.Errorf("MarshalText = %s, %v", text, err)
	}
	var r Pattern
	if err := r.UnmarshalText(text); err != nil || !r.Equal(p) {
		t.Errorf("UnmarshalText = %v, %v", r, err)
	}
	if err := r.UnmarshalText([]byte("a:")); !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("UnmarshalText(a:) = %v", err)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic on bad input")
		}
	}()
	MustParse("a:")
}
