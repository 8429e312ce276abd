package store

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Entity is what the store keeps about every entity: its id and when it
// was created and last saved. A type kept in a Collection embeds it,
// inline:
//
//	type User struct {
//		store.Entity `bson:",inline"`
//		Name         string `bson:"name" json:"name"`
//	}
//
// The store sets all three fields; what a caller puts in Created and
// Updated is ignored, and ID says whether Save inserts (empty) or updates.
// In MongoDB the id is the _id field, a string; JSON calls it "id".
type Entity struct {
	// ID is the entity's id: 24 lower-case hexadecimal digits (a MongoDB
	// ObjectID in hex), made by Save on insert.
	ID string `bson:"_id,omitempty" json:"id,omitempty"`
	// Created is when the entity was inserted, UTC, to the millisecond.
	Created time.Time `bson:"created" json:"created"`
	// Updated is when the entity was last saved, UTC, to the millisecond.
	Updated time.Time `bson:"updated" json:"updated"`
}

// entity gives the store the Entity in any type that embeds one.
func (e *Entity) entity() *Entity { return e }

// entityHolder is what every *T of a Collection[T] implements, through
// the Entity that T embeds.
type entityHolder interface{ entity() *Entity }

// NewID returns a new entity id: a MongoDB ObjectID in hex, 24 lower-case
// hexadecimal digits. Ids are unique across processes and grow with time:
// an ObjectID is its second, a random value per process, and a counter,
// so sorting by id sorts by creation within one process, and to the
// second across processes. It is safe for
// concurrent use.
func NewID() string { return bson.NewObjectID().Hex() }

// ValidID reports whether id has the form of an id NewID makes.
func ValidID(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// now returns the time the store records: UTC, to the millisecond, which
// is what MongoDB keeps of a date, so that a saved entity equals the one
// loaded back.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
