package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/patbus/patbus"
)

// MaxDedupIDLength is the longest message id a Dedup takes, in bytes.
const MaxDedupIDLength = 512

// Dedup remembers the ids of messages that have been processed, so that a
// work item or event that arrives twice (a redelivery after a lost ack, a
// publisher's retry) is processed once. Each id is a document in a
// collection, keyed by the id itself (MongoDB's unique _id index), with
// the time it was marked; records older than the Dedup's time to live
// count as absent, and are deleted in time: by a TTL index where the
// server has them, or by the Dedup itself where it has not (FerretDB).
//
// It is a workers.SeenStore: workers.Dedup(d, log) checks an item's id
// with Has before its handler runs and records it with Seen once the
// handler succeeded, so that a failed item is still tried again. Used on
// its own: Seen an id before processing the message; if Seen reports it
// seen, the message is a duplicate and is acknowledged without being
// processed; if processing fails and the message will be delivered again,
// Forget the id so that the next delivery is processed.
//
// A Dedup is safe for concurrent use, in one process and across
// processes sharing the collection: of concurrent Seens of one id, exactly
// one reports it unseen. (On FerretDB the takeover of an expired record is
// a read and a write, not one step: two Seens of an id that arrive
// together after its record expired may both report it unseen.)
type Dedup struct {
	db   *DB
	name string
	coll *mongo.Collection
	ttl  time.Duration

	// selfPrune is set when the server refused the TTL index: Seen then
	// deletes expired records itself, at most once per pruneEvery.
	selfPrune  bool
	pruneEvery time.Duration
	mu         sync.Mutex
	lastPrune  time.Time
	pruning    bool
}

// dedupRecord is the document a Dedup keeps per id.
type dedupRecord struct {
	ID string    `bson:"_id"`
	At time.Time `bson:"at"`
}

// NewDedup returns a Dedup that keeps its records in the collection named
// collection of db, each for ttl (which must be at least a second; it is
// kept to the second). It makes the collection's index on the time of
// marking: a TTL index, or, where the server refuses one (FerretDB does),
// a plain index that the Dedup's own pruning uses. An existing TTL index
// of another ttl is an error: drop it, or use another collection.
func NewDedup(ctx context.Context, db *DB, collection string, ttl time.Duration) (*Dedup, error) {
	var problems []error
	if ttl < time.Second {
		problems = append(problems, fmt.Errorf("ttl %v is shorter than a second", ttl))
	}
	if err := checkCollectionName(collection); err != nil {
		problems = append(problems, err)
	}
	if db == nil {
		problems = append(problems, errors.New("nil DB"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("store: dedup: %w: %w", patbus.ErrInvalidConfig, errors.Join(problems...))
	}
	ttl = ttl.Truncate(time.Second)
	d := &Dedup{
		db:         db,
		name:       collection,
		coll:       db.db.Collection(collection),
		ttl:        ttl,
		pruneEvery: min(ttl, time.Minute),
	}
	ttlIndex := mongo.IndexModel{
		Keys:    bson.D{{Key: "at", Value: 1}},
		Options: options.Index().SetName("at_ttl").SetExpireAfterSeconds(int32(min(ttl/time.Second, 1<<31-1))),
	}
	_, err := d.coll.Indexes().CreateOne(ctx, ttlIndex)
	switch {
	case err == nil:
	case isNotImplemented(err):
		// The server has no TTL indexes: a plain index serves the pruning.
		plain := mongo.IndexModel{Keys: bson.D{{Key: "at", Value: 1}}, Options: options.Index().SetName("at_1")}
		if _, err := d.coll.Indexes().CreateOne(ctx, plain); err != nil {
			return nil, classify(ctx, "create index on", collection, err)
		}
		d.selfPrune = true
		db.log.Info("store: the server has no TTL indexes; the dedup deletes expired records itself",
			"collection", collection, "ttl", ttl)
	default:
		return nil, classify(ctx, "create index on", collection, err)
	}
	return d, nil
}

// TTL returns how long a Seen is remembered.
func (d *Dedup) TTL() time.Duration { return d.ttl }

// checkID refuses ids a Dedup does not keep.
func (d *Dedup) checkID(op, id string) error {
	switch {
	case id == "":
		return invalidInput(d.name, "%s: empty message id", op)
	case len(id) > MaxDedupIDLength:
		return invalidInput(d.name, "%s: message id of %d bytes, longer than %d", op, len(id), MaxDedupIDLength)
	}
	return nil
}

// Seen records id as processed now and reports whether it had been
// recorded before, within the time to live: seen is true for a duplicate.
// The check and the record are one atomic step (an insert that the unique
// _id refuses for a known id), so of concurrent Seens of one id, here or
// in another process, exactly one reports false. An expired record is
// taken over as if it were absent. On error nothing is known: seen is
// false, and the id may or may not be recorded. An empty id, or one longer
// than MaxDedupIDLength, fails with "invalid_input".
func (d *Dedup) Seen(ctx context.Context, id string) (seen bool, err error) {
	if err := d.checkID("mark", id); err != nil {
		return false, err
	}
	at := now()
	d.maybePrune(ctx, at)
	_, err = d.coll.InsertOne(ctx, dedupRecord{ID: id, At: at})
	if err == nil {
		return false, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, classify(ctx, "mark", d.name, err)
	}
	// Recorded already: take the record over if it has expired. The
	// filter and the update are one step, so only one Seen takes it (on
	// FerretDB, within this process, through the DB's update locks).
	if l := d.db.updates; l != nil {
		unlock, err := l.lock(ctx, "mark", d.name, id)
		if err != nil {
			return false, err
		}
		defer unlock()
	}
	res, err := d.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "at", Value: bson.D{{Key: "$lte", Value: at.Add(-d.ttl)}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: at}}}})
	if err != nil {
		return false, classify(ctx, "mark", d.name, err)
	}
	return res.ModifiedCount == 0, nil
}

