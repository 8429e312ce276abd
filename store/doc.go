// Package store keeps typed entities in MongoDB: the part Seneca's
// entities (save$, load$, list$, remove$) play for its plugins, for
// patbus services. It is the only patbus package that imports the MongoDB
// driver (go.mongodb.org/mongo-driver/v2); services use it through their
// plugins, and callers of an act see its errors as typed codes.
//
// # Entities and collections
//
// An entity is a struct that embeds Entity inline, which gives it an id
// and the times it was created and last saved:
//
//	type User struct {
//		store.Entity `bson:",inline"`
//		Name         string `bson:"name" json:"name"`
//		Password     []byte `bson:"password" json:"-"` // a bcrypt hash
//	}
//
// Open connects to a server and a database; NewCollection gives a typed
// Collection in it:
//
//	db, err := store.Open(ctx, os.Getenv("MONGODB_URI"), "system")
//	users, err := store.NewCollection[User](db, "users")
//	err = users.EnsureIndex(ctx, store.Index{Keys: []string{"name"}, Unique: true})
//	u, err := users.Save(ctx, User{Name: "甲"})          // insert: u.ID is new
//	u.Name = "乙"
//	u, err = users.Save(ctx, u)                           // update by id
//	u, err = users.Load(ctx, u.ID)
//	all, err := users.List(ctx, nil)                      // every user
//	some, err := users.List(ctx, store.Filter{"name": "乙"}, store.Limit(10))
//	err = users.Remove(ctx, u.ID)
//
// Save inserts an entity without an id and updates one with an id (it
// never inserts an entity under an id the caller chose). The store sets
// the id and both times; the returned value is what is stored. An update
// sets the fields the value marshals to, and keeps the others (fields of
// other versions of the type, fields left out by omitempty) and Created.
// List returns entities in the order of their ids, which is the order of
// their creation within one process and to the second across processes,
// unless Sort says otherwise; Limit bounds it. Filters
// are MongoDB queries on the bson names of the fields (Filter).
//
// # Ids
//
// Ids are MongoDB ObjectIDs in hex, 24 lower-case hexadecimal digits
// (NewID), kept as strings in the _id field. They need no dependency
// beyond the driver, carry their creation time so that they sort as the
// entities were made (and keep the _id index compact and append-only,
// where random UUIDs would scatter it), and have one strict form, so that
// a malformed id is told apart at once: Load, Save and Remove answer it
// with "invalid_input" without asking the server.
//
// # Errors
//
// Every failure a caller branches on is a *patbus.Error with a code, so
// that a handler may return it as it is and the gateway maps it to an
// HTTP status: "not_found" (ErrNotFound) for a missing id, "conflict"
// (ErrConflict) for a key a unique index holds already, "invalid_input"
// (patbus.ErrInvalidInput) for a malformed id, filter or sort. errors.Is
// matches them against those values, and patbus.Code reads the code. An
// unreachable server gives "unavailable" (ErrUnavailable), a context that
// ends "timeout" or "canceled", the DB's own timeout (WithTimeout)
// "timeout", a closed DB "closed"; see ErrNotFound for
// the whole table. The driver's error types never reach the caller for
// these cases; other failures wrap the driver's error (code "internal").
//
// # Contexts and a server that is down
//
// Every call that talks to the server takes a context and returns when
// it ends. An operation whose context has no deadline is bounded by the
// DB's timeout (WithTimeout); a server that is reached but does not answer
// within it fails the operation with "timeout". A server that is down
// fails an operation with "unavailable" after the dial timeout
// (WithDialTimeout), or with the context's error when that ends first;
// Open checks the server with a ping, so a wrong address fails there.
//
// # Processing a message once
//
// Dedup remembers the ids of processed messages in a collection, with a
// time to live, and answers "seen before?" atomically with the record
// (Dedup.Seen): the building block for work items and events that may
// arrive twice. It is a workers.SeenStore, for the work queues'
// idempotency middleware (workers.Dedup).
//
// # Servers
//
// The tests run on any MongoDB-wire server that MONGODB_URI names:
// MongoDB itself, or the embedded FerretDB (SQLite handler) that the
// reference system's module starts (examples/system, `eval
// "$(scripts/mongodb.sh)"`). FerretDB stays in that module, out of this
// one's dependencies. Three of its differences are handled here: it
// refuses TTL indexes (Dedup deletes expired records itself); it reports
// an update that breaks a unique index as an internal error carrying
// SQLite's text, which the store still answers with "conflict"; and its
// update reads a document and writes it back in two steps, so that two
// updates of one entity at once could lose one another's fields: Open
// asks the server's buildInfo whether it is FerretDB, and if so the DB
// serializes the updates of one entity made through it. That holds within
// one process; keep the writers of a collection in one process on
// FerretDB, or use MongoDB, whose updates are atomic.
//
// # Concurrency
//
// DB, Collection and Dedup are safe for concurrent use. A DB holds a
// connection pool: open one per process and database and Close it at the
// end; Collections and Dedups made from it fail with "closed" after that.
package store
