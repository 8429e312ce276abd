package services

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

type dmLogin struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type dmPlain struct {
	User   string
	Age    int
	Score  float64
	OK     bool
	Small  int8
	U      uint16
	Big    int64  `json:"big,omitempty"`
	Skip   string `json:"-"`
	hidden string
}

type dmQuoted struct {
	N int `json:"n,string"`
}

type dmNested struct {
	Inner dmLogin
}

type dmTime struct {
	At time.Time
}

type dmText string

func (t *dmText) UnmarshalText(b []byte) error { *t = dmText("text:" + string(b)); return nil }

type dmWithText struct {
	Name dmText
}

type dmClash struct {
	A string `json:"name"`
	B string `json:"Name"`
}

// decodeMap gives what the JSON round trip gives, or declines and leaves
// the value untouched: for each case, the struct decodeMap fills must
// equal the one encoding/json fills from the JSON of the map.
func TestDecodeMapAgreesWithJSON(t *testing.T) {
	s := &Service{}
	types := []reflect.Type{
		reflect.TypeFor[dmLogin](), reflect.TypeFor[dmPlain](), reflect.TypeFor[dmQuoted](),
		reflect.TypeFor[dmNested](), reflect.TypeFor[dmTime](), reflect.TypeFor[dmWithText](), reflect.TypeFor[dmClash](),
	}
	type named string
	cases := []map[string]any{
		{"user": "asd", "password": "123", "role": "bench", "cmd": "login"},
		{"User": "a", "Age": 3, "Score": 1.5, "OK": true, "Small": int8(-4), "U": uint16(9)},
		{"user": "lower", "age": 3.0, "score": 7, "ok": false},
		{"USER": "upper", "AGE": int64(-7), "big": uint64(1 << 40)},
		{"User": "one", "user": "two"},
		{"uſer": "long s"}, {"\u212aey": 1}, {"Üser": "umlaut"},
		{"Age": 3.5}, {"Age": 1e16}, {"Age": float64(1 << 53)}, {"Age": math.Copysign(0, -1)},
		{"U": -1}, {"U": 70000}, {"U": 3.0}, {"Small": 300}, {"Small": -129}, {"Small": -128},
		{"Age": "3"}, {"User": 3}, {"OK": "true"}, {"Score": float32(0.1)}, {"Score": uint64(math.MaxUint64)},
		{"Big": uint64(math.MaxUint64)}, {"Big": int64(math.MinInt64)},
		{"User": nil, "Age": nil}, {"User": "bad \xff utf8"}, {"User": named("named")},
		{"other": math.NaN()}, {"other": math.Inf(1)}, {"other": make(chan int)},
		{"other": map[string]any{"deep": []any{1, "x", nil, map[string]any{"y": 2.5}}}},
		{"other": json.Number("12")}, {"Age": json.Number("12")},
		{"n": 5}, {"n": "5"}, {"Inner": map[string]any{"user": "x"}}, {"At": "2026-01-02T03:04:05Z"},
		{"Name": "x"}, {"name": "lower", "Name": "upper"}, {"NAME": "folded"},
		{"Skip": "no", "hidden": "no", "-": "dash"},
		{},
	}
	for _, typ := range types {
		for i, data := range cases {
			checkDecodeMap(t, s, typ, data, fmt.Sprintf("%s case %d %v", typ.Name(), i, data))
		}
	}
	// Random maps over the names and values above.
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"User", "user", "USER", "Age", "age", "Score", "OK", "ok", "Small", "U", "big", "Big", "Skip", "x", "role"}
	values := []any{"s", "", 0, -1, 1, 127, 128, -129, 3.0, 2.5, -0.5, 1e300, true, false, nil, int8(5), uint(7),
		uint64(1 << 63), int64(1 << 62), float64(1 << 60), []any{1}, map[string]any{}, "é"}
	for n := 0; n < 5000; n++ {
		data := map[string]any{}
		for k := r.IntN(5); k >= 0; k-- {
			data[keys[r.IntN(len(keys))]] = values[r.IntN(len(values))]
		}
		checkDecodeMap(t, s, reflect.TypeFor[dmPlain](), data, fmt.Sprintf("random %d %v", n, data))
	}
}

func checkDecodeMap(t *testing.T, s *Service, typ reflect.Type, data map[string]any, what string) {
	t.Helper()
	fast := reflect.New(typ)
	took := s.decodeMap(data, fast.Interface())
	if !took {
		if !fast.Elem().IsZero() {
			t.Errorf("%s: declined but changed the value to %+v", what, fast.Elem().Interface())
		}
		return
	}
	slow := reflect.New(typ)
	b, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(b, slow.Interface())
	}
	if err != nil {
		t.Errorf("%s: decodeMap took it, the round trip fails: %v", what, err)
		return
	}
	if !reflect.DeepEqual(fast.Elem().Interface(), slow.Elem().Interface()) ||
		(typ == reflect.TypeFor[dmPlain]() && math.Signbit(fast.Elem().FieldByName("Score").Float()) != math.Signbit(slow.Elem().FieldByName("Score").Float())) {
		t.Errorf("%s: decodeMap gives %+v, JSON %+v", what, fast.Elem().Interface(), slow.Elem().Interface())
	}
}

// Decode takes the shortcut only for an act that stayed in-process (no
// JSON body), and gives the same as the JSON for the message in any case.
func TestDecodeShortcutOnlyWithoutABody(t *testing.T) {
	s := &Service{}
	data := map[string]any{"user": "asd", "password": "123"}
	local := &Message{Data: data, svc: s}
	var a dmLogin
	if err := local.Decode(&a); err != nil || a != (dmLogin{"asd", "123"}) {
		t.Fatalf("local: %+v, %v", a, err)
	}
	if local.raw != nil {
		t.Error("the shortcut encoded the message anyway")
	}
	// A message from the broker decodes its body, which is what counts.
	remote := &Message{Data: data, svc: s, raw: []byte(`{"user":"from the body"}`), hasBody: true}
	var b dmLogin
	if err := remote.Decode(&b); err != nil || b.User != "from the body" {
		t.Fatalf("remote: %+v, %v", b, err)
	}
	// An error of the round trip stays the round trip's.
	bad := &Message{Data: map[string]any{"user": 3}, svc: s}
	var c dmLogin
	if err := bad.Decode(&c); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "user: want a string, got number") {
		t.Fatalf("bad input: %v", err)
	}
}
