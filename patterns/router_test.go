package patterns

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestRouterBasics(t *testing.T) {
	var r Router[string] // the zero value is ready to use
	if _, ok := r.Find(map[string]any{"a": 1.0}); ok {
		t.Error("empty router found something")
	}
	if r.Remove(MustParse("a:1")) || r.Remove(Pattern{}) || r.Len() != 0 || len(r.List(Pattern{})) != 0 {
		t.Error("empty router: Remove, Len or List")
	}
	if _, ok := r.Get(MustParse("a:1")); ok {
		t.Error("empty router: Get found something")
	}
	if _, ok := r.FindExact(nil); ok {
		t.Error("empty router: FindExact found something")
	}
	r.Add(MustParse("a:1"), "A")
	r.Add(MustParse("a:1,b:2"), "AB")
	if r.Len() != 2 {
		t.Errorf("Len = %d", r.Len())
	}
	r.Add(MustParse("b:2,a:1"), "AB2") // same pattern: replaces
	if r.Len() != 2 {
		t.Errorf("Len after replace = %d", r.Len())
	}
	if v, _ := r.Find(map[string]any{"a": 1.0, "b": 2.0}); v != "AB2" {
		t.Errorf("replaced value: Find = %q", v)
	}
	if v, ok := r.Get(MustParse("a:1")); !ok || v != "A" {
		t.Errorf("Get(a:1) = %q, %v", v, ok)
	}
	if _, ok := r.Get(MustParse("a:2")); ok {
		t.Error("Get(a:2) found")
	}
	if e, ok := r.FindEntry(map[string]any{"a": "1", "z": 0.0}); !ok || e.Value != "A" || e.Pattern.String() != "a:1" {
		t.Errorf("FindEntry = %v, %v", e, ok)
	}
	if r.Remove(MustParse("a:2")) || r.Remove(MustParse("c:1")) || r.Remove(Pattern{}) {
		t.Error("Remove of a missing pattern reported true")
	}
	if !r.Remove(MustParse("a:1")) || r.Remove(MustParse("a:1")) {
		t.Error("Remove(a:1) twice")
	}
	if r.Len() != 1 {
		t.Errorf("Len after remove = %d", r.Len())
	}
	// The narrower pattern stays.
	if v, ok := r.Find(map[string]any{"a": 1.0, "b": 2.0}); !ok || v != "AB2" {
		t.Errorf("after removing a:1: Find = %q, %v", v, ok)
	}
	if _, ok := r.Find(map[string]any{"a": 1.0}); ok {
		t.Error("removed pattern still found")
	}
	// Catch-all.
	r.Add(Pattern{}, "ALL")
	if v, _ := r.Find(nil); v != "ALL" {
		t.Errorf("catch-all on nil message = %q", v)
	}
	if v, _ := r.Find(map[string]any{"x": "y"}); v != "ALL" {
		t.Errorf("catch-all = %q", v)
	}
}

func TestRemoveKeepsPathAsPatrun(t *testing.T) {
	// Patrun leaves the path of a removed pattern in the tree: the walk still
	// commits to it. Here {a:1,b:2,c:3} finds a:1 (not a:1,c:3) after
	// removing a:1,b:2, as Patrun does.
	r := NewRouter[string]()
	r.Add(MustParse("a:1"), "A")
	r.Add(MustParse("a:1,b:2"), "AB")
	r.Add(MustParse("a:1,c:3"), "AC")
	r.Remove(MustParse("a:1,b:2"))
	if v, _ := r.Find(map[string]any{"a": 1.0, "b": 2.0, "c": 3.0}); v != "A" {
		t.Errorf("Find = %q, want A\n%s", v, r.Explain(map[string]any{"a": 1.0, "b": 2.0, "c": 3.0}))
	}
	if v, _ := r.Find(map[string]any{"a": 1.0, "c": 3.0}); v != "AC" {
		t.Errorf("Find = %q, want AC", v)
	}
}

