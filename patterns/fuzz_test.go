package patterns

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "{}", "role:user,cmd:login", "{ a : 1 , b : 'x,y' }", `a:"\u00e9\ud83d\ude00"`,
		"a:1.0,b:-0,c:1e21", "a:x*,b:?", "a:null", "role:user,cmd", `"a b":"c:d"`, "a:b:c",
		"{a:1", "a:1}", `a:"\q"`, "tx$:1", "a:1,a:2", "a:1,", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidPattern", s, err)
			}
			var se *SyntaxError
			if errors.As(err, &se) && (se.Offset < 0 || se.Offset > len(s)) {
				t.Fatalf("Parse(%q) error offset %d out of range", s, se.Offset)
			}
			return
		}
		text := p.String()
		q, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, text, err)
		}
		if !q.Equal(p) {
			t.Fatalf("Parse(%q) = %v; Parse(String()) = %v", s, p.Pairs(), q.Pairs())
		}
		if q.String() != text {
			t.Fatalf("String not canonical: %q then %q", text, q.String())
		}
	})
}

func FuzzKey(f *testing.F) {
	f.Add("role", "user", "cmd", "login", "", "")
	f.Add("a.b", "x*#%:", "é", "😀 y", "k", "")
	f.Add("a", "1", "b", "2", "c", "%2E")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		var pairs []Pair
		for _, pr := range []Pair{{k1, v1}, {k2, v2}, {k3, v3}} {
			if pr.Key != "" {
				pairs = append(pairs, pr)
			}
		}
		p, err := FromPairs(pairs...)
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("FromPairs error %v does not wrap ErrInvalidPattern", err)
			}
			return
		}
		// The text form round-trips for any pattern.
		if q, err := Parse(p.String()); err != nil || !q.Equal(p) {
			t.Fatalf("Parse(%q) = %v, %v; want %v", p.String(), q.Pairs(), err, p.Pairs())
		}
		if _, err := BindingKey(p); err != nil && !errors.Is(err, ErrKeyTooLong) {
			t.Fatalf("BindingKey: %v", err)
		}
		key, err := Key(p)
		if err != nil {
			if !errors.Is(err, ErrKeyTooLong) {
				t.Fatalf("Key(%v): %v", p.Pairs(), err)
			}
			return
		}
		if len(key) > MaxKeyLen {
			t.Fatalf("key of %d bytes", len(key))
		}
		for i := 0; i < len(key); i++ {
			if c := key[i]; c == '*' || c == '#' || c <= ' ' || c >= 0x7f {
				t.Fatalf("key %q holds raw %q", key, c)
			}
		}
		q, err := ParseKey(key)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", key, err)
		}
		if !q.Equal(p) {
			t.Fatalf("ParseKey(Key(%v)) = %v", p.Pairs(), q.Pairs())
		}
	})
}

var fuzzKeys = []string{"a", "b", "c", "d", "e"}
var fuzzVals = []string{"1", "2", "x", "xy", "x*", "*", "?", "*y", "", "1?", "true", "**", "*?"}

// fuzzMessage builds a message from bytes: for each key, absent or one of
// several kinds of value.
func fuzzMessage(b []byte) map[string]any {
	m := map[string]any{}
	for i, k := range fuzzKeys {
		if i >= len(b) {
			break
		}
		c := b[i]
		switch c % 8 {
		case 0:
			// absent
		case 1:
			m[k] = fuzzVals[int(c/8)%len(fuzzVals)]
		case 2:
			m[k] = float64(c/8) / 2
		case 3:
			m[k] = c%16 == 3
		case 4:
			m[k] = nil
		case 5:
			m[k] = map[string]any{"x": 1}
		case 6:
			m[k] = int(c / 8 % 4)
		case 7:
			m[k+"$"] = "meta"
		}
	}
	return m
}

func FuzzFind(f *testing.F) {
	f.Add([]byte{0x01, 0x00, 0x03, 0x11, 0x86, 0x22}, []byte{0x01, 0x09, 0x0a, 0x00, 0x03})
	f.Add([]byte{0x1f, 0xff, 0x00, 0x00, 0x05, 0x42}, []byte{0x11, 0x19, 0x21, 0x29, 0x31})
	f.Fuzz(func(t *testing.T, prog, msgb []byte) {
		r := NewRouter[int]()
		var ops []refOp
		// Each 3 bytes: a key mask (bit 7: remove instead of add) and two
		// bytes choosing values.
		for i := 0; i+2 < len(prog) && i < 3*64; i += 3 {
			mask, v1, v2 := prog[i], prog[i+1], prog[i+2]
			var pairs []Pair
			for k := range fuzzKeys {
				if mask&(1<<k) != 0 {
					sel := int(v1>>(k%4)) ^ int(v2)<<k
					pairs = append(pairs, Pair{fuzzKeys[k], fuzzVals[(sel%len(fuzzVals)+len(fuzzVals))%len(fuzzVals)]})
				}
			}
			p, err := FromPairs(pairs...)
			if err != nil {
				t.Fatal(err)
			}
			if mask&0x80 != 0 {
				r.Remove(p)
			} else {
				r.Add(p, i)
			}
			ops = append(ops, refOp{p: p, id: i, remove: mask&0x80 != 0})
		}
		msg := fuzzMessage(msgb)
		checkAgainstReference(t, ops, []map[string]any{msg})
		v, ok := r.Find(msg)
		e, eok := r.FindEntry(msg)
		ex := r.Explain(msg)
		if ok != eok || ok != ex.Found || (ok && (e.Value != v || !ex.Pattern.Equal(e.Pattern))) {
			t.Fatalf("Find = %d, %v; FindEntry = %v, %v; Explain = %v", v, ok, e, eok, ex)
		}
		if ok && !e.Pattern.Match(msg) {
			t.Fatalf("winner %s does not match %v", e.Pattern, msg)
		}
		if ok {
			found := false
			for _, c := range r.Collect(msg) {
				found = found || c == v
			}
			if !found {
				t.Fatalf("Collect(%v) = %v lacks the winner %d", msg, r.Collect(msg), v)
			}
		}
		if xv, xok := r.FindExact(msg); xok {
			var xp Pattern
			for _, en := range r.List(Pattern{}) {
				if en.Value == xv {
					xp = en.Pattern
				}
			}
			if !xp.Match(msg) {
				t.Fatalf("exact winner %s does not match %v", xp, msg)
			}
		}
		pv, pok := r.FindPattern(MustParse(""))
		if rv, rok := r.Get(Pattern{}); pok != rok || pv != rv {
			t.Fatalf("FindPattern({}) = %d, %v; root %d, %v", pv, pok, rv, rok)
		}
	})
}
