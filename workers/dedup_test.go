package workers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/workers"
)

func TestMemorySeenRecordsOnce(t *testing.T) {
	ctx := context.Background()
	s := workers.NewMemorySeen(10, time.Minute)
	if has, _ := s.Has(ctx, "a"); has {
		t.Error("Has on an empty store")
	}
	if seen, err := s.Seen(ctx, "a"); seen || err != nil {
		t.Errorf("first Seen: %v %v, want false", seen, err)
	}
	if seen, _ := s.Seen(ctx, "a"); !seen {
		t.Error("second Seen: false, want true")
	}
	if has, _ := s.Has(ctx, "a"); !has {
		t.Error("Has after Seen: false")
	}
	if has, _ := s.Has(ctx, "b"); has {
		t.Error("Has of another id: true")
	}
}

func TestMemorySeenForgetsTheOldestWhenFull(t *testing.T) {
	ctx := context.Background()
	s := workers.NewMemorySeen(3, time.Hour)
	for _, id := range []string{"a", "b", "c", "d"} {
		s.Seen(ctx, id)
	}
	if n := s.Len(); n != 3 {
		t.Errorf("Len %d, want 3", n)
	}
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true} {
		if has, _ := s.Has(ctx, id); has != want {
			t.Errorf("Has(%s) = %v, want %v", id, has, want)
		}
	}
	// Many more ids than capacity: it stays bounded.
	for i := 0; i < 10000; i++ {
		s.Seen(ctx, fmt.Sprint(i))
	}
	if n := s.Len(); n != 3 {
		t.Errorf("Len %d after many ids, want 3", n)
	}
	if has, _ := s.Has(ctx, "9999"); !has {
		t.Error("the newest id is forgotten")
	}
}

func TestMemorySeenExpires(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	s := workers.NewMemorySeen(10, time.Minute)
	workers.SetSeenClock(s, func() time.Time { return now })
	s.Seen(ctx, "a")
	now = now.Add(30 * time.Second)
	s.Seen(ctx, "b")
	now = now.Add(31 * time.Second) // a is 61s old, b 31s
	if has, _ := s.Has(ctx, "a"); has {
		t.Error("a is remembered past its time to live")
	}
	if has, _ := s.Has(ctx, "b"); !has {
		t.Error("b is forgotten before its time to live")
	}
	if n := s.Len(); n != 1 {
		t.Errorf("Len %d, want 1", n)
	}
	if seen, _ := s.Seen(ctx, "a"); seen {
		t.Error("an expired id counts as seen")
	}
	now = now.Add(time.Minute) // b expired, a recorded again exactly a minute ago
	if n := s.Len(); n != 0 {
		t.Errorf("Len %d a time to live later, want 0", n)
	}
}

