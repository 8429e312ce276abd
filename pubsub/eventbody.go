package pubsub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/patbus/patbus/patterns"
)

// maxCachedPatterns bounds the emit patterns a PubSub keeps parsed. A
// program emits a handful of patterns; one that makes a pattern per event
// (an id in it) empties the cache when it is full, which bounds memory and
// costs only the parsing the cache would have saved.
const maxCachedPatterns = 1024

// emitPattern is what Emit needs of a pattern, worked out once per
// pattern string: the canonical form (the header patbus-pattern), the
// routing key, and the pairs as JSON to add to each event's body.
type emitPattern struct {
	canon string
	key   string
	pairs []emitPair
	// bare is the body of an event without data: the pairs alone.
	bare []byte
}

// emitPair is one pair of an emit pattern.
type emitPair struct {
	key string
	// member is `"key":value`, the pair as a JSON object member, the
	// value typed as Seneca's jsonic types it (patterns.Pair.JSON).
	member []byte
	// alone is the one-pair pattern that checks a value the data holds
	// under key, as Patrun compares (as strings).
	alone patterns.Pattern
	value string
}

// patternCache holds the parsed emit patterns of one PubSub.
type patternCache struct {
	mu sync.RWMutex
	m  map[string]*emitPattern
}

// get returns the emit pattern of s, parsing it on first use. Patterns
// that fail are not kept.
func (c *patternCache) get(s string) (*emitPattern, error) {
	c.mu.RLock()
	ep := c.m[s]
	c.mu.RUnlock()
	if ep != nil {
		return ep, nil
	}
	ep, err := newEmitPattern(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedPatterns {
		c.m = make(map[string]*emitPattern)
	}
	c.m[s] = ep
	c.mu.Unlock()
	return ep, nil
}

func newEmitPattern(s string) (*emitPattern, error) {
	pat, err := patterns.Parse(s)
	if err != nil {
		return nil, err
	}
	if pat.HasGlob() {
		return nil, fmt.Errorf("%s: %w: an event's pattern cannot hold globs", pat, patterns.ErrInvalidPattern)
	}
	key, err := patterns.Key(pat)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pat, err)
	}
	ep := &emitPattern{canon: pat.String(), key: key}
	bare := []byte{'{'}
	for i, pr := range pat.Pairs() {
		alone, err := patterns.FromPairs(pr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pat, err)
		}
		k, err := json.Marshal(pr.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pat, err)
		}
		v, err := json.Marshal(pr.JSON())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pat, err)
		}
		member := append(append(k, ':'), v...)
		ep.pairs = append(ep.pairs, emitPair{key: pr.Key, member: member, alone: alone, value: pr.Value})
		if i > 0 {
			bare = append(bare, ',')
		}
		bare = append(bare, member...)
	}
	ep.bare = append(bare, '}')
	return ep, nil
}

// body returns the body of an event of this pattern with data: data's
// JSON object with the pattern's pairs added. A pair that data holds with
// the same value (compared as strings, as Patrun compares) is kept; a
// different value is an error wrapping ErrInvalidInput. The object is
// written out as it came, the missing pairs appended: nothing is decoded
// into maps or encoded twice.
func (ep *emitPattern) body(data any) ([]byte, error) {
	if data == nil {
		return ep.bare, nil
	}
	raw, err := encode(data)
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return ep.bare, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("%w: an event's data must be a JSON object, not %.20s", ErrInvalidInput, raw)
	}
	var buf [16]bool
	found := buf[:0]
	for range ep.pairs {
		found = append(found, false)
	}
	members := 0
	err = eachMember(raw, func(key, value []byte) error {
		members++
		for i := range ep.pairs {
			if pr := &ep.pairs[i]; pr.key == string(key) {
				found[i] = true
				return pr.check(value)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n := len(raw)
	for i, pr := range ep.pairs {
		if !found[i] {
			n += 1 + len(pr.member)
		}
	}
	if n == len(raw) {
		return raw, nil
	}
	out := make([]byte, 0, n)
	out = append(out, raw[:len(raw)-1]...) // without its closing brace
	for i := range ep.pairs {
		if found[i] {
			continue
		}
		if members > 0 {
			out = append(out, ',')
		}
		members++
		out = append(out, ep.pairs[i].member...)
	}
	return append(out, '}'), nil
}

// check reports whether v, data's value under the pair's key, is the
// pair's value as Patrun compares it.
func (pr *emitPair) check(v []byte) error {
	if n := len(pr.member) - len(v); n > 0 && pr.member[n-1] == ':' && bytes.Equal(v, pr.member[n:]) {
		return nil // written as the pattern writes it
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err == nil && pr.alone.Match(map[string]any{pr.key: x}) {
		return nil
	}
	return fmt.Errorf("%w: data holds %s=%s, the pattern %s:%s", ErrInvalidInput, pr.key, v, pr.key, pr.value)
}

// eachMember calls f with the key (unquoted) and the raw value of each
// member of obj, a valid JSON object, in order, and stops at the first
// error f returns.
func eachMember(obj []byte, f func(key, value []byte) error) error {
	i := skipSpace(obj, 1) // past '{'
	for i < len(obj) && obj[i] == '"' {
		end := skipString(obj, i)
		key := obj[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(obj[i:end], &k); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidInput, err)
			}
			key = []byte(k)
		}
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // past ':'
		vend := skipValue(obj, i)
		if err := f(key, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value that starts at i.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			i = skipString(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

// encode turns data into JSON: []byte and json.RawMessage as they are
// (they must be valid JSON; the broker copies what it publishes, so the
// caller may reuse them once a publish returns), everything else with
// encoding/json.
func encode(data any) ([]byte, error) {
	switch v := data.(type) {
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: raw message is not valid JSON", ErrInvalidInput)
		}
		return v, nil
	case []byte:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: []byte is not valid JSON", ErrInvalidInput)
		}
		return v, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return b, nil
}
