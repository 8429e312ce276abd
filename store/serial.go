package store

import (
	"context"
	"fmt"
	"hash/maphash"
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
	stripes [64]chan struct{} // each holds a token while an update runs
}

func newUpdateLocks() *updateLocks {
	l := &updateLocks{seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

// lock waits, within ctx, for the stripe of the entity with id in coll
// and returns the function that unlocks it. A ctx that ends first gives
// the store's error for it, as the operation would have.
func (l *updateLocks) lock(ctx context.Context, op, coll, id string) (unlock func(), err error) {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(coll)
	h.WriteByte(0)
	h.WriteString(id)
	stripe := l.stripes[h.Sum64()%uint64(len(l.stripes))]
	select {
	case stripe <- struct{}{}:
		return func() { <-stripe }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("store: %s %s: waiting for another update of %q: %w", op, coll, id, ctx.Err())
	}
}
