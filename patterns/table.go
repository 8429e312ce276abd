package patterns

import "hash/maphash"

// vtable maps the exact values of one node to its children. It is a small
// open-addressing hash table of (hash, child) slots, used instead of a Go
// map because a Find on a large router is bound by memory latency, not by
// instructions: the value itself is kept in the child (vkey, with a copy of
// short values inline), which the walk visits next anyway, and a node with
// a single child keeps it in the node. A lookup so touches the node, at
// most one slot line, and the child; a large Go map also walks its
// directory and table headers and the key's bytes elsewhere in memory.
type vtable[T any] struct {
	one   vslot[T]   // the only child while slots == nil
	slots []vslot[T] // len is a power of two; nil while n <= 1
	n     int
}

type vslot[T any] struct {
	h     uint64
	child *node[T] // nil: empty slot
}

// inlineKey is how many bytes of a node's vkey are copied into the node.
const inlineKey = 16

// setVKey records the value by which the parent reaches n.
func (n *node[T]) setVKey(v string) {
	n.vkey = v
	copy(n.vinl[:], v)
}

// vkeyIs reports whether n is reached by the value k.
func (n *node[T]) vkeyIs(k string) bool {
	if len(n.vkey) != len(k) {
		return false
	}
	if len(k) <= inlineKey {
		return string(n.vinl[:len(k)]) == k
	}
	return n.vkey == k
}

// vkeyIsBytes is vkeyIs for a value held in bytes; it does not allocate.
func (n *node[T]) vkeyIsBytes(k []byte) bool {
	if len(n.vkey) != len(k) {
		return false
	}
	if len(k) <= inlineKey {
		return string(n.vinl[:len(k)]) == string(k)
	}
	return n.vkey == string(k)
}

func hashString(seed maphash.Seed, s string) uint64 { return maphash.String(seed, s) }
func hashBytes(seed maphash.Seed, b []byte) uint64  { return maphash.Bytes(seed, b) }

// get returns the child for key (with hash h), or nil.
func (t *vtable[T]) get(h uint64, key string) *node[T] {
	if t.slots == nil {
		if t.n == 1 && t.one.h == h && t.one.child.vkeyIs(key) {
			return t.one.child
		}
		return nil
	}
	m := len(t.slots) - 1
	for i := int(h) & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		if s.child == nil {
			return nil
		}
		if s.h == h && s.child.vkeyIs(key) {
			return s.child
		}
	}
}

// getBytes is get for a key held in bytes; it does not allocate.
func (t *vtable[T]) getBytes(h uint64, key []byte) *node[T] {
	if t.slots == nil {
		if t.n == 1 && t.one.h == h && t.one.child.vkeyIsBytes(key) {
			return t.one.child
		}
		return nil
	}
	m := len(t.slots) - 1
	for i := int(h) & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		if s.child == nil {
			return nil
		}
		if s.h == h && s.child.vkeyIsBytes(key) {
			return s.child
		}
	}
}

// put adds child (whose vkey is set) under hash h; the key must not be in
// the table yet. The load stays at most 3/4, so a probe always ends.
func (t *vtable[T]) put(h uint64, child *node[T]) {
	if t.n == 0 {
		t.one = vslot[T]{h: h, child: child}
		t.n = 1
		return
	}
	if t.slots == nil {
		t.slots = make([]vslot[T], 4)
		t.insert(t.one)
		t.one = vslot[T]{}
	} else if (t.n+1)*4 > len(t.slots)*3 {
		old := t.slots
		t.slots = make([]vslot[T], 2*len(old))
		for _, s := range old {
			if s.child != nil {
				t.insert(s)
			}
		}
	}
	t.insert(vslot[T]{h: h, child: child})
	t.n++
}

func (t *vtable[T]) insert(s vslot[T]) {
	m := len(t.slots) - 1
	for i := int(s.h) & m; ; i = (i + 1) & m {
		if t.slots[i].child == nil {
			t.slots[i] = s
			return
		}
	}
}

// each calls f for every child.
func (t *vtable[T]) each(f func(*node[T])) {
	if t.slots == nil {
		if t.n == 1 {
			f(t.one.child)
		}
		return
	}
	for _, s := range t.slots {
		if s.child != nil {
			f(s.child)
		}
	}
}
