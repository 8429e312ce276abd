// Package embedmongo runs a MongoDB-compatible server inside the process:
// FerretDB (github.com/FerretDB/FerretDB/ferretdb) with its SQLite handler,
// listening on the loopback interface. The reference system and the tests
// use it where no MongoDB server is installed; any MongoDB driver, and
// patbus/store, talk to it as to MongoDB.
//
// # Data
//
// The data lives in SQLite files, one per database, in a directory: the
// one given in Config.Dir (created if missing, kept after Stop), or a new
// temporary directory that Stop removes.
//
// # What FerretDB lacks
//
// FerretDB 1.x speaks most of the MongoDB wire protocol but not all of it.
// Index options such as expireAfterSeconds (TTL indexes), partial filters
// and collations are refused with the code NotImplemented (238);
// transactions, change streams and $lookup are not there. Its SQLite
// handler reports an update (update, findAndModify) that breaks a unique
// index as an InternalError carrying SQLite's "UNIQUE constraint failed"
// instead of MongoDB's duplicate key error (11000), which it does give for
// inserts; and an update reads the document and writes it back in two
// steps, so concurrent updates of one document are not isolated as in
// MongoDB. patbus/store handles all three (a Dedup prunes expired records
// itself; such an update is still a "conflict"; a DB on FerretDB
// serializes the updates of one entity made through it, which isolates
// them within one process).
//
// # Module
//
// FerretDB and its dependencies (SQLite in Go, PostgreSQL and MySQL
// drivers, Prometheus, OpenTelemetry) are many; this package lives in the
// module of the reference system (examples/system), never in the library's.
package embedmongo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"

	"github.com/patbus/patbus/internal/logx"
)

// DefaultAddr is where a server listens when Config.Addr is empty: the
// loopback interface, on a port the system chooses.
const DefaultAddr = "127.0.0.1:0"

// Config says where a Server listens and keeps its data. The zero value
// is valid: a free port on 127.0.0.1, a temporary directory, no logs.
type Config struct {
	// Addr is the TCP address to listen on, host:port. Empty means
	// DefaultAddr. The host must be a loopback address or "localhost".
	Addr string
	// Dir is the directory for the SQLite files. Empty means a new
	// temporary directory, removed by Stop; a given directory is created
	// if missing and kept.
	Dir string
	// Logger receives FerretDB's logs. Nil means discard.
	Logger *slog.Logger
}

// Server is a running FerretDB. Its methods are safe for concurrent use.
type Server struct {
	uri     string
	addr    string
	dir     string
	tempDir bool

	cancel context.CancelFunc
	done   chan struct{} // closed when FerretDB's Run returns

	stopOnce sync.Once
	stopErr  error
}

// newMu serialises ferretdb.New, which writes to FerretDB's package-level
// build information (version.Get().Package); two servers started at once
// would otherwise race on it.
var newMu sync.Mutex

// Start starts a server as cfg says and returns once it listens: a client
// may connect at once. ctx bounds the start only: the server runs until
// Stop.
// Start fails when the address is not a loopback address or is in use,
// or when the data directory cannot be made.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedmongo: start: %w", err)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}

	s := &Server{dir: cfg.Dir, done: make(chan struct{})}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "patbus-embedmongo-")
		if err != nil {
			return nil, fmt.Errorf("embedmongo: data directory: %w", err)
		}
		s.dir, s.tempDir = d, true
	} else {
		d, err := filepath.Abs(s.dir)
		if err != nil {
			return nil, fmt.Errorf("embedmongo: data directory: %w", err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("embedmongo: data directory: %w", err)
		}
		s.dir = d
	}

	// The SQLite handler wants a file: URL of a directory, ending in "/".
	dirURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(s.dir) + "/"}).String()
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    logx.OrDiscard(cfg.Logger),
		Handler:   "sqlite",
		SQLiteURL: dirURL,
	})
	newMu.Unlock()
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("embedmongo: start FerretDB on %s: %w", addr, err)
	}

	// ferretdb.New has bound the listener already, so the URI is known
	// and connections wait in the backlog until Run accepts them.
	s.uri = f.MongoDBURI()
	if u, err := url.Parse(s.uri); err == nil {
		s.addr = u.Host
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		_ = f.Run(runCtx)
	}()
	return s, nil
}

// checkLoopback refuses addresses other than loopback ones: the server
// has no authentication and must not be reachable from elsewhere.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("embedmongo: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("embedmongo: address %q: only loopback addresses are allowed", addr)
}

// URI returns the server's MongoDB connection string, such as
// mongodb://127.0.0.1:40123/.
func (s *Server) URI() string { return s.uri }

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// Dir returns the directory that holds the server's data.
func (s *Server) Dir() string { return s.dir }

// Done returns a channel that is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop closes the listener and every connection, waits until FerretDB has
// closed its SQLite databases, and removes the data directory if Start
// made it. It is idempotent; later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
		s.stopErr = s.removeTemp()
	})
	return s.stopErr
}

func (s *Server) removeTemp() error {
	if !s.tempDir {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("embedmongo: remove data directory: %w", err)
	}
	return nil
}
