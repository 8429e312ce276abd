package patterns

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// conformanceFile is the layout of testdata/patrun-*.json: expected answers
// produced by running Patrun 7.x with globs enabled.
type conformanceFile struct {
	Source string            `json:"source"`
	Cases  []conformanceCase `json:"cases"`
}

type conformanceCase struct {
	Name string `json:"name"`
	Adds []struct {
		Pattern map[string]any `json:"pattern"`
		ID      string         `json:"id"`
	} `json:"adds"`
	Removes []map[string]any  `json:"removes"`
	Finds   []conformanceFind `json:"finds"`
	Exact   []conformanceFind `json:"exact"`
}

type conformanceFind struct {
	Msg  map[string]any `json:"msg"`
	Want *string        `json:"want"`
}

func loadConformance(t testing.TB) []conformanceCase { return loadConformanceAs(t, false) }

// loadConformanceAs decodes numbers as float64 (as json.Unmarshal does) or,
// with useNumber, as json.Number.
func loadConformanceAs(t testing.TB, useNumber bool) []conformanceCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "patrun-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files: %v", err)
	}
	var all []conformanceCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cf conformanceFile
		dec := json.NewDecoder(bytes.NewReader(data))
		if useNumber {
			dec.UseNumber()
		}
		if err := dec.Decode(&cf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, cf.Cases...)
	}
	return all
}

func TestConformance(t *testing.T) {
	cases := loadConformance(t)
	var finds, exacts, removes int
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			r := NewRouter[string]()
			for _, a := range c.Adds {
				p, err := FromMap(a.Pattern)
				if err != nil {
					t.Fatalf("pattern %v: %v", a.Pattern, err)
				}
				r.Add(p, a.ID)
			}
			for _, rm := range c.Removes {
				p, err := FromMap(rm)
				if err != nil {
					t.Fatalf("remove %v: %v", rm, err)
				}
				if !r.Remove(p) {
					t.Errorf("Remove(%s) = false, want true", p)
				}
				removes++
			}
			check := func(kind string, f conformanceFind, got string, ok bool) {
				t.Helper()
				want, wantOK := "", f.Want != nil
				if wantOK {
					want = *f.Want
				}
				if ok != wantOK || got != want {
					msg, _ := json.Marshal(f.Msg)
					t.Errorf("%s(%s) = %q, %v; want %q, %v\n%s", kind, msg, got, ok, want, wantOK, r.Explain(f.Msg))
				}
			}
			for _, f := range c.Finds {
				got, ok := r.Find(f.Msg)
				check("Find", f, got, ok)
				finds++
				// The explanation must agree with Find.
				ex := r.Explain(f.Msg)
				if ex.Found != ok {
					t.Errorf("Explain(%v).Found = %v, Find found %v", f.Msg, ex.Found, ok)
				} else if ok {
					if v, _ := r.Get(ex.Pattern); v != got {
						t.Errorf("Explain(%v) names %s (value %q), Find gave %q", f.Msg, ex.Pattern, v, got)
					}
				}
			}
			for _, f := range c.Exact {
				got, ok := r.FindExact(f.Msg)
				check("FindExact", f, got, ok)
				exacts++
			}
		})
	}
	t.Logf("%d cases: %d finds, %d exact finds, %d removes", len(cases), finds, exacts, removes)
}

// TestConformanceAddOrder checks that the answers do not depend on the
// order in which patterns without globs were added (the tree's shape
// depends only on the set of patterns).
func TestConformanceAddOrder(t *testing.T) {
	for _, c := range loadConformance(t) {
		hasGlob := false
		var pats []Pattern
		var ids []string
		for _, a := range c.Adds {
			p, err := FromMap(a.Pattern)
			if err != nil {
				t.Fatal(err)
			}
			hasGlob = hasGlob || p.HasGlob()
			pats = append(pats, p)
			ids = append(ids, a.ID)
		}
		if hasGlob || len(c.Removes) > 0 {
			continue
		}
		r := NewRouter[string]()
		for i := len(pats) - 1; i >= 0; i-- {
			r.Add(pats[i], ids[i])
		}
		for _, f := range c.Finds {
			got, ok := r.Find(f.Msg)
			if (f.Want == nil) == ok || (ok && got != *f.Want) {
				t.Errorf("%s: reversed adds: Find(%v) = %q, %v", c.Name, f.Msg, got, ok)
			}
		}
	}
}

// TestConformanceJSONNumber runs the finds with numbers decoded as
// json.Number, as a decoder with UseNumber delivers them.
func TestConformanceJSONNumber(t *testing.T) {
	for _, c := range loadConformanceAs(t, true) {
		r := NewRouter[string]()
		for _, a := range c.Adds {
			p, err := FromMap(a.Pattern)
			if err != nil {
				t.Fatal(err)
			}
			r.Add(p, a.ID)
		}
		for _, rm := range c.Removes {
			p, _ := FromMap(rm)
			r.Remove(p)
		}
		for _, f := range c.Finds {
			got, ok := r.Find(f.Msg)
			if (f.Want == nil) == ok || (ok && got != *f.Want) {
				t.Errorf("%s: Find(%v) = %q, %v", c.Name, f.Msg, got, ok)
			}
		}
		for _, f := range c.Exact {
			got, ok := r.FindExact(f.Msg)
			if (f.Want == nil) == ok || (ok && got != *f.Want) {
				t.Errorf("%s: FindExact(%v) = %q, %v", c.Name, f.Msg, got, ok)
			}
		}
	}
}
