package store

import (
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Filter selects entities by the names their fields have in MongoDB (the
// bson tags): Filter{"name": "甲"} matches the entities whose name is 甲,
// Filter{"_id": id} the one with the id, and MongoDB's query operators
// work as values: Filter{"age": Filter{"$gte": 18}}. A nil or empty Filter
// matches every entity.
type Filter map[string]any

// filterDoc turns a Filter into what the driver takes; nil becomes the
// empty document.
func filterDoc(f Filter) any {
	if f == nil {
		return bson.D{}
	}
	return map[string]any(f)
}

// ListOption refines what Collection.List returns.
type ListOption func(*listOptions)

type listOptions struct {
	limit int64
	sort  bson.D
	err   error
}

// sortDoc returns the sort the options ask for, with the id last as the
// tie-breaker, so that the order is always the same.
func (o *listOptions) sortDoc() bson.D {
	s := append(bson.D{}, o.sort...)
	for _, e := range s {
		if e.Key == "_id" {
			return s
		}
	}
	return append(s, bson.E{Key: "_id", Value: 1})
}

// Limit makes List return at most n entities; 0 means no limit. A
// negative n makes List fail with "invalid_input".
func Limit(n int64) ListOption {
	return func(o *listOptions) {
		if n < 0 {
			o.err = errors.Join(o.err, fmt.Errorf("negative limit %d", n))
			return
		}
		o.limit = n
	}
}

// Sort orders what List returns by the fields named, in turn: "name"
// ascending, "-name" descending. Entities equal in every field named come
// in the order of their ids. An empty name, or one that starts with '$',
// makes List fail with "invalid_input".
func Sort(fields ...string) ListOption {
	return func(o *listOptions) {
		for _, f := range fields {
			dir := 1
			if strings.HasPrefix(f, "-") {
				f, dir = f[1:], -1
			}
			if f == "" || strings.HasPrefix(f, "$") {
				o.err = errors.Join(o.err, fmt.Errorf("invalid sort field %q", f))
				continue
			}
			o.sort = append(o.sort, bson.E{Key: f, Value: dir})
		}
	}
}
