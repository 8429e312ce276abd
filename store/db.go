package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/patbus/patbus"
)

// DB is a connection pool to a MongoDB server and one database in it. It
// is safe for concurrent use; make one per process and database, and close
// it when done. Collections and Dedups made from it stop working when it
// is closed.
type DB struct {
	client *mongo.Client
	db     *mongo.Database
	name   string
	cfg    config
	log    *slog.Logger

	// updates, when the server is FerretDB, serializes the updates of
	// one entity made through this DB (see updateLocks).
	updates *updateLocks

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the MongoDB server at uri (a mongodb:// or
// mongodb+srv:// connection string) and returns the database named
// database in it. It waits, within ctx and the dial timeout, until the
// server answers a ping, so that a wrong address fails here rather than at
// the first operation; such a failure has the code "unavailable" or, when
// ctx ended first, "timeout" or "canceled" (see patbus.Code). A malformed
// uri, an invalid database name or an invalid option gives an error that
// wraps patbus.ErrInvalidConfig.
func Open(ctx context.Context, uri, database string, opts ...Option) (*DB, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := checkDatabaseName(database); err != nil {
		return nil, err
	}
	co := options.Client().ApplyURI(uri).
		SetAppName(cfg.appName).
		SetTimeout(cfg.timeout).
		SetConnectTimeout(cfg.dialTimeout).
		SetServerSelectionTimeout(cfg.dialTimeout)
	if err := co.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w: connection string: %v", patbus.ErrInvalidConfig, err)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store: %w: %v", patbus.ErrInvalidConfig, err)
	}
	d := &DB{client: client, db: client.Database(database), name: database, cfg: cfg, log: cfg.logger}
	if err := d.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if d.isFerretDB(ctx) {
		d.updates = newUpdateLocks()
	}
	d.log.Debug("store: opened", "database", database, "hosts", co.Hosts, "serial_updates", d.updates != nil)
	return d, nil
}

// isFerretDB reports whether the server says it is FerretDB: its
// buildInfo has a ferretdbVersion. A server that does not answer
// buildInfo is taken for MongoDB.
func (d *DB) isFerretDB(ctx context.Context) bool {
	var info bson.Raw
	if err := d.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		d.log.Debug("store: buildInfo", "err", err)
		return false
	}
	_, err := info.LookupErr("ferretdbVersion")
	return err == nil
}

// checkDatabaseName refuses names MongoDB does not take.
func checkDatabaseName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("store: %w: empty database name", patbus.ErrInvalidConfig)
	case len(name) > 63:
		return fmt.Errorf("store: %w: database name %q is longer than 63 bytes", patbus.ErrInvalidConfig, name)
	case strings.ContainsAny(name, "/\\. \"$*<>:|?\x00"):
		return fmt.Errorf("store: %w: database name %q holds a character MongoDB does not allow", patbus.ErrInvalidConfig, name)
	}
	return nil
}

// Name returns the name of the database.
func (d *DB) Name() string { return d.name }

// Ping asks the server whether it is there. It returns nil when the
// server answers within ctx and the dial timeout; otherwise an error
// whose code is "unavailable", "timeout" or "canceled", or "closed" after
// Close.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.client.Ping(ctx, readpref.Primary()); err != nil {
		return classify(ctx, "ping", d.name, err)
	}
	return nil
}

// Drop deletes the database with every collection in it. It is meant for
// tests and tools; the DB stays usable and the database is made again by
// the next write.
func (d *DB) Drop(ctx context.Context) error {
	if err := d.db.Drop(ctx); err != nil {
		return classify(ctx, "drop", d.name, err)
	}
	return nil
}

// Close closes every connection of the pool, waiting within ctx for
// operations in flight to end. Operations after Close fail with an error
// whose code is "closed" (errors.Is patbus.ErrClosed). Close is
// idempotent; later calls return the first call's result.
func (d *DB) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		err := d.client.Disconnect(ctx)
		if err != nil && !errors.Is(err, mongo.ErrClientDisconnected) {
			d.closeErr = fmt.Errorf("store: close: %w", err)
		}
		d.log.Debug("store: closed", "database", d.name)
	})
	return d.closeErr
}
