package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/store"
)

// User is an entity as the reference system's user module keeps it.
type User struct {
	store.Entity `bson:",inline"`
	Name         string `bson:"name" json:"name"`
	Password     []byte `bson:"password" json:"-"` // a bcrypt hash
}

// The user module's actions on a collection of users: create, list, load,
// edit, delete, and a unique name. It needs a server: MONGODB_URI.
func ExampleCollection() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := store.Open(ctx, os.Getenv("MONGODB_URI"), "system")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close(context.Background())

	users, err := store.NewCollection[User](db, "users")
	if err != nil {
		log.Fatal(err)
	}
	if err := users.EnsureIndex(ctx, store.Index{Keys: []string{"name"}, Unique: true}); err != nil {
		log.Fatal(err)
	}

	// create
	jia, err := users.Save(ctx, User{Name: "甲"})
	if err != nil {
		log.Fatal(err)
	}
	// a second 甲 is a conflict, which the gateway answers with 409
	_, err = users.Save(ctx, User{Name: "甲"})
	fmt.Println(errors.Is(err, store.ErrConflict), patbus.Code(err))

	// edit
	jia.Name = "乙"
	if jia, err = users.Save(ctx, jia); err != nil {
		log.Fatal(err)
	}
	// list, load by name
	all, err := users.List(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	yi, err := users.LoadBy(ctx, store.Filter{"name": "乙"})
	fmt.Println(len(all), yi.ID == jia.ID, err)

	// delete; a load afterwards is not_found (404)
	if err := users.Remove(ctx, jia.ID); err != nil {
		log.Fatal(err)
	}
	_, err = users.Load(ctx, jia.ID)
	fmt.Println(errors.Is(err, store.ErrNotFound), patbus.Code(err))
}

// A worker marks each message id before it does the work, skips the
// duplicates, and forgets the id when the work failed and will be tried
// again. It needs a server: MONGODB_URI.
func ExampleDedup() {
	ctx := context.Background()
	db, err := store.Open(ctx, os.Getenv("MONGODB_URI"), "system")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close(ctx)
	processed, err := store.NewDedup(ctx, db, "processed", 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}

	handle := func(ctx context.Context, id string, work func() error) error {
		seen, err := processed.Seen(ctx, id)
		if err != nil || seen {
			return err // a duplicate: acknowledge, do nothing
		}
		if err := work(); err != nil {
			// Let the redelivery do the work.
			return errors.Join(err, processed.Forget(ctx, id))
		}
		return nil
	}
	_ = handle
}

func ExampleValidID() {
	fmt.Println(store.ValidID(store.NewID()))
	fmt.Println(store.ValidID("5f1d7a3b2c4e6f8091a2b3c4"))
	fmt.Println(store.ValidID("5F1D7A3B2C4E6F8091A2B3C4"))
	fmt.Println(store.ValidID("42"))
	// Output:
	// true
	// true
	// false
	// false
}
