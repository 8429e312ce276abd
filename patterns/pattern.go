package patterns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Every error this package returns wraps one of them, so
// callers branch with errors.Is.
var (
	// ErrInvalidPattern: a pattern (or routing key) could not be parsed or
	// built: bad syntax, a duplicate key, an empty key, a key ending in '$',
	// invalid UTF-8, or a value that is nil or nested. Syntax errors are a
	// *SyntaxError that also names the byte offset.
	ErrInvalidPattern = errors.New("patterns: invalid pattern")
	// ErrKeyTooLong: the routing key (or binding key) of a pattern would be
	// longer than the 255 bytes AMQP allows.
	ErrKeyTooLong = errors.New("patterns: routing key longer than 255 bytes")
)

// SyntaxError is the error Parse returns for malformed input. It wraps
// ErrInvalidPattern.
type SyntaxError struct {
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	// Msg says what was found and what was expected, e.g.
	// `missing value for "cmd"`.
	Msg string
}

// Error implements error: "patterns: invalid pattern: <Msg> at offset <Offset>".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s: %s at offset %d", ErrInvalidPattern.Error(), e.Msg, e.Offset)
}

// Unwrap returns ErrInvalidPattern.
func (e *SyntaxError) Unwrap() error { return ErrInvalidPattern }

// Pair is one key:value pair of a pattern. Value is the string form of the
// value: "1", "true", "x", or a glob such as "x*".
type Pair struct{ Key, Value string }

// Pattern is an immutable set of key:value pairs, kept sorted by key (byte
// order). The zero value is the empty pattern {}, which matches every
// message. Patterns are values: copy them freely and use them from any
// goroutine; no method changes the receiver. Patterns are not comparable
// with ==: use Equal, or String as a map key.
type Pattern struct {
	pairs []Pair // sorted by Key, keys unique; never mutated after construction
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPattern}, args...)...)
}

// checkKey reports whether k may be a pattern key.
func checkKey(k string) error {
	switch {
	case k == "":
		return invalidf("empty key")
	case !utf8.ValidString(k):
		return invalidf("key %q is not valid UTF-8", k)
	case strings.HasSuffix(k, "$"):
		return invalidf("key %q ends in '$' (reserved for metadata)", k)
	}
	return nil
}

func checkValue(k, v string) error {
	if !utf8.ValidString(v) {
		return invalidf("value %q for key %q is not valid UTF-8", v, k)
	}
	return nil
}

// FromPairs builds a pattern from pairs given in any order. Values are taken
// as their string form verbatim (a value holding '*' or '?' is a glob). It
// fails, wrapping ErrInvalidPattern, on an empty key, a key ending in '$',
// invalid UTF-8 or a duplicate key.
func FromPairs(pairs ...Pair) (Pattern, error) {
	if len(pairs) == 0 {
		return Pattern{}, nil
	}
	ps := make([]Pair, len(pairs))
	copy(ps, pairs)
	for _, p := range ps {
		if err := checkKey(p.Key); err != nil {
			return Pattern{}, err
		}
		if err := checkValue(p.Key, p.Value); err != nil {
			return Pattern{}, err
		}
	}
	sortPairs(ps)
	for i := 1; i < len(ps); i++ {
		if ps[i].Key == ps[i-1].Key {
			return Pattern{}, invalidf("duplicate key %q", ps[i].Key)
		}
	}
	return Pattern{pairs: ps}, nil
}

// FromMap builds a pattern from a map, as built in code or decoded from
// JSON. Values may be strings, bools, integers of any size, floats and
// json.Number (and named types of those kinds); numbers take the string
// form JavaScript would print (1.0 -> "1", 1e21 -> "1e+21"). A nil, nested
// (map, slice, struct) or otherwise unsupported value is an error wrapping
// ErrInvalidPattern, as are the key errors of FromPairs.
func FromMap(m map[string]any) (Pattern, error) {
	if len(m) == 0 {
		return Pattern{}, nil
	}
	ps := make([]Pair, 0, len(m))
	var buf [32]byte
	for k, v := range m {
		if v == nil {
			return Pattern{}, invalidf("nil value for key %q", k)
		}
		vs, b, ok := scalarString(v, buf[:0])
		if !ok {
			return Pattern{}, invalidf("value of type %T for key %q is not a string, bool or number", v, k)
		}
		if b != nil {
			vs = string(b)
		}
		ps = append(ps, Pair{Key: k, Value: vs})
	}
	return FromPairs(ps...)
}

// MustParse is Parse for patterns known to be valid, in tests and examples.
// It panics if s is not a valid pattern; never use it on input.
func MustParse(s string) Pattern {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the canonical form: pairs sorted by key, "cmd:login,role:user",
// with keys and values quoted where needed so that Parse(p.String()) equals p.
// The empty pattern is "".
func (p Pattern) String() string {
	if len(p.pairs) == 0 {
		return ""
	}
	var arr [128]byte
	b := arr[:0]
	for i, pr := range p.pairs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendToken(b, pr.Key, false)
		b = append(b, ':')
		b = appendToken(b, pr.Value, true)
	}
	return string(b)
}

// Pairs returns a copy of the pairs, sorted by key.
func (p Pattern) Pairs() []Pair {
	if len(p.pairs) == 0 {
		return nil
	}
	out := make([]Pair, len(p.pairs))
	copy(out, p.pairs)
	return out
}

// Len returns the number of pairs.
func (p Pattern) Len() int { return len(p.pairs) }