func TestFindExact(t *testing.T) {
	r := NewRouter[string]()
	r.Add(Pattern{}, "ROOT")
	r.Add(MustParse("a:1"), "A")
	r.Add(MustParse("a:1,b:2"), "AB")
	r.Add(MustParse("c:x*"), "CX")
	tests := []struct {
		name string
		msg  map[string]any
		want string
	}{
		{"empty message is the root", map[string]any{}, "ROOT"},
		{"one key", map[string]any{"a": 1.0}, "A"},
		{"two keys", map[string]any{"a": 1.0, "b": 2.0}, "AB"},
		{"extra key", map[string]any{"a": 1.0, "z": 2.0}, ""},
		{"partial path", map[string]any{"b": 2.0}, ""},
		{"metadata ignored", map[string]any{"a": 1.0, "tx$": "x"}, "A"},
		{"nil value ignored", map[string]any{"a": 1.0, "n": nil}, "A"},
		{"glob still a glob", map[string]any{"c": "xyz"}, "CX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := r.FindExact(tt.msg)
			if (tt.want != "") != ok || got != tt.want {
				t.Errorf("FindExact(%v) = %q, %v; want %q", tt.msg, got, ok, tt.want)
			}
		})
	}
}

func TestFindPattern(t *testing.T) {
	r := NewRouter[string]()
	r.Add(MustParse("role:math"), "MATH")
	r.Add(MustParse("role:math,cmd:sum"), "SUM")
	r.Add(MustParse("role:math,cmd:s*"), "S*")
	tests := []struct {
		pat  string
		want string
	}{
		{"role:math,cmd:sum", "SUM"},
		{"role:math,cmd:sub", "S*"},
		{"role:math,cmd:add,x:1", "MATH"},
		{"role:math", "MATH"},
		{"cmd:sum", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := r.FindPattern(MustParse(tt.pat))
		if (tt.want != "") != ok || got != tt.want {
			t.Errorf("FindPattern(%s) = %q, %v; want %q", tt.pat, got, ok, tt.want)
		}
	}
}

func TestSurprisingRule(t *testing.T) {
	r := NewRouter[string]()
	r.Add(MustParse("b:1,c:1"), "BC")
	r.Add(MustParse("a:1"), "A")
	if v, _ := r.Find(map[string]any{"a": 1.0, "b": 1.0, "c": 1.0}); v != "A" {
		t.Errorf("{a:1} should beat {b:1,c:1}: got %q", v)
	}
}

func TestCollect(t *testing.T) {
	r := NewRouter[string]()
	r.Add(Pattern{}, "ROOT")
	r.Add(MustParse("a:1"), "A")
	r.Add(MustParse("a:1,b:2"), "AB")
	r.Add(MustParse("c:3"), "C")
	r.Add(MustParse("c:*"), "C*")
	tests := []struct {
		name string
		msg  map[string]any
		want []string
	}{
		{"all along and across", map[string]any{"a": 1.0, "b": 2.0, "c": 3.0}, []string{"ROOT", "A", "AB", "C"}},
		{"glob across", map[string]any{"a": 1.0, "c": 4.0}, []string{"ROOT", "A", "C*"}},
		{"root only", map[string]any{"z": 1.0}, []string{"ROOT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Collect(tt.msg)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Collect(%v) = %v, want %v", tt.msg, got, tt.want)
			}
		})
	}
	if got := NewRouter[int]().Collect(map[string]any{"a": 1}); len(got) != 0 {
		t.Errorf("Collect on empty router = %v", got)
	}
}

