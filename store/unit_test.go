package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/store"
)

func TestNewIDIsValidAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := store.NewID()
		if !store.ValidID(id) {
			t.Fatalf("NewID gave %q, which ValidID refuses", id)
		}
		if seen[id] {
			t.Fatalf("NewID gave %q twice", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"5f1d7a3b2c4e6f8091a2b3c4", true},
		{"000000000000000000000000", true},
		{"", false},
		{"5f1d7a3b2c4e6f8091a2b3c", false},   // 23 digits
		{"5f1d7a3b2c4e6f8091a2b3c4a", false}, // 25 digits
		{"5F1D7A3B2C4E6F8091A2B3C4", false},  // upper case
		{"5f1d7a3b2c4e6f8091a2b3cg", false},
		{"5f1d7a3b-c4e-6f8091a2b3c", false},
		{"甲乙丙丁戊己庚辛", false}, // 24 bytes of UTF-8
	}
	for _, tt := range tests {
		if got := store.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name, uri, db string
		opts          []store.Option
	}{
		{"not a connection string", "http://127.0.0.1:27017/", "db", nil},
		{"empty connection string", "", "db", nil},
		{"empty database", "mongodb://127.0.0.1:1/", "", nil},
		{"database with a dot", "mongodb://127.0.0.1:1/", "a.b", nil},
		{"database with a slash", "mongodb://127.0.0.1:1/", "a/b", nil},
		{"zero timeout", "mongodb://127.0.0.1:1/", "db", []store.Option{store.WithTimeout(0)}},
		{"negative dial timeout", "mongodb://127.0.0.1:1/", "db", []store.Option{store.WithDialTimeout(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := store.Open(ctx, tt.uri, tt.db, tt.opts...)
			if err == nil {
				db.Close(ctx)
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, patbus.ErrInvalidConfig) || patbus.Code(err) != patbus.CodeInvalidConfig {
				t.Fatalf("error %v (code %q) does not wrap ErrInvalidConfig", err, patbus.Code(err))
			}
		})
	}
}

func TestOpenReportsEveryBadOption(t *testing.T) {
	_, err := store.Open(context.Background(), "mongodb://127.0.0.1:1/", "db", store.WithTimeout(0), store.WithDialTimeout(0))
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, want := range []string{"timeout must be positive", "dial timeout must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

type noEntity struct {
	Name string `bson:"name"`
}

type notInline struct {
	store.Entity
	Name string `bson:"name"`
}

type pointerEntity struct {
	*store.Entity `bson:",inline"`
}

func TestNewCollectionChecks(t *testing.T) {
	// The checks come before the DB's: a nil DB fails them all.
	tests := []struct {
		name string
		new  func() error
		want string
	}{
		{"no entity", func() error { _, err := store.NewCollection[noEntity](nil, "c"); return err }, "does not embed store.Entity"},
		{"entity not inline", func() error { _, err := store.NewCollection[notInline](nil, "c"); return err }, "inline"},
		{"pointer to entity", func() error { _, err := store.NewCollection[pointerEntity](nil, "c"); return err }, ""},
		{"not a struct", func() error { _, err := store.NewCollection[*user](nil, "c"); return err }, "not a struct"},
		{"empty name", func() error { _, err := store.NewCollection[user](nil, ""); return err }, "empty collection name"},
		{"dollar in name", func() error { _, err := store.NewCollection[user](nil, "a$b"); return err }, "'$'"},
		{"system name", func() error { _, err := store.NewCollection[user](nil, "system.users"); return err }, "reserved"},
		{"nil DB", func() error { _, err := store.NewCollection[user](nil, "users"); return err }, "nil DB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.new()
			if !errors.Is(err, patbus.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