// Has reports whether id is recorded and has not expired, without
// recording it. Deciding with Has and then calling Seen is not atomic;
// use Seen alone to decide whether to process a message.
func (d *Dedup) Has(ctx context.Context, id string) (bool, error) {
	if err := d.checkID("has", id); err != nil {
		return false, err
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "at", Value: bson.D{{Key: "$gt", Value: now().Add(-d.ttl)}}}}
	err := d.coll.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	}
	return false, classify(ctx, "has", d.name, err)
}

// Forget deletes the record of id, so that the next Seen of it reports
// false: for a message whose processing failed and that will be
// delivered again. Forgetting an id that is not recorded is no error.
func (d *Dedup) Forget(ctx context.Context, id string) error {
	if err := d.checkID("forget", id); err != nil {
		return err
	}
	if _, err := d.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return classify(ctx, "forget", d.name, err)
	}
	return nil
}

// Prune deletes the records that have expired and returns how many. A
// server with TTL indexes does this by itself about once a minute; where
// it does not, Seen calls Prune at most once per minute (or per time to
// live, if shorter). Calling it is never needed for correctness: an
// expired record counts as absent whether it is deleted or not.
func (d *Dedup) Prune(ctx context.Context) (int64, error) {
	res, err := d.coll.DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lte", Value: now().Add(-d.ttl)}}}})
	if err != nil {
		return 0, classify(ctx, "prune", d.name, err)
	}
	return res.DeletedCount, nil
}

// maybePrune prunes when the server has no TTL index and the last pruning
// was pruneEvery ago; one Seen at a time does it, the others go on. A
// failure is logged: the records are pruned at a later Seen.
func (d *Dedup) maybePrune(ctx context.Context, at time.Time) {
	if !d.selfPrune {
		return
	}
	d.mu.Lock()
	if d.pruning || at.Sub(d.lastPrune) < d.pruneEvery {
		d.mu.Unlock()
		return
	}
	d.pruning = true
	d.mu.Unlock()

	n, err := d.Prune(ctx)

	d.mu.Lock()
	d.pruning = false
	if err == nil {
		d.lastPrune = at
	}
	d.mu.Unlock()
	if err != nil {
		d.db.log.Warn("store: dedup: prune failed", "collection", d.name, "err", err)
	} else if n > 0 {
		d.db.log.Debug("store: dedup: pruned expired records", "collection", d.name, "deleted", n)
	}
}
