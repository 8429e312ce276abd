package systest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/examples/system/internal/embedmongo"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/store"
)

// MongoURI returns MONGODB_URI, or the URI of an embedded FerretDB
// started for t and stopped in t.Cleanup.
func MongoURI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		return uri
	}
	return Embedded(t)
}

// Embedded starts an embedded FerretDB for t, stopped in t.Cleanup, and
// returns its URI: for tests that stop the server.
func Embedded(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedmongo.Start(ctx, embedmongo.Config{})
	if err != nil {
		t.Fatalf("systest: start an embedded FerretDB: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.URI()
}

// Name returns prefix followed by 8 random hexadecimal digits: a name of
// a database, a namespace or a user that no other test run has.
func Name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// DB opens a new database, with a name of its own, on MongoURI's server;
// t.Cleanup drops it and closes the connection.
func DB(t testing.TB) (*store.DB, string) {
	t.Helper()
	uri := MongoURI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := Name("patbus_test_")
	db, err := store.Open(ctx, uri, name)
	if err != nil {
		t.Fatalf("systest: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Logf("systest: drop %s: %v", name, err)
		}
		_ = db.Close(ctx)
	})
	return db, uri
}

// CallQueue sends body to queue on b as a client of RabbitMQ's RPC
// tutorial does, on a reply queue of its own, and returns the reply's
// body; it fails the test when no reply comes within ctx.
func CallQueue(t testing.TB, ctx context.Context, b bus.Broker, queue, body string) string {
	t.Helper()
	c, err := rpc.NewClient(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Call(ctx, rpc.Request{Key: queue, Body: []byte(body)})
	if err != nil {
		t.Fatalf("RPC %s on %s: %v", body, queue, err)
	}
	return string(rep.Body)
}
