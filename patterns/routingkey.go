package patterns

import (
	"fmt"
	"strings"
)

// MaxKeyLen is the longest routing key AMQP allows, in bytes.
const MaxKeyLen = 255

// mustEscape reports whether byte c is percent-encoded in a routing key
// word: '.', '*', '#' (AMQP topic syntax), '%' (the escape itself), ':' (the
// separator of key and value) and everything outside printable ASCII,
// space included (0x21-0x7E stay as they are otherwise).
func mustEscape(c byte) bool {
	switch c {
	case '.', '*', '#', '%', ':':
		return true
	}
	return c <= ' ' || c >= 0x7f
}

const upperHex = "0123456789ABCDEF"

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEscape(c) {
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return b
}

// Key returns the routing key of p: its pairs in sorted key order, each
// written as one word "key:value" and joined by '.'. In keys and values the
// bytes '.', '*', '#', '%', ':' and every byte outside printable ASCII
// (space and UTF-8 included) are percent-encoded with upper-case hex, so a
// word never holds a topic wildcard by accident and splits at its one raw
// ':'. Example: role:user,cmd:login -> "cmd:login.role:user". The empty
// pattern's key is "". A key longer than 255 bytes is an error wrapping
// ErrKeyTooLong. Glob values are encoded like any other text.
func Key(p Pattern) (string, error) {
	if len(p.pairs) == 0 {
		return "", nil
	}
	b := make([]byte, 0, 64)
	for i, pr := range p.pairs {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendEscaped(b, pr.Key)
		b = append(b, ':')
		b = appendEscaped(b, pr.Value)
	}
	if len(b) > MaxKeyLen {
		return "", fmt.Errorf("%w: %d bytes for pattern %s", ErrKeyTooLong, len(b), p.String())
	}
	return string(b), nil
}

// ParseKey is the inverse of Key: it splits key into words at '.', each
// word into key and value at its one raw ':', and decodes %XX escapes (hex
// in either case). A word with no or several raw ':', a raw '*', '#',
// space or non-ASCII byte, a bad escape, or a pattern error (duplicate or
// empty key, key ending in '$', invalid UTF-8) is an error wrapping
// ErrInvalidPattern. Words may come in any order. "" is the empty pattern;
// a key longer than 255 bytes wraps ErrKeyTooLong.
func ParseKey(key string) (Pattern, error) {
	if key == "" {
		return Pattern{}, nil
	}
	if len(key) > MaxKeyLen {
		return Pattern{}, fmt.Errorf("%w: %d bytes", ErrKeyTooLong, len(key))
	}
	words := strings.Split(key, ".")
	pairs := make([]Pair, 0, len(words))
	for _, w := range words {
		colon := strings.IndexByte(w, ':')
		if colon < 0 || strings.IndexByte(w[colon+1:], ':') >= 0 {
			return Pattern{}, invalidf("routing key word %q must hold exactly one ':'", w)
		}
		k, err := unescapeWord(w[:colon])
		if err != nil {
			return Pattern{}, err
		}
		v, err := unescapeWord(w[colon+1:])
		if err != nil {
			return Pattern{}, err
		}
		pairs = append(pairs, Pair{Key: k, Value: v})
	}
	return FromPairs(pairs...)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unescapeWord(s string) (string, error) {
	if !strings.ContainsAny(s, "%*#") {
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] >= 0x7f {
				return "", invalidf("routing key holds raw byte %#x in %q", s[i], s)
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", invalidf("routing key has a truncated escape in %q", s)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", invalidf("routing key has a bad escape %q in %q", s[i:i+3], s)
			}
			b = append(b, hi<<4|lo)
			i += 2
		case c == '*' || c == '#' || c <= ' ' || c >= 0x7f:
			return "", invalidf("routing key holds raw %q in %q (must be percent-encoded)", string(c), s)
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

// BindingKey returns the topic binding of a subscription pattern: the words
// of its exact (non-glob) pairs in sorted order with '#' before, between
// and after them, "#.cmd:login.#.role:user.#", so that every routing key
// whose pattern holds those pairs (and perhaps more) reaches it. Glob pairs
// are left to the subscriber (Pattern.Match). A pattern with no exact pairs
// binds "#". A binding longer than 255 bytes wraps ErrKeyTooLong.
func BindingKey(p Pattern) (string, error) {
	b := make([]byte, 0, 64)
	b = append(b, '#')
	for _, pr := range p.pairs {
		if isGlob(pr.Value) {
			continue
		}
		b = append(b, '.')
		b = appendEscaped(b, pr.Key)
		b = append(b, ':')
		b = appendEscaped(b, pr.Value)
		b = append(b, '.', '#')
	}
	if len(b) > MaxKeyLen {
		return "", fmt.Errorf("%w: binding of %d bytes for pattern %s", ErrKeyTooLong, len(b), p.String())
	}
	return string(b), nil
}
