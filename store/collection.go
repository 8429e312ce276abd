package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/patbus/patbus"
)

// Collection is a MongoDB collection of entities of type T, a struct that
// embeds Entity inline. It is safe for concurrent use, and cheap: make one
// per collection and keep it, or make it when needed.
type Collection[T any] struct {
	db   *DB
	name string
	coll *mongo.Collection
}

// NewCollection returns the collection named name in db, holding values
// of type T. T must be a struct type that embeds Entity with the tag
// `bson:",inline"`; otherwise, or when name is not a valid collection
// name, NewCollection returns an error that wraps patbus.ErrInvalidConfig.
// It does not talk to the server: MongoDB makes a collection at its first
// write.
func NewCollection[T any](db *DB, name string) (*Collection[T], error) {
	if err := checkEntityType[T](); err != nil {
		return nil, err
	}
	if err := checkCollectionName(name); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, fmt.Errorf("store: %w: nil DB", patbus.ErrInvalidConfig)
	}
	return &Collection[T]{db: db, name: name, coll: db.db.Collection(name)}, nil
}

// checkCollectionName refuses names MongoDB does not take or keeps for
// itself.
func checkCollectionName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("store: %w: empty collection name", patbus.ErrInvalidConfig)
	case strings.ContainsAny(name, "$\x00"):
		return fmt.Errorf("store: %w: collection name %q holds '$' or NUL", patbus.ErrInvalidConfig, name)
	case strings.HasPrefix(name, "system."):
		return fmt.Errorf("store: %w: collection name %q is reserved", patbus.ErrInvalidConfig, name)
	}
	return nil
}

// checkEntityType checks that T is a struct that embeds Entity and that
// the id lands in _id at the top of the document (the embedding is
// inline).
func checkEntityType[T any]() error {
	var v T
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Struct {
		return fmt.Errorf("store: %w: %v is not a struct type", patbus.ErrInvalidConfig, t)
	}
	h, ok := any(&v).(entityHolder)
	if !ok || !embedsByValue(t) {
		return fmt.Errorf("store: %w: %v does not embed store.Entity (by value, not by pointer)", patbus.ErrInvalidConfig, t)
	}
	h.entity().ID = "000000000000000000000000"
	raw, err := bson.Marshal(&v)
	if err != nil {
		return fmt.Errorf("store: %w: %v cannot be stored: %v", patbus.ErrInvalidConfig, t, err)
	}
	if id, ok := bson.Raw(raw).Lookup("_id").StringValueOK(); !ok || id != h.entity().ID {
		return fmt.Errorf("store: %w: %v embeds store.Entity without the tag `bson:\",inline\"`", patbus.ErrInvalidConfig, t)
	}
	return nil
}

// embedsByValue reports whether the struct type t reaches its Entity
// through embedded structs only, never through a pointer, which would be
// nil in a zero T.
func embedsByValue(t reflect.Type) bool {
	f, ok := t.FieldByName("Entity")
	if !ok || f.Type != reflect.TypeOf(Entity{}) {
		return false
	}
	for i := 1; i < len(f.Index); i++ {
		if t.FieldByIndex(f.Index[:i]).Type.Kind() != reflect.Struct {
			return false
		}
	}
	return true
}

// Name returns the name of the collection.
func (c *Collection[T]) Name() string { return c.name }

// Save stores v and returns it as stored. When v has no ID, Save inserts
// it with a new id (NewID) and sets Created and Updated to now. When v has
// an ID, Save updates the entity with that id: it sets every field that v
// marshals to, keeps Created, and sets Updated to now; a field that v
// leaves out (omitempty) or does not know keeps its stored value. The
// returned value is the stored document, read back in the same operation.
//
// Errors: "not_found" when no entity has v's ID, "invalid_input" for an
// ID that NewID cannot have made, "conflict" when a unique index already
// holds one of v's keys (see the package's Errors).
func (c *Collection[T]) Save(ctx context.Context, v T) (T, error) {
	if any(&v).(entityHolder).entity().ID == "" {
		return c.insert(ctx, &v)
	}
	return c.update(ctx, &v)
}

// insert stores *v with a new id, setting its Entity.
func (c *Collection[T]) insert(ctx context.Context, v *T) (T, error) {
	var zero T
	e := any(v).(entityHolder).entity()
	e.ID = NewID()
	e.Created = now()
	e.Updated = e.Created
	if _, err := c.coll.InsertOne(ctx, v); err != nil {
		return zero, classify(ctx, "insert", c.name, err)
	}
	return *v, nil
}

