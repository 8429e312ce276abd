package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// opTimeout bounds each test's operations.
const opTimeout = 30 * time.Second

// user is the kind of entity the reference system's user module keeps.
type user struct {
	store.Entity `bson:",inline"`
	Name         string `bson:"name" json:"name"`
	Email        string `bson:"email,omitempty" json:"email,omitempty"`
	Age          int    `bson:"age" json:"age"`
	Password     []byte `bson:"password,omitempty" json:"-"`
}

// ctxFor returns a context that ends with the test or after opTimeout.
func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// openDB opens a database of its own for the test on the server at
// MONGODB_URI, and drops and closes it in t.Cleanup.
func openDB(t testing.TB, opts ...store.Option) *store.DB {
	t.Helper()
	uri := testenv.MongoURI(t)
	ctx := ctxFor(t)
	db, err := store.Open(ctx, uri, "patbus_test_"+randHex(6), opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Logf("drop %s: %v", db.Name(), err)
		}
		if err := db.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

// users returns the "users" collection of a new test database.
func users(t testing.TB) *store.Collection[user] {
	t.Helper()
	c, err := store.NewCollection[user](openDB(t), "users")
	if err != nil {
		t.Fatalf("collection: %v", err)
	}
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
