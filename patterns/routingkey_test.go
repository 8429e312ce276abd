package patterns

import (
	"errors"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		pat  Pattern
		want string
	}{
		{"empty pattern", Pattern{}, ""},
		{"design example", MustParse("role:user,cmd:login"), "cmd:login.role:user"},
		{"number", MustParse("a:1.5"), "a:1%2E5"},
		{"dot", MustParse(`host:"a.b"`), "host:a%2Eb"},
		{"star and hash", MustParse(`a:"x*#"`), "a:x%2A%23"},
		{"percent", MustParse(`a:"50%"`), "a:50%25"},
		{"colon in value", MustParse(`a:"x:y"`), "a:x%3Ay"},
		{"colon in key", MustParse(`"a:b":1`), "a%3Ab:1"},
		{"space", MustParse(`a:"x y"`), "a:x%20y"},
		{"unicode", MustParse(`a:é`), "a:%C3%A9"},
		{"control", MustParse(`a:"\u0001"`), "a:%01"},
		{"empty value", MustParse(`a:""`), "a:"},
		{"question mark stays", MustParse(`a:"x?"`), "a:x?"},
		{"punctuation stays", MustParse(`a:"-_/+=!$&()~"`), "a:-_/+=!$&()~"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Key(tt.pat)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Key(%s) = %q, want %q", tt.pat, got, tt.want)
			}
			back, err := ParseKey(got)
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", got, err)
			}
			if !back.Equal(tt.pat) {
				t.Errorf("ParseKey(%q) = %s, want %s", got, back, tt.pat)
			}
		})
	}
}

func TestKeyTooLong(t *testing.T) {
	p := MustParse("a:" + strings.Repeat("x", 253)) // "a:" + 253 = 255 bytes
	if k, err := Key(p); err != nil || len(k) != 255 {
		t.Fatalf("255-byte key: %d, %v", len(k), err)
	}
	p = MustParse("a:" + strings.Repeat("x", 254))
	if _, err := Key(p); !errors.Is(err, ErrKeyTooLong) {
		t.Errorf("256-byte key: err = %v", err)
	}
	// Escapes count: 100 dots are 300 bytes.
	p = MustParse(`a:"` + strings.Repeat(".", 100) + `"`)
	if _, err := Key(p); !errors.Is(err, ErrKeyTooLong) {
		t.Errorf("escaped key: err = %v", err)
	}
	if _, err := ParseKey(strings.Repeat("a", 256)); !errors.Is(err, ErrKeyTooLong) {
		t.Errorf("ParseKey of 256 bytes: err = %v", err)
	}
	if _, err := BindingKey(MustParse("a:" + strings.Repeat("x", 252))); !errors.Is(err, ErrKeyTooLong) {
		t.Errorf("BindingKey: err = %v", err)
	}
}

func TestParseKeyErrors(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"no colon", "abc"},
		{"two colons", "a:b:c"},
		{"empty word", "a:1..b:2"},
		{"trailing dot", "a:1."},
		{"raw star", "a:*"},
		{"raw hash", "#.a:1"},
		{"raw space", "a:x y"},
		{"raw unicode", "a:é"},
		{"truncated escape", "a:x%2"},
		{"bad escape", "a:x%zz"},
		{"empty key", ":1"},
		{"dollar key", "tx$:1"},
		{"duplicate key", "a:1.a:2"},
		{"invalid utf8", "a:%FF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := ParseKey(tt.key); !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("ParseKey(%q) = %s, %v; want ErrInvalidPattern", tt.key, p, err)
			}
		})
	}
	// Lenient: lower-case hex and any order of words.
	p, err := ParseKey("role:user.cmd:a%2eb")
	if err != nil || p.String() != `cmd:a.b,role:user` {
		t.Errorf("lenient ParseKey = %s, %v", p, err)
	}
}

func TestBindingKey(t *testing.T) {
	tests := []struct {
		name string
		pat  string
		want string
	}{
		{"empty pattern", "", "#"},
		{"design example", "role:user,cmd:login", "#.cmd:login.#.role:user.#"},
		{"one pair", "role:user", "#.role:user.#"},
		{"glob pairs left out", "role:user,cmd:log*", "#.role:user.#"},
		{"only globs", "cmd:*", "#"},
		{"escaped", `a:"x.y"`, "#.a:x%2Ey.#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BindingKey(MustParse(tt.pat))
			if err != nil || got != tt.want {
				t.Errorf("BindingKey(%s) = %q, %v; want %q", tt.pat, got, err, tt.want)
			}
		})
	}
}

// TestBindingKeyTopicMatch checks that a binding key matches, by AMQP topic
// rules, the routing key of every pattern that holds its pairs.
func TestBindingKeyTopicMatch(t *testing.T) {
	tests := []struct {
		sub, pub string
		want     bool
	}{
		{"role:user", "role:user", true},
		{"role:user", "cmd:login,role:user", true},
		{"role:user", "cmd:login,role:user,zone:eu", true},
		{"role:user,cmd:login", "cmd:login,id:1,role:user", true},
		{"role:user,cmd:login", "cmd:logout,role:user", false},
		{"role:user", "role:users", false},
		{"", "a:1", true},
		{"a:1", "", false},
	}
	for _, tt := range tests {
		bk, _ := BindingKey(MustParse(tt.sub))
		rk, _ := Key(MustParse(tt.pub))
		if got := topicMatch(bk, rk); got != tt.want {
			t.Errorf("binding %q on key %q = %v, want %v", bk, rk, got, tt.want)
		}
	}
}

// topicMatch is AMQP topic matching: '*' one word, '#' zero or more words.
func topicMatch(binding, key string) bool {
	var kw []string
	if key != "" {
		kw = strings.Split(key, ".")
	}
	return topicWords(strings.Split(binding, "."), kw)
}

func topicWords(b, k []string) bool {
	if len(b) == 0 {
		return len(k) == 0
	}
	switch b[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if topicWords(b[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && topicWords(b[1:], k[1:])
	}
	return len(k) > 0 && b[0] == k[0] && topicWords(b[1:], k[1:])
}
