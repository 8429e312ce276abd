package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An update waiting for another update of its entity gives up when its
// context ends, with the context's error; it goes on once the other ends.
func TestUpdateLocksHonourTheContext(t *testing.T) {
	l := newUpdateLocks()
	unlock, err := l.lock(context.Background(), "update", "users", "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, "update", "users", "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second lock of one entity: %v, want the context's deadline", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := l.lock(context.Background(), "update", "users", "a")
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("the lock after the unlock: %v", err)
	}
}