func TestMemorySeenConcurrentInsertsOnce(t *testing.T) {
	ctx := context.Background()
	s := workers.NewMemorySeen(0, 0) // the defaults
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := map[string]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				id := fmt.Sprint(i)
				if seen, _ := s.Seen(ctx, id); !seen {
					mu.Lock()
					firsts[id]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 500; i++ {
		if n := firsts[fmt.Sprint(i)]; n != 1 {
			t.Fatalf("id %d recorded as new %d times", i, n)
		}
	}
}

// failingStore cannot be read.
type failingStore struct{ workers.SeenStore }

func (failingStore) Has(context.Context, string) (bool, error) {
	return false, errors.New("store down")
}

func TestDedupRunsEachItemOnce(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		store := workers.NewMemorySeen(100, time.Hour)
		// One handler at a time: two copies of one item handled at the same
		// moment would both run (see Dedup).
		opts := []workers.Option{workers.WithConcurrency(1), workers.WithBackoff(5*time.Millisecond, 5*time.Millisecond),
			workers.WithMiddleware(workers.Dedup(store, nil))}
		q := newQueue(t, b, opts...)
		// The same message twice, as a re-sent publish makes it; and an
		// item that fails once.
		for _, id := range []string{"dup", "dup", "flaky"} {
			msg := bus.Message{MessageID: id, Body: []byte(fmt.Sprintf(`{"id":%q}`, id)), Persistent: true}
			if err := bus.PublishAndWait(ctx, b, "", q.Name(), msg); err != nil {
				t.Fatal(err)
			}
		}
		calls := newLedger()
		if err := q.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			n := calls.add(it.ID)
			if it.ID == "flaky" && it.Attempt == 1 {
				return fmt.Errorf("flaky failure %d", n)
			}
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		// The failure is not recorded: its retry runs.
		calls.waitFor(t, "the retry of the flaky item", func() bool { return calls.get("flaky") == 2 })
		waitStats(t, q, "an empty queue", func(s workers.Stats) bool { return s.Ready == 0 && s.Retrying == 0 })
		// A duplicate of a handled item, sent now, is acked unhandled.
		msg := bus.Message{MessageID: "flaky", Body: []byte(`{"id":"flaky"}`), Persistent: true}
		if err := bus.PublishAndWait(ctx, b, "", q.Name(), msg); err != nil {
			t.Fatal(err)
		}
		waitStats(t, q, "the duplicate settled", func(s workers.Stats) bool { return s.Ready == 0 })
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if n := calls.get("dup"); n != 1 {
			t.Errorf("the duplicated item ran %d times, want 1", n)
		}
		if n := calls.get("flaky"); n != 2 {
			t.Errorf("the flaky item ran %d times, want 2 (a failure and its retry)", n)
		}
		for _, id := range []string{"dup", "flaky"} {
			if has, _ := store.Has(ctx, id); !has {
				t.Errorf("%s is not recorded", id)
			}
		}
		if st, err := q.Stats(ctx); err != nil || st.Dead != 0 {
			t.Errorf("stats %+v, %v", st, err)
		}
	})
}

// An item whose handler succeeded but whose worker stopped before the ack
// comes back (Redelivered); Dedup acks it without running the handler.
func TestDedupSkipsAnItemRedeliveredAfterSuccess(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		store := workers.NewMemorySeen(100, time.Hour)
		q := newQueue(t, b)
		if err := q.Enqueue(ctx, task{ID: "once"}); err != nil {
			t.Fatal(err)
		}
		calls := newLedger()
		handler := workers.Typed(func(ctx context.Context, v task) error { calls.add(v.ID); return nil })
		// Outside Dedup: the worker stops after the handler succeeded and
		// before the item is acked.
		succeeded := make(chan struct{})
		stall := func(next patbus.Handler) patbus.Handler {
			return patbus.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				if err := next.Handle(ctx, it); err != nil {
					return err
				}
				close(succeeded)
				<-ctx.Done()
				return ctx.Err()
			})
		}
		first, err := workers.New(ctx, b, q.Name(), workers.WithMiddleware(stall, workers.Dedup(store, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := first.Start(ctx, handler); err != nil {
			t.Fatal(err)
		}
		recv(t, succeeded)
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		seen := make(chan bool, 1)
		watch := func(next patbus.Handler) patbus.Handler {
			return patbus.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				seen <- it.Redelivered
				return next.Handle(ctx, it)
			})
		}
		second, err := workers.New(ctx, b, q.Name(), workers.WithMiddleware(watch, workers.Dedup(store, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		if err := second.Start(ctx, handler); err != nil {
			t.Fatal(err)
		}
		if redelivered := recv(t, seen); !redelivered {
			t.Error("the item came back with Redelivered false")
		}
		waitStats(t, q, "the redelivered item settled", func(s workers.Stats) bool { return s.Ready == 0 })
		if err := second.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if n := calls.get("once"); n != 1 {
			t.Errorf("handled %d times, want 1", n)
		}
	})
}

func TestDedupFailsItemsWhenTheStoreCannotSay(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithMaxAttempts(1), workers.WithMiddleware(workers.Dedup(failingStore{}, nil)))
		if err := q.Enqueue(ctx, task{ID: "x"}); err != nil {
			t.Fatal(err)
		}
		calls := newLedger()
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error { calls.add(v.ID); return nil })); err != nil {
			t.Fatal(err)
		}
		d := drain(t, b, q.DeadLetterQueue(), 1)[0]
		if got, _ := header(d, workers.HeaderError).(string); !strings.Contains(got, "store down") {
			t.Errorf("error header %q", got)
		}
		if n := calls.get("x"); n != 0 {
			t.Errorf("the handler ran %d times", n)
		}
	})
}
