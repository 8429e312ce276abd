package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/store"
)

func TestSaveInsertsThenUpdates(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)

	in := user{Name: "甲", Email: "jia@example.com", Age: 30}
	saved, err := c.Save(ctx, in)
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	if !store.ValidID(saved.ID) {
		t.Fatalf("insert gave id %q, not a valid id", saved.ID)
	}
	if saved.Created.IsZero() || !saved.Updated.Equal(saved.Created) {
		t.Fatalf("insert: created %v, updated %v; want both set and equal", saved.Created, saved.Updated)
	}
	if saved.Name != "甲" || saved.Email != in.Email || saved.Age != 30 {
		t.Fatalf("insert returned %+v", saved)
	}
	if in.ID != "" {
		t.Fatalf("Save changed the caller's value: id %q", in.ID)
	}

	loaded, err := c.Load(ctx, saved.ID)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !sameUser(loaded, saved) {
		t.Fatalf("loaded %+v\nwant %+v", loaded, saved)
	}
	if loaded.Created.Location() != time.UTC || saved.Created.Location() != time.UTC {
		t.Errorf("times not in UTC: saved %v, loaded %v", saved.Created, loaded.Created)
	}

	// Update: a change of fields, with Created left zero by the caller.
	edit := user{Name: "甲", Age: 31}
	edit.ID = saved.ID
	updated, err := c.Save(ctx, edit)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.ID != saved.ID {
		t.Fatalf("update changed the id: %q, want %q", updated.ID, saved.ID)
	}
	if !updated.Created.Equal(saved.Created) {
		t.Errorf("update: created %v, want the insert's %v", updated.Created, saved.Created)
	}
	if updated.Updated.Before(saved.Updated) {
		t.Errorf("update: updated %v is before the insert's %v", updated.Updated, saved.Updated)
	}
	if updated.Age != 31 {
		t.Errorf("update: age %d, want 31", updated.Age)
	}
	// Email is omitempty and left empty: it keeps its stored value.
	if updated.Email != in.Email {
		t.Errorf("update: email %q, want the stored %q", updated.Email, in.Email)
	}
	loaded, err = c.Load(ctx, saved.ID)
	if err != nil {
		t.Fatalf("load after update: %v", err)
	}
	if !sameUser(loaded, updated) {
		t.Fatalf("loaded %+v\nwant %+v", loaded, updated)
	}
	if n, err := c.Count(ctx, nil); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1 entity after insert and update", n, err)
	}
}

func sameUser(a, b user) bool {
	return a.ID == b.ID && a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated) &&
		a.Name == b.Name && a.Email == b.Email && a.Age == b.Age && bytes.Equal(a.Password, b.Password)
}

func TestNotFound(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	missing := store.NewID()

	_, err := c.Load(ctx, missing)
	checkCode(t, "load", err, patbus.CodeNotFound, store.ErrNotFound)

	err = c.Remove(ctx, missing)
	checkCode(t, "remove", err, patbus.CodeNotFound, store.ErrNotFound)

	u := user{Name: "乙"}
	u.ID = missing
	_, err = c.Save(ctx, u)
	checkCode(t, "save", err, patbus.CodeNotFound, store.ErrNotFound)
	if n, err := c.Count(ctx, nil); err != nil || n != 0 {
		t.Fatalf("count = %d, %v; an update of a missing entity must not insert it", n, err)
	}

	_, err = c.LoadBy(ctx, store.Filter{"name": "nobody"})
	checkCode(t, "load by", err, patbus.CodeNotFound, store.ErrNotFound)
}

