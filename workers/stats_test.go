package workers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/workers"
)

// waitStats polls the queue's statistics until cond holds.
func waitStats(t *testing.T, q *workers.Queue, what string, cond func(workers.Stats) bool) workers.Stats {
	t.Helper()
	ctx := testCtx(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		if cond(st) {
			return st
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last %+v", what, st)
		}
	}
}

func TestStatsCountEachQueue(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		// Long delays: retried items stay in their retry queue.
		q := newQueue(t, b, workers.WithMaxAttempts(3), workers.WithBackoff(time.Hour, 2*time.Hour), workers.WithConcurrency(2))
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rq := q.RetryQueues()
		if st.Queue != q.Name() || st.Ready != 0 || st.Consumers != 0 || st.Retrying != 0 || st.Dead != 0 || len(st.Retry) != 2 ||
			st.Retry[0] != (workers.RetryStats{Queue: rq[0], Delay: time.Hour}) ||
			st.Retry[1] != (workers.RetryStats{Queue: rq[1], Delay: 2 * time.Hour}) {
			t.Fatalf("empty queue: %+v", st)
		}
		for _, id := range []string{"retry-1", "retry-2", "poison", "hold-1", "hold-2", "wait"} {
			if err := q.Enqueue(ctx, task{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		waitStats(t, q, "six ready items", func(s workers.Stats) bool { return s.Ready == 6 })

		// Two handlers: the failing items go to the first retry queue, the
		// poison to the dead letters; then both handlers hold an item, and
		// one item waits.
		release := make(chan struct{})
		defer close(release)
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			switch v.ID {
			case "retry-1", "retry-2":
				return errors.New("later")
			case "poison":
				return workers.Poison(errors.New("never"))
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return ctx.Err()
		})); err != nil {
			t.Fatal(err)
		}
		st = waitStats(t, q, "retries, a dead letter and held items", func(s workers.Stats) bool {
			return s.Retrying == 2 && s.Dead == 1 && s.Ready == 1 && s.Consumers == 1
		})
		if st.Retry[0].Ready != 2 || st.Retry[1].Ready != 0 {
			t.Errorf("retry queues %+v", st.Retry)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		// After the worker: the held items are back, no consumer is left.
		st = waitStats(t, q, "the held items back", func(s workers.Stats) bool { return s.Ready == 3 && s.Consumers == 0 })
		if st.Retrying != 2 || st.Dead != 1 {
			t.Errorf("after Close: %+v", st)
		}

		// A queue deleted under the Queue.
		if err := b.DeleteQueue(ctx, q.DeadLetterQueue()); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Stats(ctx); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("Stats with the dead-letter queue deleted: %v, want bus.ErrNotFound", err)
		}
	})
}

// noInspect is a broker that cannot inspect queues.
type noInspect struct{ bus.Broker }

func TestStatsNeedAQueueInspector(t *testing.T) {
	b, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q, err := workers.New(context.Background(), noInspect{b}, "stats.plain")
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.Stats(context.Background())
	if !errors.Is(err, workers.ErrInvalidConfig) || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Stats on a broker without InspectQueue: %v", err)
	}
}