// update sets the fields of *v on the entity with its id.
func (c *Collection[T]) update(ctx context.Context, v *T) (T, error) {
	var zero T
	e := any(v).(entityHolder).entity()
	id := e.ID
	if !ValidID(id) {
		return zero, invalidInput(c.name, "save: invalid id %q", id)
	}
	if l := c.db.updates; l != nil {
		unlock, err := l.lock(ctx, "update", c.name, id)
		if err != nil {
			return zero, err
		}
		defer unlock()
	}
	e.Updated = now()
	raw, err := bson.Marshal(v)
	if err != nil {
		return zero, invalidInput(c.name, "save: %v", err)
	}
	elems, err := bson.Raw(raw).Elements()
	if err != nil {
		return zero, invalidInput(c.name, "save: %v", err)
	}
	set := make(bson.D, 0, len(elems))
	for _, el := range elems {
		switch el.Key() {
		case "_id", "created":
			continue
		}
		set = append(set, bson.E{Key: el.Key(), Value: el.Value()})
	}
	res := c.coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After))
	var out T
	if err := res.Decode(&out); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return zero, notFound(c.name, id)
		}
		return zero, classify(ctx, "update", c.name, err)
	}
	return out, nil
}

// Load returns the entity with the given id. Errors: "not_found" when
// there is none, "invalid_input" for an id that NewID cannot have made.
func (c *Collection[T]) Load(ctx context.Context, id string) (T, error) {
	var zero T
	if !ValidID(id) {
		return zero, invalidInput(c.name, "load: invalid id %q", id)
	}
	var out T
	if err := c.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&out); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return zero, notFound(c.name, id)
		}
		return zero, classify(ctx, "load", c.name, err)
	}
	return out, nil
}

// LoadBy returns the first entity, in the order of their ids, that
// matches filter (such as Filter{"name": "甲"}). It returns "not_found"
// when none matches.
func (c *Collection[T]) LoadBy(ctx context.Context, filter Filter) (T, error) {
	var zero T
	var out T
	err := c.coll.FindOne(ctx, filterDoc(filter), options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}})).Decode(&out)
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return zero, patbus.NewError(patbus.CodeNotFound, fmt.Sprintf("store: %s: no entity matches the filter", c.name)).
				WithDetails(map[string]any{"collection": c.name})
		}
		return zero, classify(ctx, "load", c.name, err)
	}
	return out, nil
}

// List returns the entities that match filter, all of them for a nil or
// empty filter, in the order of their ids (the order of their creation
// within one process, and to the second across processes; see NewID)
// unless a Sort option says otherwise. It returns an empty,
// non-nil slice when none matches, and "invalid_input" for a filter or
// sort the server refuses.
func (c *Collection[T]) List(ctx context.Context, filter Filter, opts ...ListOption) ([]T, error) {
	lo := listOptions{}
	for _, o := range opts {
		if o != nil {
			o(&lo)
		}
	}
	if lo.err != nil {
		return nil, invalidInput(c.name, "list: %v", lo.err)
	}
	fo := options.Find().SetSort(lo.sortDoc())
	if lo.limit > 0 {
		fo.SetLimit(lo.limit)
	}
	cur, err := c.coll.Find(ctx, filterDoc(filter), fo)
	if err != nil {
		return nil, classify(ctx, "list", c.name, err)
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, classify(ctx, "list", c.name, err)
	}
	return out, nil
}

// Count returns how many entities match filter (all of them for a nil
// filter).
func (c *Collection[T]) Count(ctx context.Context, filter Filter) (int64, error) {
	n, err := c.coll.CountDocuments(ctx, filterDoc(filter))
	if err != nil {
		return 0, classify(ctx, "count", c.name, err)
	}
	return n, nil
}

// Remove deletes the entity with the given id. Errors: "not_found" when
// there is none, "invalid_input" for an id that NewID cannot have made.
func (c *Collection[T]) Remove(ctx context.Context, id string) error {
	if !ValidID(id) {
		return invalidInput(c.name, "remove: invalid id %q", id)
	}
	res, err := c.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return classify(ctx, "remove", c.name, err)
	}
	if res.DeletedCount == 0 {
		return notFound(c.name, id)
	}
	return nil
}
