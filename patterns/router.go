package patterns

import (
	"hash/maphash"
	"sort"
	"sync"
)

// Router maps patterns to values of type T and finds the value for a
// message with Patrun's rules (see the package documentation and
// DESIGN.md's appendix).
//
// A Router is safe for concurrent use: Add and Remove take a write lock,
// the finds, List, Len and Explain a read lock. Find, FindExact and
// FindPattern do not allocate. The zero value is an empty router ready to
// use; NewRouter exists for symmetry. A Router must not be copied after
// first use.
type Router[T any] struct {
	mu     sync.RWMutex
	root   node[T]
	n      int
	seed   maphash.Seed // set by the first Add
	seeded bool
}

// Entry is a pattern and the value added for it.
type Entry[T any] struct {
	Pattern Pattern
	Value   T
}

// node is Patrun's keymap: it tests one key (once claimed), has children by
// exact value and an ordered list of glob children, a skip child for
// patterns that do not constrain key here, and the entry of the pattern
// that ends at this node.
type node[T any] struct {
	// The fields a find reads first come first.
	key   string // "" until a pattern claims the node
	vals  vtable[T]
	vkey  string          // the exact value by which the parent reaches this node
	vinl  [inlineKey]byte // a copy of vkey's first bytes
	globs *[]globChild[T] // in the order they were added; nil if none
	skip  *node[T]
	entry *entry[T] // the pattern that ends here, or nil
	val   T         // entry.val, kept in the node so that Find reads no more memory
}

type globChild[T any] struct {
	g    glob
	next *node[T]
}

type entry[T any] struct {
	pat Pattern
	val T
}

// NewRouter returns an empty router.
func NewRouter[T any]() *Router[T] { return &Router[T]{} }

// child returns the child of n for value v (a glob child if v is a glob),
// creating it if create is set; nil if it does not exist.
func (n *node[T]) child(seed maphash.Seed, v string, create bool) *node[T] {
	if isGlob(v) {
		if n.globs != nil {
			for _, g := range *n.globs {
				if g.g.src == v {
					return g.next
				}
			}
		}
		if !create {
			return nil
		}
		c := &node[T]{}
		if n.globs == nil {
			n.globs = new([]globChild[T])
		}
		*n.globs = append(*n.globs, globChild[T]{g: compileGlob(v), next: c})
		return c
	}
	if n.vals.n == 0 && !create {
		return nil
	}
	h := hashString(seed, v)
	c := n.vals.get(h, v)
	if c == nil && create {
		c = &node[T]{}
		c.setVKey(v)
		n.vals.put(h, c)
	}
	return c
}

// Add adds the pattern p with value v. Adding the same pattern again
// replaces its value. The tree's shape depends on the set of patterns, not
// the order they were added, except for the order of globs on one key:
// among globs on one key, the first added wins.
func (r *Router[T]) Add(p Pattern, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seeded {
		r.seed, r.seeded = maphash.MakeSeed(), true
	}
	n := &r.root
	for i := 0; i < len(p.pairs); {
		k, val := p.pairs[i].Key, p.pairs[i].Value
		switch {
		case n.key == k:
			n = n.child(r.seed, val, true)
			i++
		case n.key == "":
			n.key = k
			n = n.child(r.seed, val, true)
			i++
		case k < n.key:
			// Move this node's test down into a new skip child; the node's
			// own entry stays where it is.
			// (n keeps its vkey: it is still the same child of its parent.)
			n.skip = &node[T]{key: n.key, vals: n.vals, globs: n.globs, skip: n.skip}
			n.key, n.vals, n.globs = k, vtable[T]{}, nil
			n = n.child(r.seed, val, true)
			i++
		default:
			if n.skip == nil {
				n.skip = &node[T]{}
			}
			n = n.skip
		}
	}
	if n.entry == nil {
		r.n++
	}
	n.entry = &entry[T]{pat: p, val: v}
	n.val = v
}

// exactNode returns the node where pattern p ends, or nil.
func (r *Router[T]) exactNode(p Pattern) *node[T] {
	n := &r.root
	for i := 0; i < len(p.pairs) && n != nil; {
		k := p.pairs[i].Key
		switch {
		case n.key == k:
			n = n.child(r.seed, p.pairs[i].Value, false)
			i++
		case n.key == "" || k < n.key:
			return nil
		default:
			n = n.skip
		}
	}
	return n
}

// Remove removes the pattern p (exactly that pattern; wider and narrower
// ones stay) and reports whether it was there. As in Patrun, the path of a
// removed pattern stays in the tree, so later finds behave as if its value
// had been cleared rather than the pattern never added.
func (r *Router[T]) Remove(p Pattern) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.exactNode(p)
	if n == nil || n.entry == nil {
		return false
	}
	n.entry = nil
	var zero T
	n.val = zero
	r.n--
	return true
}

// Get returns the value added for exactly the pattern p.
func (r *Router[T]) Get(p Pattern) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := r.exactNode(p); n != nil && n.entry != nil {
		return n.entry.val, true
	}
	var zero T
	return zero, false
}

// Len returns the number of patterns in the router.
func (r *Router[T]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

// List returns the patterns that contain every pair of partial (the same
// key with the same value text; a glob in partial matches only the same
// glob), with their values, sorted by their canonical string. The empty
// partial lists every pattern.
func (r *Router[T]) List(partial Pattern) []Entry[T] {
	r.mu.RLock()
	var out []Entry[T]
	var walk func(n *node[T])
	walk = func(n *node[T]) {
		if n.entry != nil && n.entry.pat.Contains(partial) {
			out = append(out, Entry[T]{Pattern: n.entry.pat, Value: n.entry.val})
		}
		n.vals.each(walk)
		if n.globs != nil {
			for _, g := range *n.globs {
				walk(g.next)
			}
		}
		if n.skip != nil {
			walk(n.skip)
		}
	}
	walk(&r.root)
	r.mu.RUnlock()
	keys := make([]string, len(out))
	for i := range out {
		keys[i] = out[i].Pattern.String()
	}
	sort.Sort(byKey[T]{out, keys})
	return out
}

type byKey[T any] struct {
	e []Entry[T]
	k []string
}

func (b byKey[T]) Len() int           { return len(b.e) }
func (b byKey[T]) Less(i, j int) bool { return b.k[i] < b.k[j] }
func (b byKey[T]) Swap(i, j int) {
	b.e[i], b.e[j] = b.e[j], b.e[i]
	b.k[i], b.k[j] = b.k[j], b.k[i]
}
