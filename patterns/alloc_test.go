package patterns

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFindAllocatesNothing(t *testing.T) {
	r := NewRouter[int]()
	r.Add(MustParse("role:user,cmd:login"), 1)
	r.Add(MustParse("role:user,cmd:login,v:2"), 2)
	r.Add(MustParse("role:user,cmd:log*"), 3)
	r.Add(MustParse("role:user,cmd:sign?up,ok:true"), 4)
	r.Add(MustParse("z:1.5"), 5)
	for i := 0; i < 1000; i++ {
		r.Add(MustParse("role:user,cmd:login,n:"+itoa(i)), 100+i)
	}
	tests := []struct {
		name string
		msg  map[string]any
		want int
	}{
		{"strings", map[string]any{"role": "user", "cmd": "login", "x": "y"}, 1},
		{"float64", map[string]any{"role": "user", "cmd": "login", "v": 2.0, "w": 1e21}, 2},
		{"json number", map[string]any{"role": "user", "cmd": "login", "v": json.Number("2.0")}, 2},
		{"int", map[string]any{"role": "user", "cmd": "login", "n": 500}, 600},
		{"bool", map[string]any{"role": "user", "cmd": "sign-up", "ok": true}, 4},
		{"glob", map[string]any{"role": "user", "cmd": "logout", "id$": "x"}, 3},
		{"fraction", map[string]any{"z": 1.5, "a": "b", "c": false}, 5},
		{"nested and nil", map[string]any{"role": "user", "cmd": "login", "o": map[string]any{}, "n": nil}, 1},
		{"backtrack", map[string]any{"role": "user", "cmd": "nope", "z": 1.5}, 5},
		{"long value on a glob", map[string]any{"role": "user", "cmd": "log" + strings.Repeat("x", 300)}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, ok := r.Find(tt.msg); !ok || v != tt.want {
				t.Fatalf("Find = %d, %v; want %d", v, ok, tt.want)
			}
			if n := testing.AllocsPerRun(100, func() { r.Find(tt.msg) }); n != 0 {
				t.Errorf("Find allocates %v times", n)
			}
			if n := testing.AllocsPerRun(100, func() { r.FindExact(tt.msg) }); n != 0 {
				t.Errorf("FindExact allocates %v times", n)
			}
		})
	}
	p := MustParse("role:user,cmd:login,n:7")
	if n := testing.AllocsPerRun(100, func() { r.FindPattern(p) }); n != 0 {
		t.Errorf("FindPattern allocates %v times", n)
	}
	g := MustParse("role:user,cmd:log*,v:2")
	msg := map[string]any{"role": "user", "cmd": "login", "v": 2.0}
	if n := testing.AllocsPerRun(100, func() { g.Match(msg) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func itoa(i int) string { return string(appendJSNumber(nil, float64(i), 64)) }
