package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/store"
	"github.com/patbus/patbus/workers"
)

func newDedup(t *testing.T, ttl time.Duration) *store.Dedup {
	t.Helper()
	d, err := store.NewDedup(ctxFor(t), openDB(t), "processed", ttl)
	if err != nil {
		t.Fatalf("new dedup: %v", err)
	}
	return d
}

func TestDedupSeenHasForget(t *testing.T) {
	d := newDedup(t, time.Hour)
	ctx := ctxFor(t)
	const id = "msg-甲-1"

	if seen, err := d.Has(ctx, id); err != nil || seen {
		t.Fatalf("seen before mark = %v, %v; want false", seen, err)
	}
	if seen, err := d.Seen(ctx, id); err != nil || seen {
		t.Fatalf("first mark = %v, %v; want false", seen, err)
	}
	if seen, err := d.Seen(ctx, id); err != nil || !seen {
		t.Fatalf("second mark = %v, %v; want true", seen, err)
	}
	if seen, err := d.Has(ctx, id); err != nil || !seen {
		t.Fatalf("seen after mark = %v, %v; want true", seen, err)
	}
	if seen, err := d.Has(ctx, "msg-乙-2"); err != nil || seen {
		t.Fatalf("another id seen = %v, %v; want false", seen, err)
	}

	if err := d.Forget(ctx, id); err != nil {
		t.Fatalf("forget: %v", err)
	}
	if err := d.Forget(ctx, id); err != nil {
		t.Fatalf("forget twice: %v", err)
	}
	if seen, err := d.Has(ctx, id); err != nil || seen {
		t.Fatalf("seen after forget = %v, %v; want false", seen, err)
	}
	if seen, err := d.Seen(ctx, id); err != nil || seen {
		t.Fatalf("mark after forget = %v, %v; want false", seen, err)
	}
}

func TestDedupReopens(t *testing.T) {
	db := openDB(t)
	ctx := ctxFor(t)
	a, err := store.NewDedup(ctx, db, "processed", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if seen, err := a.Seen(ctx, "m1"); err != nil || seen {
		t.Fatalf("mark = %v, %v", seen, err)
	}
	// A second Dedup on the collection (another process, a restart)
	// finds its index there and its records.
	b, err := store.NewDedup(ctx, db, "processed", time.Hour)
	if err != nil {
		t.Fatalf("second NewDedup: %v", err)
	}
	if seen, err := b.Seen(ctx, "m1"); err != nil || !seen {
		t.Fatalf("mark through the second dedup = %v, %v; want true", seen, err)
	}
}

func TestDedupConcurrentSeens(t *testing.T) {
	d := newDedup(t, time.Hour)
	ctx := ctxFor(t)
	const ids, perID = 20, 10
	var unseen [ids]int
	var mu sync.Mutex
	errs := make(chan error, ids*perID)
	var wg sync.WaitGroup
	for i := 0; i < ids; i++ {
		for j := 0; j < perID; j++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				seen, err := d.Seen(ctx, fmt.Sprintf("msg-%d", i))
				if err != nil {
					errs <- err
					return
				}
				if !seen {
					mu.Lock()
					unseen[i]++
					mu.Unlock()
				}
			}(i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("mark: %v", err)
	}
	for i, n := range unseen {
		if n != 1 {
			t.Errorf("msg-%d: %d of %d concurrent marks reported it unseen, want exactly 1", i, n, perID)
		}
	}
}

// record reads a Dedup's records; only Count is used, which decodes
// nothing.
type record struct {
	store.Entity `bson:",inline"`
}

func TestDedupExpiry(t *testing.T) {
	db := openDB(t)
	ctx := ctxFor(t)
	d, err := store.NewDedup(ctx, db, "processed", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	records, err := store.NewCollection[record](db, "processed")
	if err != nil {
		t.Fatal(err)
	}
	if d.TTL() != time.Second {
		t.Fatalf("TTL = %v", d.TTL())
	}
	if seen, err := d.Seen(ctx, "old"); err != nil || seen {
		t.Fatalf("mark = %v, %v", seen, err)
	}
	waitUnseen(t, d, "old")
	// The expired record is taken over once, by one of the Seens at once.
	const marks = 8
	var wg sync.WaitGroup
	results := make([]bool, marks)
	errs := make([]error, marks)
	for i := range marks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = d.Seen(ctx, "old")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("marks after expiry: %v", err)
	}
	if unseen := slices.Index(results, false); unseen < 0 || slices.Contains(results[unseen+1:], false) {
		t.Fatalf("marks after expiry said seen = %v; want exactly one false", results)
	}
	if seen, err := d.Seen(ctx, "old"); err != nil || !seen {
		t.Fatalf("mark after the takeover = %v, %v; want true", seen, err)
	}

	// Expired records are deleted (by a TTL index, by Seen's own pruning
	// where the server has none, or by Prune), fresh ones kept.
	if _, err := d.Seen(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	waitUnseen(t, d, "old")
	waitUnseen(t, d, "other")
	if _, err := d.Seen(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prune(ctx); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if n, err := records.Count(ctx, nil); err != nil || n != 1 {
		t.Fatalf("after pruning %d records are kept (%v), want 1", n, err)
	}
	if seen, err := d.Has(ctx, "fresh"); err != nil || !seen {
		t.Fatalf("fresh record after prune: seen = %v, %v", seen, err)
	}
}

// waitUnseen waits until id's record has expired.
func waitUnseen(t *testing.T, d *store.Dedup, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		seen, err := d.Has(ctxFor(t), id)
		if err != nil {
			t.Fatalf("seen: %v", err)
		}
		if !seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still seen 10s after a mark with a ttl of %v", id, d.TTL())
		}
		<-tick.C
	}
}

func TestDedupInvalidID(t *testing.T) {
	d := newDedup(t, time.Hour)
	ctx := ctxFor(t)
	for _, id := range []string{"", strings.Repeat("x", store.MaxDedupIDLength+1)} {
		_, err := d.Seen(ctx, id)
		checkCode(t, "mark", err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
		_, err = d.Has(ctx, id)
		checkCode(t, "seen", err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
		err = d.Forget(ctx, id)
		checkCode(t, "forget", err, patbus.CodeInvalidInput, patbus.ErrInvalidInput)
	}
	long := strings.Repeat("é", store.MaxDedupIDLength/2)
	if seen, err := d.Seen(ctx, long); err != nil || seen {
		t.Fatalf("mark of a %d-byte id = %v, %v", len(long), seen, err)
	}
}

func TestNewDedupRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	_, err := store.NewDedup(ctx, nil, "", time.Millisecond)
	if !errors.Is(err, patbus.ErrInvalidConfig) {
		t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
	}
	for _, want := range []string{"ttl", "empty collection name", "nil DB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// The MongoDB record of processed ids is a workers.SeenStore: the
// idempotency middleware of the work queues takes it as it is.
var _ workers.SeenStore = (*store.Dedup)(nil)