func TestInvalidID(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	for _, id := range []string{"x", "5F1D7A3B2C4E6F8091A2B3C4", "5f1d7a3b2c4e6f8091a2b3c", "5f1d7a3b2c4e6f8091a2b3c4'", "5f1d7a3b2c4e6f8091a2b3cg", "甲乙丙"} {
		_, err := c.Load(ctx, id)
		checkCode(t, "load "+id, err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
		err = c.Remove(ctx, id)
		checkCode(t, "remove "+id, err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
		u := user{Name: "丙"}
		u.ID = id
		_, err = c.Save(ctx, u)
		checkCode(t, "save "+id, err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
	}
	if n, err := c.Count(ctx, nil); err != nil || n != 0 {
		t.Fatalf("count = %d, %v; want nothing stored", n, err)
	}
}

func TestUniqueIndexConflict(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	ix := store.Index{Keys: []string{"name"}, Unique: true}
	for i := 0; i < 2; i++ { // a second EnsureIndex finds the index there
		if err := c.EnsureIndex(ctx, ix); err != nil {
			t.Fatalf("ensure index (%d): %v", i+1, err)
		}
	}

	a, err := c.Save(ctx, user{Name: "甲"})
	if err != nil {
		t.Fatalf("save 甲: %v", err)
	}
	_, err = c.Save(ctx, user{Name: "甲"})
	checkCode(t, "insert duplicate", err, patbus.CodeConflict, store.ErrConflict)

	b, err := c.Save(ctx, user{Name: "乙"})
	if err != nil {
		t.Fatalf("save 乙: %v", err)
	}
	b.Name = "甲"
	_, err = c.Save(ctx, b)
	checkCode(t, "rename to a duplicate", err, patbus.CodeConflict, store.ErrConflict)

	got, err := c.List(ctx, nil)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(got) != 2 || got[0].ID != a.ID || got[0].Name != "甲" || got[1].Name != "乙" {
		t.Fatalf("after the conflicts the collection holds %+v; want 甲 and 乙 unchanged", got)
	}

	// The index refuses duplicates only: after a removal the name is free.
	if err := c.Remove(ctx, a.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := c.Save(ctx, user{Name: "甲"}); err != nil {
		t.Fatalf("save 甲 after its removal: %v", err)
	}
}

// A unique index asked for on a field that already holds duplicates is
// refused with "conflict", and the duplicates stay.
func TestUniqueIndexOverDuplicates(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	for range 2 {
		if _, err := c.Save(ctx, user{Name: "丙"}); err != nil {
			t.Fatalf("save 丙: %v", err)
		}
	}
	err := c.EnsureIndex(ctx, store.Index{Keys: []string{"name"}, Unique: true})
	checkCode(t, "unique index over duplicates", err, patbus.CodeConflict, store.ErrConflict)
	if n, err := c.Count(ctx, store.Filter{"name": "丙"}); err != nil || n != 2 {
		t.Fatalf("count = %d, %v; want both duplicates kept", n, err)
	}
}

// Two updates of one entity at once that set different fields both
// stay: neither overwrites the other's field with the value it read.
func TestConcurrentUpdatesOfOneEntity(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	const trials = 30
	for i := range trials {
		u, err := c.Save(ctx, user{Name: "甲", Age: 20})
		if err != nil {
			t.Fatalf("save: %v", err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, errs[0] = c.Save(ctx, user{Entity: u.Entity, Name: "甲", Age: 20, Email: "a@example.com"})
		}()
		go func() {
			defer wg.Done()
			_, errs[1] = c.Save(ctx, user{Entity: u.Entity, Name: "甲", Age: 20, Password: []byte("hash")})
		}()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("trial %d: update: %v", i, err)
		}
		got, err := c.Load(ctx, u.ID)
		if err != nil {
			t.Fatalf("trial %d: load: %v", i, err)
		}
		if got.Email != "a@example.com" || string(got.Password) != "hash" {
			t.Fatalf("trial %d: after two updates at once the entity holds email %q and password %q; one update was lost",
				i, got.Email, got.Password)
		}
	}
}

func TestListFilterSortLimit(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	names := []string{"甲", "乙", "丙", "丁", "戊"}
	var ids []string
	for i, n := range names {
		u, err := c.Save(ctx, user{Name: n, Age: 20 + i%3})
		if err != nil {
			t.Fatalf("save %s: %v", n, err)
		}
		ids = append(ids, u.ID)
	}

	all, err := c.List(ctx, nil)
	if err != nil {
		t.Fatalf("list all: %v", err)
	}
	if got := namesOf(all); fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("list all = %v, want %v in the order of creation", got, names)
	}

	tests := []struct {
		name   string
		filter store.Filter
		opts   []store.ListOption
		want   []string
	}{
		{"equal field", store.Filter{"age": 20}, nil, []string{"甲", "丁"}},
		{"utf-8 value", store.Filter{"name": "丙"}, nil, []string{"丙"}},
		{"operator", store.Filter{"age": store.Filter{"$gte": 21}}, nil, []string{"乙", "丙", "戊"}},
		{"in", store.Filter{"name": store.Filter{"$in": []string{"戊", "甲"}}}, nil, []string{"甲", "戊"}},
		{"by id", store.Filter{"_id": ids[3]}, nil, []string{"丁"}},
		{"no match", store.Filter{"name": "己"}, nil, []string{}},
		{"sort descending", store.Filter{}, []store.ListOption{store.Sort("-age")}, []string{"丙", "乙", "戊", "甲", "丁"}},
		{"sort then limit", nil, []store.ListOption{store.Sort("age"), store.Limit(3)}, []string{"甲", "丁", "乙"}},
		{"limit", nil, []store.ListOption{store.Limit(2)}, []string{"甲", "乙"}},
		{"limit zero is all", nil, []store.ListOption{store.Limit(0)}, names},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.List(ctx, tt.filter, tt.opts...)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if got == nil {
				t.Fatal("list returned a nil slice")
			}
			if fmt.Sprint(namesOf(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("list = %v, want %v", namesOf(got), tt.want)
			}
		})
	}

	u, err := c.LoadBy(ctx, store.Filter{"age": 20})
	if err != nil || u.Name != "甲" {
		t.Fatalf("load by age 20 = %q, %v; want the first, 甲", u.Name, err)
	}
	if n, err := c.Count(ctx, store.Filter{"age": 20}); err != nil || n != 2 {
		t.Fatalf("count age 20 = %d, %v; want 2", n, err)
	}
}

func TestListInvalidInput(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	if _, err := c.Save(ctx, user{Name: "甲"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter store.Filter
		opts   []store.ListOption
	}{
		{"unknown operator", store.Filter{"name": store.Filter{"$nosuch": 1}}, nil},
		{"unknown top-level operator", store.Filter{"$nosuch": 1}, nil},
		{"negative limit", nil, []store.ListOption{store.Limit(-1)}},
		{"empty sort field", nil, []store.ListOption{store.Sort("")}},
		{"dollar sort field", nil, []store.ListOption{store.Sort("$name")}},
		{"unmarshallable value", store.Filter{"name": make(chan int)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.List(ctx, tt.filter, tt.opts...)
			checkCode(t, "list", err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
		})
	}
}

func TestRemove(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	a, err := c.Save(ctx, user{Name: "甲"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Save(ctx, user{Name: "乙"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, a.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	_, err = c.Load(ctx, a.ID)
	checkCode(t, "load removed", err, patbus.CodeNotFound, store.ErrNotFound)
	err = c.Remove(ctx, a.ID)
	checkCode(t, "remove twice", err, patbus.CodeNotFound, store.ErrNotFound)
	if got, err := c.Load(ctx, b.ID); err != nil || got.Name != "乙" {
		t.Fatalf("the other entity: %+v, %v", got, err)
	}
}

func TestUTF8(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	names := []string{"甲", "乙", "丙", "Zoë", "😀 emoji", "עברית", "a\u0301"}
	for _, n := range names {
		u, err := c.Save(ctx, user{Name: n, Password: []byte{0, 0xff, 0xfe}})
		if err != nil {
			t.Fatalf("save %q: %v", n, err)
		}
		got, err := c.Load(ctx, u.ID)
		if err != nil {
			t.Fatalf("load %q: %v", n, err)
		}
		if got.Name != n || !bytes.Equal(got.Password, []byte{0, 0xff, 0xfe}) {
			t.Fatalf("stored %q %x, loaded %q %x", n, []byte{0, 0xff, 0xfe}, got.Name, got.Password)
		}
		byName, err := c.LoadBy(ctx, store.Filter{"name": n})
		if err != nil || byName.ID != u.ID {
			t.Fatalf("load by name %q = %q, %v; want %q", n, byName.ID, err, u.ID)
		}
	}
}

func TestConcurrentSaves(t *testing.T) {
	c := users(t)
	ctx := ctxFor(t)
	if err := c.EnsureIndex(ctx, store.Index{Keys: []string{"name"}, Unique: true}); err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 50, 10
	ids := make([][]string, goroutines)
	errs := make(chan error, goroutines*each)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				u, err := c.Save(ctx, user{Name: fmt.Sprintf("用户-%d-%d", g, i), Age: g})
				if err != nil {
					errs <- err
					return
				}
				ids[g] = append(ids[g], u.ID)
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("save: %v", err)
	}
	seen := map[string]bool{}
	for _, l := range ids {
		for _, id := range l {
			if seen[id] {
				t.Fatalf("id %s given twice", id)
			}
			seen[id] = true
		}
	}
	all, err := c.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != goroutines*each || len(seen) != goroutines*each {
		t.Fatalf("stored %d, ids %d; want %d of each", len(all), len(seen), goroutines*each)
	}
	names := map[string]bool{}
	for _, u := range all {
		if !seen[u.ID] || names[u.Name] {
			t.Fatalf("stored entity %+v is unknown or twice", u)
		}
		names[u.Name] = true
	}

	// Concurrent updates of one entity: every one succeeds, and the
	// entity ends with the age of one of them.
	target := all[0]
	wg = sync.WaitGroup{}
	upd := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			u := target
			u.Age = 1000 + g
			_, err := c.Save(ctx, u)
			upd <- err
		}(g)
	}
	wg.Wait()
	close(upd)
	for err := range upd {
		if err != nil {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	got, err := c.Load(ctx, target.ID)
	if err != nil || got.Age < 1000 || got.Age >= 1000+goroutines || !got.Created.Equal(target.Created) {
		t.Fatalf("after concurrent updates: %+v, %v", got, err)
	}
}

func TestCanceledContext(t *testing.T) {
	c := users(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Save(ctx, user{Name: "甲"})
	checkCode(t, "save", err, patbus.CodeCanceled, context.Canceled)
	_, err = c.List(ctx, nil)
	checkCode(t, "list", err, patbus.CodeCanceled, context.Canceled)
}

func TestClosedDB(t *testing.T) {
	ctx := ctxFor(t)
	// Nothing is written, so no database is left to drop.
	db, err := store.Open(ctx, testenv.MongoURI(t), "patbus_test_"+randHex(6))
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.NewCollection[user](db, "users")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := db.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err = c.Save(ctx, user{Name: "甲"})
	checkCode(t, "save after close", err, patbus.CodeClosed, patbus.ErrClosed)
	err = db.Ping(ctx)
	checkCode(t, "ping after close", err, patbus.CodeClosed, patbus.ErrClosed)
}

// checkCode fails the test unless err has the code and matches target
// with errors.Is.
func checkCode(t *testing.T, what string, err error, code string, target error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %q", what, code)
	}
	if got := patbus.Code(err); got != code {
		t.Errorf("%s: code %q, want %q (error: %v)", what, got, code, err)
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v does not match %v", what, err, target)
	}
}

func namesOf(us []user) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.Name)
	}
	return out
}
