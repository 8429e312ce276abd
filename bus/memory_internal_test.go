package bus

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestTopicMatch(t *testing.T) {
	// Expected answers checked against RabbitMQ 3.10.
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"#.c", "c", true},
		{"#.c", "a.c", true},
		{"#.c", "a..c", true},
		{"#.c", "a", false},
		{"a.#.c", "a.c", true},
		{"a.#.c", "a..c", true},
		{"a.#.c", "a.b.b.c", true},
		{"a.#.c", "a.b.b.d", false},
		{"*", "c", true},
		{"*", "a", true},
		{"*", "", false},
		{"*", "a.c", false},
		{"#", "", true},
		{"#", "a.b.c", true},
		{"a.#", "a", true},
		{"a.#", "a.c", true},
		{"a.#", "b.a", false},
		{"*.*", "a.c", true},
		{"*.*", "a..c", false},
		{"*.*", "a", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.c", false},
		{"#.#", "", true},
		{"#.*.#", "", false},
		{"#.*.#", "x", true},
		{"", "", true},
		{"", "a", false},
		{"a", "a", true},
		{"a", "b", false},
		{"a.b", "a.b.c", false},
		{"#.a.#.a.#.a.#.a.#", "b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b", false},
	}
	for _, tt := range tests {
		if got := topicMatch(splitTopic(tt.pattern), splitTopic(tt.key)); got != tt.want {
			t.Errorf("topicMatch(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

type namedTable map[string]interface{}

func TestNormalizeHeaders(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 678, time.UTC)
	in := map[string]any{
		"int": 1, "int8": int8(2), "int16": int16(3), "int32": int32(4), "int64": int64(5),
		"uint8": uint8(6), "uint16": uint16(7), "uint32": uint32(8), "uint": uint(9), "uint64": uint64(10),
		"float32": float32(1.5), "float64": 2.5, "string": "s", "bool": true, "nil": nil,
		"bytes": []byte("b"), "time": ts,
		"map":   map[string]any{"n": 1},
		"named": namedTable{"n": int32(2)},
		"list":  []any{1, "x", []any{int16(3)}},
	}
	got, err := normalizeHeaders(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"int": int64(1), "int8": int64(2), "int16": int64(3), "int32": int64(4), "int64": int64(5),
		"uint8": int64(6), "uint16": int64(7), "uint32": int64(8), "uint": int64(9), "uint64": int64(10),
		"float32": 1.5, "float64": 2.5, "string": "s", "bool": true, "nil": nil,
		"bytes": []byte("b"), "time": time.Unix(ts.Unix(), 0),
		"map":   map[string]any{"n": int64(1)},
		"named": map[string]any{"n": int64(2)},
		"list":  []any{int64(1), "x", []any{int64(3)}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalizeHeaders:\n got %#v\nwant %#v", got, want)
	}
	// A deep copy: changing the input changes nothing.
	in["bytes"].([]byte)[0] = 'X'
	in["map"].(map[string]any)["n"] = 99
	if got["bytes"].([]byte)[0] != 'b' || got["map"].(map[string]any)["n"] != int64(1) {
		t.Error("normalizeHeaders result aliases its input")
	}
	if h, err := normalizeHeaders(map[string]any{}); h != nil || err != nil {
		t.Errorf("empty headers: %v, %v", h, err)
	}
	for name, bad := range map[string]any{
		"struct":   struct{}{},
		"overflow": uint64(math.MaxUint64),
		"chan":     make(chan int),
		"nested":   map[string]any{"x": []any{struct{}{}}},
		"intmap":   map[int]any{1: 1},
	} {
		if _, err := normalizeHeaders(map[string]any{name: bad}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("header %s: %v, want ErrInvalidConfig", name, err)
		}
	}
	deep := map[string]any{}
	cur := deep
	for i := 0; i < 100; i++ {
		next := map[string]any{}
		cur["x"] = next
		cur = next
	}
	if _, err := normalizeHeaders(deep); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("headers nested 100 deep: %v, want ErrInvalidConfig", err)
	}
}

func TestMsgDeque(t *testing.T) {
	var d msgDeque
	mk := func(i int) *memMsg { return &memMsg{key: string(rune('a' + i%26))} }
	var want []*memMsg
	for i := 0; i < 3000; i++ {
		m := mk(i)
		d.push(m)
		want = append(want, m)
	}
	for i := 0; i < 2000; i++ {
		if got := d.pop(); got != want[0] {
			t.Fatalf("pop %d: wrong message", i)
		}
		want = want[1:]
	}
	front := []*memMsg{mk(1), mk(2)}
	d.pushFront(front)
	want = append(append([]*memMsg{}, front...), want...)
	removed := d.removeIf(func(m *memMsg) bool { return m.key == "c" })
	var kept []*memMsg
	for _, m := range want {
		if m.key != "c" {
			kept = append(kept, m)
		}
	}
	if len(removed)+len(kept) != len(want) || d.len() != len(kept) {
		t.Fatalf("removeIf: removed %d, left %d, want %d left", len(removed), d.len(), len(kept))
	}
	for i, w := range kept {
		if got := d.pop(); got != w {
			t.Fatalf("after removeIf pop %d: wrong message", i)
		}
	}
	if d.len() != 0 {
		t.Fatalf("len %d after draining", d.len())
	}
}
