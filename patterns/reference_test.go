package patterns

import (
	"math/rand"
	"reflect"
	"testing"
)

// refNode and refRouter are a plain transcription of Patrun's add and find
// (patrun.ts, with Go maps and linear glob lists), kept deliberately naive so
// that the optimised Router can be checked against it.
type refNode struct {
	k     string
	v     map[string]*refNode
	g     []refGlob
	s     *refNode
	d     int
	hasD  bool
	isSet bool
}

type refGlob struct {
	fix  string
	next *refNode
}

type refRouter struct{ top refNode }

func (r *refRouter) add(p Pattern, d int) {
	keymap := &r.top
	pairs := p.Pairs()
	for i := 0; i < len(pairs); i++ {
		key, fix := pairs[i].Key, pairs[i].Value
		into := func(km *refNode) *refNode {
			if isGlob(fix) {
				for _, g := range km.g {
					if g.fix == fix {
						return g.next
					}
				}
				n := &refNode{}
				km.g = append(km.g, refGlob{fix, n})
				return n
			}
			if km.v[fix] == nil {
				km.v[fix] = &refNode{}
			}
			return km.v[fix]
		}
		switch {
		case keymap.v != nil && key == keymap.k:
			keymap = into(keymap)
		case keymap.k == "":
			keymap.k, keymap.v = key, map[string]*refNode{}
			keymap = into(keymap)
		case key < keymap.k:
			keymap.s = &refNode{k: keymap.k, v: keymap.v, g: keymap.g, s: keymap.s}
			keymap.k, keymap.v, keymap.g = key, map[string]*refNode{}, nil
			keymap = into(keymap)
		default:
			if keymap.s == nil {
				keymap.s = &refNode{}
			}
			keymap = keymap.s
			i--
		}
	}
	keymap.d, keymap.hasD = d, true
}

func (r *refRouter) remove(p Pattern) {
	keymap := &r.top
	pairs := p.Pairs()
	for i := 0; i < len(pairs) && keymap != nil; {
		if keymap.k == pairs[i].Key {
			var next *refNode
			if isGlob(pairs[i].Value) {
				for _, g := range keymap.g {
					if g.fix == pairs[i].Value {
						next = g.next
					}
				}
			} else {
				next = keymap.v[pairs[i].Value]
			}
			keymap = next
			i++
		} else if keymap.k == "" || pairs[i].Key < keymap.k {
			return
		} else {
			keymap = keymap.s
		}
	}
	if keymap != nil {
		keymap.hasD = false
	}
}

// find returns (data, found) or, with collect, every data met.
func (r *refRouter) find(msg map[string]any, exact, collect bool) (int, bool, []int) {
	keymap := &r.top
	data, has := r.top.d, r.top.hasD
	var stars []*refNode
	foundkeys := map[string]bool{}
	var collection []int
	if r.top.hasD {
		collection = append(collection, r.top.d)
	}
	for keymap != nil {
		if keymap.v != nil {
			val, ok := messageString(msg[keymap.k])
			var next *refNode
			if ok {
				next = keymap.v[val]
				if next == nil {
					for _, g := range keymap.g {
						if cg := compileGlob(g.fix); cg.matchValue(val, nil) {
							next = g.next
							break
						}
					}
				}
			}
			if next != nil {
				foundkeys[keymap.k] = true
				if keymap.s != nil {
					stars = append(stars, keymap.s)
				}
				if next.hasD {
					data, has = next.d, true
					collection = append(collection, next.d)
				} else if exact {
					has = false
				}
				keymap = next
			} else {
				keymap = keymap.s
			}
		} else {
			keymap = nil
		}
		if keymap == nil && len(stars) > 0 && (!has || collect) {
			keymap = stars[len(stars)-1]
			stars = stars[:len(stars)-1]
		}
	}
	if exact {
		n := 0
		for k, v := range msg {
			if _, ok := messageString(v); ok && k[len(k)-1] != '$' {
				n++
			}
		}
		if len(foundkeys) != n {
			has = false
		}
	}
	return data, has, collection
}

func messageString(v any) (string, bool) {
	var buf [32]byte
	s, b, ok := scalarString(v, buf[:0])
	if b != nil {
		s = string(b)
	}
	return s, ok
}

// checkAgainstReference builds both routers from the same operations and
// compares every kind of find on msgs.
func checkAgainstReference(t *testing.T, ops []refOp, msgs []map[string]any) {
	t.Helper()
	r := NewRouter[int]()
	var ref refRouter
	for _, op := range ops {
		if op.remove {
			r.Remove(op.p)
			ref.remove(op.p)
		} else {
			r.Add(op.p, op.id)
			ref.add(op.p, op.id)
		}
	}
	for _, msg := range msgs {
		wd, wok, wcoll := ref.find(msg, false, false)
		if d, ok := r.Find(msg); ok != wok || (ok && d != wd) {
			t.Fatalf("Find(%v) = %d, %v; reference %d, %v\n%s", msg, d, ok, wd, wok, r.Explain(msg))
		}
		_, _, wcoll = ref.find(msg, false, true)
		if coll := r.Collect(msg); !reflect.DeepEqual(coll, wcoll) && (len(coll) > 0 || len(wcoll) > 0) {
			t.Fatalf("Collect(%v) = %v; reference %v", msg, coll, wcoll)
		}
		wd, wok, _ = ref.find(msg, true, false)
		if d, ok := r.FindExact(msg); ok != wok || (ok && d != wd) {
			t.Fatalf("FindExact(%v) = %d, %v; reference %d, %v", msg, d, ok, wd, wok)
		}
	}
}

type refOp struct {
	p      Pattern
	id     int
	remove bool
}

func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 300; round++ {
		var ops []refOp
		nops := 1 + rng.Intn(25)
		for i := 0; i < nops; i++ {
			var pairs []Pair
			for _, k := range fuzzKeys {
				if rng.Intn(3) == 0 {
					pairs = append(pairs, Pair{k, fuzzVals[rng.Intn(len(fuzzVals))]})
				}
			}
			p, _ := FromPairs(pairs...)
			ops = append(ops, refOp{p: p, id: i, remove: rng.Intn(6) == 0})
		}
		var msgs []map[string]any
		for i := 0; i < 20; i++ {
			b := make([]byte, len(fuzzKeys))
			rng.Read(b)
			msgs = append(msgs, fuzzMessage(b))
		}
		checkAgainstReference(t, ops, msgs)
	}
}
