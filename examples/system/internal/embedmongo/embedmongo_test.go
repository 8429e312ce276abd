package embedmongo_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/examples/system/internal/embedmongo"
	"github.com/patbus/patbus/store"
)

type note struct {
	store.Entity `bson:",inline"`
	Text         string `bson:"text"`
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, cfg embedmongo.Config) *embedmongo.Server {
	t.Helper()
	s, err := embedmongo.Start(ctxFor(t), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func TestServesTheStore(t *testing.T) {
	s := start(t, embedmongo.Config{})
	if !strings.HasPrefix(s.URI(), "mongodb://127.0.0.1:") {
		t.Fatalf("URI %q is not on 127.0.0.1", s.URI())
	}
	ctx := ctxFor(t)
	db, err := store.Open(ctx, s.URI(), "embedtest")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close(ctx)
	notes, err := store.NewCollection[note](db, "notes")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := notes.Save(ctx, note{Text: "甲乙丙"})
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	got, err := notes.Load(ctx, saved.ID)
	if err != nil || got.Text != "甲乙丙" {
		t.Fatalf("load = %+v, %v", got, err)
	}

	dir := s.Dir()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the temporary data directory %s is still there after Stop (%v)", dir, err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", s.Addr())
	}
}

func TestDataDirOutlivesTheServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := ctxFor(t)

	s := start(t, embedmongo.Config{Dir: dir})
	db, err := store.Open(ctx, s.URI(), "embedtest")
	if err != nil {
		t.Fatal(err)
	}
	notes, err := store.NewCollection[note](db, "notes")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := notes.Save(ctx, note{Text: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	db.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	s = start(t, embedmongo.Config{Dir: dir})
	db, err = store.Open(ctx, s.URI(), "embedtest")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	notes, err = store.NewCollection[note](db, "notes")
	if err != nil {
		t.Fatal(err)
	}
	got, err := notes.Load(ctx, saved.ID)
	if err != nil || got.Text != "kept" {
		t.Fatalf("after a restart on the same directory: %+v, %v", got, err)
	}
}

func TestStartRefuses(t *testing.T) {
	busy := start(t, embedmongo.Config{})
	tests := []struct {
		name, addr, want string
	}{
		{"non-loopback address", "0.0.0.0:0", "loopback"},
		{"no port", "127.0.0.1", "address"},
		{"port in use", busy.Addr(), "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := embedmongo.Start(ctxFor(t), embedmongo.Config{Addr: tt.addr})
			if err == nil {
				s.Stop()
				t.Fatalf("start on %q succeeded", tt.addr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
