package store

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Index describes an index on a collection.
type Index struct {
	// Keys are the fields indexed, in order, by their MongoDB names:
	// "name" ascending, "-name" descending. At least one.
	Keys []string
	// Unique makes the index refuse a second entity with the same values
	// of Keys: Save then fails with "conflict".
	Unique bool
	// Name is the index's name; empty means MongoDB's default, built from
	// the keys ("name_1").
	Name string
}

// model returns the driver's form of the index.
func (ix Index) model() (mongo.IndexModel, error) {
	if len(ix.Keys) == 0 {
		return mongo.IndexModel{}, fmt.Errorf("index without keys")
	}
	keys := make(bson.D, 0, len(ix.Keys))
	for _, k := range ix.Keys {
		dir := 1
		if strings.HasPrefix(k, "-") {
			k, dir = k[1:], -1
		}
		if k == "" || strings.HasPrefix(k, "$") {
			return mongo.IndexModel{}, fmt.Errorf("invalid index key %q", k)
		}
		keys = append(keys, bson.E{Key: k, Value: dir})
	}
	o := options.Index()
	if ix.Unique {
		o.SetUnique(true)
	}
	if ix.Name != "" {
		o.SetName(ix.Name)
	}
	return mongo.IndexModel{Keys: keys, Options: o}, nil
}

// EnsureIndex makes the index on the collection unless it exists already
// (creating the collection if needed), so that services can call it at
// every start. It fails with "invalid_input" for an index without keys,
// with "conflict" when a unique index is asked for on fields that already
// hold duplicates, and with an error from the server when an index of the
// same name but other keys or options exists.
func (c *Collection[T]) EnsureIndex(ctx context.Context, ix Index) error {
	m, err := ix.model()
	if err != nil {
		return invalidInput(c.name, "index: %v", err)
	}
	name, err := c.coll.Indexes().CreateOne(ctx, m)
	if err != nil {
		return classify(ctx, "create index on", c.name, err)
	}
	c.db.log.Debug("store: index ensured", "collection", c.name, "index", name)
	return nil
}
