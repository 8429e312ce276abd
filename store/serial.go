package store

import (
	"hash/maphash"
	"sync"
)

// updateLocks serializes the updates of one entity made through a DB on a
// server whose update is not atomic. FerretDB reads a document and writes
// it back in two steps, so two updates of one document at once that set
// different fields can each write back the other's field as it read it,
// and one change is lost while both callers are told it was saved.
// MongoDB applies an update atomically and needs no lock.
//
// The locks are striped by collection and id: a fixed number of mutexes,
// so memory does not grow with the ids updated; two entities that share
// a stripe wait for one another, which costs only time. The lock holds
// within one process: on FerretDB, updates of one document from several
// processes are still not isolated.
type updateLocks struct {
	seed    maphash.Seed
	stripes [64]sync.Mutex
}

func newUpdateLocks() *updateLocks { return &updateLocks{seed: maphash.MakeSeed()} }

// lock locks the stripe of the entity with id in coll and returns the
// function that unlocks it.
func (l *updateLocks) lock(coll, id string) func() {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(coll)
	h.WriteByte(0)
	h.WriteString(id)
	m := &l.stripes[h.Sum64()%uint64(len(l.stripes))]
	m.Lock()
	return m.Unlock
}
