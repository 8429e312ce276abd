package workers_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/workers"
)

// TestHundredThousandItemsSurviveAWorkerCrash sends 100,000 persistent items
// through 4 workers on RabbitMQ, each with its own connection. Halfway, one
// worker's handlers hold their items and its connection is closed under
// them, so that nothing they hold is acked. Afterwards every item has been
// handled at least once, and the duplicates are no more than what the
// stopped worker held (its prefetch).
func TestHundredThousandItemsSurviveAWorkerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 items: not in -short mode")
	}
	const (
		n           = 100_000
		nWorkers    = 4
		prefetch    = 200
		concurrency = 8
		victim      = 0
	)
	deadline := time.Now().Add(170 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	producer := dialRabbit(t)
	q, err := workers.New(ctx, producer, queueName(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), wait)
		defer dcancel()
		_ = q.Delete(dctx)
	})

	counts := make([]atomic.Int32, n)
	var distinct, total atomic.Int64
	allSeen := make(chan struct{})
	var allOnce sync.Once
	record := func(body []byte) error {
		i, err := strconv.Atoi(string(body))
		if err != nil || i < 0 || i >= n {
			return workers.Poison(errors.New("bad item " + string(body)))
		}
		total.Add(1)
		if counts[i].Add(1) == 1 {
			if distinct.Add(1) == n {
				allOnce.Do(func() { close(allSeen) })
			}
		}
		return nil
	}

	// The victim's handlers hold their items once half the work is done.
	release := make(chan struct{})
	held := make(chan struct{}, prefetch)
	var holding atomic.Bool

	brokers := make([]bus.Broker, nWorkers)
	queues := make([]*workers.Queue, nWorkers)
	for w := 0; w < nWorkers; w++ {
		brokers[w] = dialRabbit(t)
		wq, err := workers.New(ctx, brokers[w], q.Name(), workers.WithPrefetch(prefetch), workers.WithConcurrency(concurrency))
		if err != nil {
			t.Fatal(err)
		}
		queues[w] = wq
		t.Cleanup(func() { _ = wq.Close() })
		var h workers.Handler = workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			return record(it.Body)
		})
		if w == victim {
			h = workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				if holding.Load() || distinct.Load() >= n/2 {
					holding.Store(true)
					err := record(it.Body)
					held <- struct{}{}
					<-release
					return err
				}
				return record(it.Body)
			})
		}
		if err := wq.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}

	// Produce while the workers run, in confirmed batches.
	produced := make(chan error, 1)
	go func() {
		const batch = 2000
		items := make([]any, 0, batch)
		for i := 0; i < n; i++ {
			items = append(items, []byte(strconv.Itoa(i)))
			if len(items) == batch || i == n-1 {
				if err := q.EnqueueBatch(ctx, items...); err != nil {
					produced <- err
					return
				}
				items = items[:0]
			}
		}
		produced <- nil
	}()

	// Wait until the victim holds as many items as it has handlers.
	for i := 0; i < concurrency; i++ {
		select {
		case <-held:
		case <-ctx.Done():
			t.Fatalf("the stopped worker never held %d items (distinct so far %d)", concurrency, distinct.Load())
		}
	}
	t.Logf("stopping worker %d at %d distinct items", victim, distinct.Load())
	if err := brokers[victim].Close(); err != nil {
		t.Fatalf("close the victim's connection: %v", err)
	}
	close(release)
	if err := queues[victim].Close(); err != nil {
		t.Fatal(err)
	}

	select {
	case err := <-produced:
		if err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("enqueueing did not finish in time")
	}
	select {
	case <-allSeen:
	case <-ctx.Done():
		t.Fatalf("only %d of %d items handled before the deadline", distinct.Load(), n)
	}
	for w, wq := range queues {
		if w == victim {
			continue
		}
		if err := wq.Shutdown(ctx); err != nil {
			t.Errorf("shutdown worker %d: %v", w, err)
		}
	}
	missing := 0
	for i := range counts {
		if counts[i].Load() == 0 {
			missing++
		}
	}
	dups := total.Load() - n
	t.Logf("handled %d times for %d items: %d duplicates (bound %d)", total.Load(), n, dups, prefetch)
	if missing != 0 {
		t.Errorf("%d items never handled", missing)
	}
	if dups < 0 || dups > prefetch {
		t.Errorf("%d duplicates, want at most the stopped worker's prefetch %d", dups, prefetch)
	}
}
