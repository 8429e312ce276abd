package patterns

import (
	"hash/maphash"
	"strings"
)

// source is what a find walks against: a message map, or a pattern used as
// a message.
type source struct {
	m         map[string]any
	pairs     []Pair
	isPattern bool
}

// get returns the string form of the value for key (see scalarString).
func (s *source) get(key string, buf []byte) (string, []byte, bool) {
	if s.isPattern {
		lo, hi := 0, len(s.pairs)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if s.pairs[mid].Key < key {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo < len(s.pairs) && s.pairs[lo].Key == key {
			return s.pairs[lo].Value, nil, true
		}
		return "", nil, false
	}
	v, ok := s.m[key]
	if !ok {
		return "", nil, false
	}
	return scalarString(v, buf)
}

// count returns the number of keys that take part in matching: for a
// message, the keys not ending in '$' whose values are scalars.
func (s *source) count() int {
	if s.isPattern {
		return len(s.pairs)
	}
	var buf [32]byte
	n := 0
	for k, v := range s.m {
		if strings.HasSuffix(k, "$") {
			continue
		}
		if _, _, ok := scalarString(v, buf[:0]); ok {
			n++
		}
	}
	return n
}

type walkMode uint8

const (
	modeFind walkMode = iota
	modeExact
	modeCollect
)

// lookup returns the child of n for the message value (s or b), and the
// glob that matched if it was a glob child.
func (n *node[T]) lookup(seed maphash.Seed, s string, b []byte) (*node[T], *glob) {
	if n.vals.n > 0 {
		var c *node[T]
		if b != nil {
			c = n.vals.getBytes(hashBytes(seed, b), b)
		} else {
			c = n.vals.get(hashString(seed, s), s)
		}
		if c != nil {
			return c, nil
		}
	}
	if n.globs != nil {
		gs := *n.globs
		for i := range gs {
			if gs[i].g.matchValue(s, b) {
				return gs[i].next, &gs[i].g
			}
		}
	}
	return nil, nil
}

// walk is Patrun's find, as DESIGN.md's appendix states it. In modeExact it
// returns an entry only if it sits at the final node and every key of the
// message was matched; in modeCollect it appends every entry met to coll
// and pops the stack until it is empty. ex, if not nil, records the steps.
func (r *Router[T]) walk(src *source, mode walkMode, coll *[]T, ex *Explanation) *node[T] {
	var stackBuf [16]*node[T]
	stack := stackBuf[:0]
	var keysBuf [16]string
	matched := keysBuf[:0]
	var buf [32]byte

	n := &r.root
	var found *node[T] // the node of the current answer
	if n.entry != nil {
		found = n
		if coll != nil {
			*coll = append(*coll, n.val)
		}
	}
	for n != nil {
		var next *node[T]
		if n.key != "" {
			s, b, ok := src.get(n.key, buf[:0])
			var child *node[T]
			var g *glob
			if ok {
				child, g = n.lookup(r.seed, s, b)
			}
			if child != nil {
				if mode == modeExact {
					matched = addKey(matched, n.key)
				}
				if n.skip != nil {
					stack = append(stack, n.skip)
				}
				if child.entry != nil {
					found = child
					if coll != nil {
						*coll = append(*coll, found.val)
					}
				} else if mode == modeExact {
					found = nil
				}
				next = child
			} else {
				next = n.skip
			}
			if ex != nil {
				st := Step{Key: n.key, Present: ok, Take: TakeSkip}
				if b != nil {
					st.Value = string(b)
				} else {
					st.Value = s
				}
				switch {
				case g != nil:
					st.Take, st.Glob = TakeGlob, g.src
				case child != nil:
					st.Take = TakeExact
				}
				if child != nil && child.entry != nil {
					st.Pattern, st.HasAction = child.entry.pat, true
				}
				ex.Steps = append(ex.Steps, st)
			}
		}
		n = next
		if n == nil && len(stack) > 0 && (found == nil || mode == modeCollect) {
			n = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if ex != nil {
				ex.Steps = append(ex.Steps, Step{Key: n.key, Take: TakeBacktrack})
			}
		}
	}
	if mode == modeExact && len(matched) != src.count() {
		return nil
	}
	return found
}

func addKey(keys []string, k string) []string {
	for _, x := range keys {
		if x == k {
			return keys
		}
	}
	return append(keys, k)
}

// Find returns the value for msg by Patrun's walk: keys in sorted order,
// committing at each key to a message value that matches (exact before
// glob) before it considers patterns that leave the key out; the last value
// met on the committed path wins, and skipped branches are tried only when
// nothing has matched at all. Only top-level scalar values take part: keys
// ending in '$', nil and nested values never match; numbers and bools
// compare as the strings JavaScript would print. Find does not allocate.
func (r *Router[T]) Find(msg map[string]any) (T, bool) {
	src := source{m: msg}
	r.mu.RLock()
	e := r.walk(&src, modeFind, nil, nil)
	var v T
	if e != nil {
		v = e.val
	}
	r.mu.RUnlock()
	return v, e != nil
}

// FindExact returns the value of the pattern that holds exactly the
// message's matching pairs: the walk's final node must carry a value and
// every key of the message that takes part in matching (not ending in '$',
// scalar value) must have been matched. Globs still match as globs.
func (r *Router[T]) FindExact(msg map[string]any) (T, bool) {
	src := source{m: msg}
	r.mu.RLock()
	e := r.walk(&src, modeExact, nil, nil)
	var v T
	if e != nil {
		v = e.val
	}
	r.mu.RUnlock()
	return v, e != nil
}

// FindPattern is Find with the pattern p as the message: its values are
// matched as plain strings (a glob in p matches only globs that match its
// text). It is how priors and catalog lookups resolve a pattern.
func (r *Router[T]) FindPattern(p Pattern) (T, bool) {
	src := source{pairs: p.pairs, isPattern: true}
	r.mu.RLock()
	e := r.walk(&src, modeFind, nil, nil)
	var v T
	if e != nil {
		v = e.val
	}
	r.mu.RUnlock()
	return v, e != nil
}

// FindEntry is Find returning the winning pattern too.
func (r *Router[T]) FindEntry(msg map[string]any) (Entry[T], bool) {
	src := source{m: msg}
	r.mu.RLock()
	e := r.walk(&src, modeFind, nil, nil)
	var out Entry[T]
	if e != nil {
		out = Entry[T]{Pattern: e.entry.pat, Value: e.val}
	}
	r.mu.RUnlock()
	return out, e != nil
}

// Collect returns the values of every pattern the walk meets for msg, in
// the order met: the empty pattern's first, then along the committed path,
// then along each skipped branch, popping until none is left (Patrun's
// collect). Subscribers that want every match use it.
func (r *Router[T]) Collect(msg map[string]any) []T {
	src := source{m: msg}
	var out []T
	r.mu.RLock()
	r.walk(&src, modeCollect, &out, nil)
	r.mu.RUnlock()
	return out
}
