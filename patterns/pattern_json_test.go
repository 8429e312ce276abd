package patterns

import (
	"encoding/json"
	"testing"
)

func TestPairJSON(t *testing.T) {
	tests := []struct {
		value string
		want  any
	}{
		{"1", json.Number("1")},
		{"-2.5", json.Number("-2.5")},
		{"1e+21", json.Number("1e+21")},
		{"true", true},
		{"false", false},
		{"007", "007"},
		{"1.0", "1.0"},
		{"Infinity", "Infinity"},
		{"null", "null"},
		{"login", "login"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := (Pair{Key: "k", Value: tt.value}).JSON(); got != tt.want {
			t.Errorf("Pair{Value: %q}.JSON() = %#v, want %#v", tt.value, got, tt.want)
		}
	}
}

func TestPairJSONMatchesItself(t *testing.T) {
	p := MustParse("a:1,b:true,c:x,d:'1.0'")
	msg := map[string]any{}
	for _, pr := range p.Pairs() {
		msg[pr.Key] = pr.JSON()
	}
	if !p.Match(msg) {
		t.Errorf("%s does not match its own typed message %v", p, msg)
	}
}