func TestList(t *testing.T) {
	r := NewRouter[int]()
	for i, s := range []string{"role:user,cmd:login", "role:user,cmd:logout", "role:admin,cmd:login", "role:user", "cmd:log*", ""} {
		r.Add(MustParse(s), i)
	}
	r.Add(MustParse("x:1"), 9)
	r.Remove(MustParse("x:1"))
	tests := []struct {
		name    string
		partial string
		want    []string
	}{
		{"all", "", []string{"", "cmd:log*", "cmd:login,role:admin", "cmd:login,role:user", "cmd:logout,role:user", "role:user"}},
		{"by role", "role:user", []string{"cmd:login,role:user", "cmd:logout,role:user", "role:user"}},
		{"two pairs", "role:user,cmd:login", []string{"cmd:login,role:user"}},
		{"glob is literal", "cmd:log*", []string{"cmd:log*"}},
		{"none", "role:nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range r.List(MustParse(tt.partial)) {
				got = append(got, e.Pattern.String())
				if v, _ := r.Get(e.Pattern); v != e.Value {
					t.Errorf("entry %s has value %d, Get gives %d", e.Pattern, e.Value, v)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("List(%s) = %q, want %q", tt.partial, got, tt.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	r := NewRouter[string]()
	r.Add(MustParse("a:1,b:2"), "X")
	r.Add(MustParse("c:3"), "Y")
	r.Add(MustParse("c:x*"), "Z")
	tests := []struct {
		name string
		msg  string // JSON
		want string
	}{
		{"backtrack", `{"a":1,"b":0,"c":3}`, `found c:3
  a: "1" exact
  b: "0" skip (no match)
  backtrack to c
  c: "3" exact -> c:3`},
		{"committed path wins", `{"a":1,"b":2,"c":3}`, `found a:1,b:2
  a: "1" exact
  b: "2" exact -> a:1,b:2`},
		{"missing keys", `{"c":"xy"}`, `found c:x*
  a: missing, skip
  c: "xy" glob "x*" -> c:x*`},
		{"nothing", `{"z":1}`, `not found
  a: missing, skip
  c: missing, skip`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msg map[string]any
			if err := json.Unmarshal([]byte(tt.msg), &msg); err != nil {
				t.Fatal(err)
			}
			ex := r.Explain(msg)
			if got := ex.String(); got != tt.want {
				t.Errorf("Explain(%s) =\n%s\nwant\n%s", tt.msg, got, tt.want)
			}
			v, ok := r.Find(msg)
			if ok != ex.Found {
				t.Errorf("Find found %v (%q), Explain %v", ok, v, ex.Found)
			}
		})
	}
	ex := r.Explain(map[string]any{"c": "xy"})
	if len(ex.Steps) != 2 || ex.Steps[1].Take != TakeGlob || ex.Steps[1].Glob != "x*" || !ex.Steps[1].HasAction {
		t.Errorf("steps = %+v", ex.Steps)
	}
	for _, tk := range []Take{TakeExact, TakeGlob, TakeSkip, TakeBacktrack, 0} {
		if tk.String() == "" {
			t.Errorf("Take(%d) has no name", tk)
		}
	}
	if got := NewRouter[int]().Explain(nil).String(); got != "not found" {
		t.Errorf("empty router: %q", got)
	}
	r.Add(Pattern{}, "ROOT")
	if got := r.Explain(map[string]any{}).String(); !strings.HasPrefix(got, "found {}") {
		t.Errorf("root: %q", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := NewRouter[int]()
	const writers, readers, n = 4, 4, 300
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				p := MustParse(fmt.Sprintf("w:%d,i:%d", w, i))
				r.Add(p, i)
				if i%3 == 0 {
					r.Remove(p)
				}
			}
		}(w)
	}
	for g := 0; g < readers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				msg := map[string]any{"w": float64(g % writers), "i": float64(i)}
				r.Find(msg)
				r.FindExact(msg)
				r.Collect(msg)
				r.Explain(msg)
				if i%50 == 0 {
					r.List(Pattern{})
					r.Len()
				}
			}
		}(g)
	}
	wg.Wait()
	if want := writers * (n - n/3); r.Len() != want {
		t.Errorf("Len = %d, want %d", r.Len(), want)
	}
	for w := 0; w < writers; w++ {
		for i := 0; i < n; i++ {
			v, ok := r.Find(map[string]any{"w": w, "i": i})
			if want := i%3 != 0; ok != want || (ok && v != i) {
				t.Fatalf("w:%d,i:%d: Find = %d, %v", w, i, v, ok)
			}
		}
	}
}
