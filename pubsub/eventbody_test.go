package pubsub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestEventBody(t *testing.T) {
	ep, err := newEmitPattern("role:user, evt:login, id:5")
	if err != nil {
		t.Fatal(err)
	}
	if ep.canon != "evt:login,id:5,role:user" || ep.key != "evt:login.id:5.role:user" {
		t.Fatalf("canonical %q, key %q", ep.canon, ep.key)
	}
	type withRole struct {
		Role string `json:"role"`
		N    int    `json:"n"`
	}
	want := map[string]any{"evt": "login", "id": float64(5), "role": "user"}
	plus := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range want {
			m[k] = v
		}
		m[k] = v
		return m
	}
	cases := []struct {
		data any
		want map[string]any
	}{
		{nil, want},
		{json.RawMessage("null"), want},
		{[]byte(" {  } "), want},
		{map[string]any{}, want},
		{map[string]any{"n": 1}, plus("n", float64(1))},
		{withRole{Role: "user", N: 2}, plus("n", float64(2))},
		{map[string]any{"id": "5"}, plus("id", "5")}, // the same value as a string
		{json.RawMessage(`{"id":5.0}`), want},        // and as another number literal
		{[]byte("\n{\"a\":[1,{\"b\":\"}\"}]}\n"), plus("a", []any{float64(1), map[string]any{"b": "}"}})},
	}
	for _, c := range cases {
		b, err := ep.body(c.data)
		if err != nil {
			t.Errorf("body(%v): %v", c.data, err)
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("body(%v) = %s, not JSON: %v", c.data, b, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("body(%v) = %s, want %v", c.data, b, c.want)
		}
	}
	for _, bad := range []any{
		map[string]any{"role": "admin"},
		withRole{N: 1}, // role "" contradicts role:user
		"a string",
		[]int{1},
		json.RawMessage(`{"a":`),
		make(chan int),
	} {
		if _, err := ep.body(bad); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("body(%#v): %v, want ErrInvalidInput", bad, err)
		}
	}
}

func TestPatternCacheIsBounded(t *testing.T) {
	var c patternCache
	first, err := c.get("evt:a")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.get("evt:a"); again != first {
		t.Error("a pattern was parsed twice")
	}
	for i := 0; i < 3*maxCachedPatterns; i++ {
		if _, err := c.get(fmt.Sprintf("evt:a,id:%d", i)); err != nil {
			t.Fatal(err)
		}
		if n := len(c.m); n > maxCachedPatterns {
			t.Fatalf("the cache holds %d patterns", n)
		}
	}
	if _, err := c.get("evt:*"); err == nil {
		t.Error("a glob pattern was accepted for emitting")
	}
}

func BenchmarkEventBody(b *testing.B) {
	type login struct {
		UID  int    `json:"uid"`
		Name string `json:"name"`
	}
	var c patternCache
	for _, bc := range []struct {
		name string
		data any
	}{{"nil", nil}, {"struct", login{UID: 2, Name: "asd"}}, {"raw", json.RawMessage(`{"uid":2,"name":"asd"}`)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ep, err := c.get("role:user,evt:login")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ep.body(bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// referenceBody merges the pattern's pairs into data the plain way:
// decode into a map, check and add the pairs, encode.
func referenceBody(ep *emitPattern, raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New("not an object")
	}
	for _, pr := range ep.pairs {
		if v, ok := obj[pr.key]; ok {
			if !pr.alone.Match(map[string]any{pr.key: v}) {
				return nil, errors.New("conflict")
			}
			continue
		}
		vd := json.NewDecoder(bytes.NewReader(pr.member[bytes.IndexByte(pr.member[1:], '"')+3:]))
		vd.UseNumber()
		var v any
		if err := vd.Decode(&v); err != nil {
			return nil, err
		}
		obj[pr.key] = v
	}
	return obj, nil
}

// FuzzEventBody checks the merge, which scans data's object without
// decoding it, against the plain way on objects whose keys are unique.
func FuzzEventBody(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"n":1}`, `{"role":"user"}`, `{"role":"admin"}`, `{"id":5}`, `{"id":"5"}`,
		`{"id":5.0,"x":[1,{"y":"}"}]}`, `{"\u0072ole":"admin"}`, `{"a":"\"}","evt":"login"}`,
		`{"a" : { "b" : [ ] } , "evt" : "login" }`, `{"evt":true}`, `{"x":null,"id":-5e0}`,
	} {
		f.Add(s)
	}
	ep, err := newEmitPattern("role:user,evt:login,id:5")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw := []byte(s)
		var keys map[string]json.RawMessage
		if !json.Valid(raw) || json.Unmarshal(raw, &keys) != nil || keys == nil || hasDuplicateKeys(raw) {
			return
		}
		want, werr := referenceBody(ep, raw)
		b, err := ep.body(raw)
		if (err != nil) != (werr != nil) {
			t.Fatalf("body(%s): %v; the plain way: %v", s, err, werr)
		}
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("body(%s) = %s, not JSON: %v", s, b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("body(%s) = %s, want %v", s, b, want)
		}
	})
}

// hasDuplicateKeys reports whether a top-level key of obj repeats (the
// plain way keeps the last, the merge checks every one).
func hasDuplicateKeys(obj []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(obj))
	seen := map[string]bool{}
	if _, err := dec.Token(); err != nil {
		return true
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return true
		}
		k, _ := tok.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return true
		}
	}
	return false
}