// sortPairs sorts pairs by key without allocating.
func sortPairs(ps []Pair) {
	slices.SortFunc(ps, func(a, b Pair) int { return strings.Compare(a.Key, b.Key) })
}

// index returns the position of key in the sorted pairs, or -1.
func (p Pattern) index(key string) int {
	i := sort.Search(len(p.pairs), func(i int) bool { return p.pairs[i].Key >= key })
	if i < len(p.pairs) && p.pairs[i].Key == key {
		return i
	}
	return -1
}

// Get returns the value of key and whether the pattern has it.
func (p Pattern) Get(key string) (string, bool) {
	if i := p.index(key); i >= 0 {
		return p.pairs[i].Value, true
	}
	return "", false
}

// With returns a new pattern with key set to value (replacing any value it
// had). If key or value is not valid (empty key, key ending in '$', invalid
// UTF-8), With returns p unchanged; use FromPairs to get the error.
func (p Pattern) With(key, value string) Pattern {
	if checkKey(key) != nil || checkValue(key, value) != nil {
		return p
	}
	i := sort.Search(len(p.pairs), func(i int) bool { return p.pairs[i].Key >= key })
	if i < len(p.pairs) && p.pairs[i].Key == key {
		ps := make([]Pair, len(p.pairs))
		copy(ps, p.pairs)
		ps[i].Value = value
		return Pattern{pairs: ps}
	}
	ps := make([]Pair, 0, len(p.pairs)+1)
	ps = append(ps, p.pairs[:i]...)
	ps = append(ps, Pair{Key: key, Value: value})
	ps = append(ps, p.pairs[i:]...)
	return Pattern{pairs: ps}
}

// Without returns a new pattern without key (p itself if it has no key).
func (p Pattern) Without(key string) Pattern {
	i := p.index(key)
	if i < 0 {
		return p
	}
	if len(p.pairs) == 1 {
		return Pattern{}
	}
	ps := make([]Pair, 0, len(p.pairs)-1)
	ps = append(ps, p.pairs[:i]...)
	ps = append(ps, p.pairs[i+1:]...)
	return Pattern{pairs: ps}
}

// Equal reports whether p and q hold the same pairs.
func (p Pattern) Equal(q Pattern) bool {
	if len(p.pairs) != len(q.pairs) {
		return false
	}
	for i := range p.pairs {
		if p.pairs[i] != q.pairs[i] {
			return false
		}
	}
	return true
}

// Contains reports whether every pair of q is also a pair of p (same key,
// same value string; globs compare as text).
func (p Pattern) Contains(q Pattern) bool {
	for _, pr := range q.pairs {
		if v, ok := p.Get(pr.Key); !ok || v != pr.Value {
			return false
		}
	}
	return true
}

// HasGlob reports whether any value is a glob (holds '*' or '?').
func (p Pattern) HasGlob() bool {
	for _, pr := range p.pairs {
		if isGlob(pr.Value) {
			return true
		}
	}
	return false
}

// Exact returns the pattern made of the pairs whose values are not globs.
func (p Pattern) Exact() Pattern {
	n := 0
	for _, pr := range p.pairs {
		if !isGlob(pr.Value) {
			n++
		}
	}
	if n == len(p.pairs) {
		return p
	}
	if n == 0 {
		return Pattern{}
	}
	ps := make([]Pair, 0, n)
	for _, pr := range p.pairs {
		if !isGlob(pr.Value) {
			ps = append(ps, pr)
		}
	}
	return Pattern{pairs: ps}
}

// Match reports whether every pair of p matches msg with the router's value
// rules: the message value in its string form equals the pair's value, or
// matches it as a glob. Keys ending in '$', nil and nested values never
// match (see the package documentation). The empty pattern matches every
// message. Match does not allocate for string, bool and number values
// (unless a glob is longer than 32 characters).
func (p Pattern) Match(msg map[string]any) bool {
	var buf [32]byte
	for _, pr := range p.pairs {
		v, ok := msg[pr.Key]
		if !ok {
			return false
		}
		s, b, ok := scalarString(v, buf[:0])
		if !ok {
			return false
		}
		if isGlob(pr.Value) {
			var tb [32]globTok
			g := glob{src: pr.Value, toks: appendGlob(tb[:0], pr.Value)}
			if !g.matchValue(s, b) {
				return false
			}
			continue
		}
		if b != nil {
			if string(b) != pr.Value {
				return false
			}
		} else if s != pr.Value {
			return false
		}
	}
	return true
}

// Map returns the pattern as a map of string values.
func (p Pattern) Map() map[string]any {
	m := make(map[string]any, len(p.pairs))
	for _, pr := range p.pairs {
		m[pr.Key] = pr.Value
	}
	return m
}

// MarshalJSON encodes the pattern as a JSON object of string values in key
// order: {"cmd":"login","role":"user"}.
func (p Pattern) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, pr := range p.pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(pr.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(pr.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes a JSON object of scalar values (as FromMap takes
// them) or a JSON string holding the text form (as Parse takes it). JSON
// null leaves p unchanged.
func (p *Pattern) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return invalidf("%v", err)
		}
		q, err := Parse(s)
		if err != nil {
			return err
		}
		*p = q
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return invalidf("%v", err)
	}
	q, err := FromMap(m)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// MarshalText returns the canonical string form (String).
func (p Pattern) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses the text form (Parse).
func (p *Pattern) UnmarshalText(text []byte) error {
	q, err := Parse(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
