package workers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/workers"
)

type task struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

func TestEnqueueAndWork(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithConcurrency(4))
		const n = 200
		var items []any
		for i := 0; i < n; i++ {
			items = append(items, task{ID: fmt.Sprint(i), N: i})
		}
		if err := q.Enqueue(ctx, items[0]); err != nil {
			t.Fatal(err)
		}
		if err := q.EnqueueBatch(ctx, items[1:]...); err != nil {
			t.Fatal(err)
		}
		l := newLedger()
		var mu sync.Mutex
		sum := 0
		err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			mu.Lock()
			sum += v.N
			mu.Unlock()
			l.add(v.ID)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		l.waitFor(t, "every item", func() bool { d, _ := l.snapshot(); return d == n })
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, total := l.snapshot(); total != n {
			t.Errorf("handled %d times, want %d", total, n)
		}
		if sum != n*(n-1)/2 {
			t.Errorf("sum %d, want %d", sum, n*(n-1)/2)
		}
	})
}

func TestItemCarriesTxAndMetadata(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b)
		if err := q.Enqueue(patbus.WithTx(ctx, "tx-abc"), map[string]int{"x": 1}); err != nil {
			t.Fatal(err)
		}
		got := make(chan workers.Item, 1)
		txs := make(chan string, 1)
		if err := q.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			txs <- patbus.Tx(ctx)
			got <- *it
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		it := recv(t, got)
		if tx := recv(t, txs); tx != "tx-abc" {
			t.Errorf("handler ctx tx %q, want tx-abc", tx)
		}
		if it.Tx != "tx-abc" || it.Attempt != 1 || it.MaxAttempts != workers.DefaultMaxAttempts || it.ID == "" ||
			it.Queue != q.Name() || it.Redelivered || it.Timestamp.IsZero() || it.Kind != patbus.KindWork || it.LastError != "" {
			t.Errorf("item %+v", it)
		}
		if _, err := uuid.Parse(it.ID); err != nil {
			t.Errorf("item id %q is not a UUID: %v", it.ID, err)
		}
		var v map[string]int
		if err := it.Decode(&v); err != nil || v["x"] != 1 {
			t.Errorf("decode: %v %v", v, err)
		}
	})
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatal("timed out")
		var zero T
		return zero
	}
}

func TestRetryThenSucceed(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithBackoff(20*time.Millisecond, 40*time.Millisecond), workers.WithMaxAttempts(4))
		if got := q.RetryQueues(); len(got) != 2 || !strings.HasSuffix(got[0], ".retry.20ms") || !strings.HasSuffix(got[1], ".retry.40ms") {
			t.Fatalf("retry queues %v", got)
		}
		if err := q.Enqueue(ctx, task{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		type call struct {
			attempt int
			last    string
		}
		calls := make(chan call, 10)
		if err := q.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			calls <- call{it.Attempt, it.LastError}
			switch it.Attempt {
			case 1:
				return errors.New("first failure")
			case 2:
				return workers.Retry(errors.New("second failure"))
			}
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		want := []call{{1, ""}, {2, "first failure"}, {3, "workers: retry requested: second failure"}}
		for _, w := range want {
			if got := recv(t, calls); got != w {
				t.Errorf("call %+v, want %+v", got, w)
			}
		}
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-calls:
			t.Errorf("unexpected extra call %+v", c)
		default:
		}
	})
}

func TestAlwaysFailingItemsAreDeadLetteredAfterMaxAttempts(t *testing.T) {
	for _, kind := range []string{"classic", "quorum"} {
		t.Run(kind, func(t *testing.T) { testDeadLetters(t, kind == "quorum") })
	}
}

func testDeadLetters(t *testing.T, quorum bool) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		const attempts, n = 3, 5
		opts := []workers.Option{workers.WithBackoff(5*time.Millisecond, 10*time.Millisecond), workers.WithMaxAttempts(attempts)}
		if quorum {
			opts = append(opts, workers.WithQuorum())
		}
		q := newQueue(t, b, opts...)
		for i := 0; i < n; i++ {
			if err := q.Enqueue(ctx, task{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		l := newLedger()
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			k := l.add(v.ID)
			return fmt.Errorf("boom %s/%d", v.ID, k)
		})); err != nil {
			t.Fatal(err)
		}
		dead := drain(t, b, q.DeadLetterQueue(), n)
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, d := range dead {
			var v task
			if err := json.Unmarshal(d.Body, &v); err != nil {
				t.Fatal(err)
			}
			seen[v.ID] = true
			if got := asInt(header(d, workers.HeaderAttempt)); got != attempts {
				t.Errorf("item %s: attempt header %d, want %d", v.ID, got, attempts)
			}
			if got := header(d, workers.HeaderDeadReason); got != workers.ReasonMaxAttempts {
				t.Errorf("item %s: reason %v", v.ID, got)
			}
			if got := header(d, workers.HeaderError); got != fmt.Sprintf("boom %s/%d", v.ID, attempts) {
				t.Errorf("item %s: error header %v", v.ID, got)
			}
			if got := header(d, workers.HeaderQueue); got != q.Name() {
				t.Errorf("item %s: queue header %v", v.ID, got)
			}
			if got := l.get(v.ID); got != attempts {
				t.Errorf("item %s handled %d times, want %d", v.ID, got, attempts)
			}
			if d.MessageID == "" {
				t.Errorf("item %s lost its message id", v.ID)
			}
		}
		if len(seen) != n {
			t.Errorf("dead letters for %d distinct items, want %d", len(seen), n)
		}
	})
}

func TestPoisonGoesStraightToDeadLetters(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithBackoff(5*time.Millisecond, 5*time.Millisecond))
		if err := q.Enqueue(ctx, task{ID: "p"}); err != nil {
			t.Fatal(err)
		}
		l := newLedger()
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			l.add(v.ID)
			return workers.Poison(errors.New("bad customer"))
		})); err != nil {
			t.Fatal(err)
		}
		d := drain(t, b, q.DeadLetterQueue(), 1)[0]
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if got := asInt(header(d, workers.HeaderAttempt)); got != 1 {
			t.Errorf("attempt %d, want 1", got)
		}
		if got := header(d, workers.HeaderDeadReason); got != workers.ReasonPoison {
			t.Errorf("reason %v", got)
		}
		if got, _ := header(d, workers.HeaderError).(string); !strings.Contains(got, "bad customer") {
			t.Errorf("error header %q", got)
		}
		if got := l.get("p"); got != 1 {
			t.Errorf("handled %d times, want 1", got)
		}
	})
}

func TestUndecodableItemsAreDeadLetteredAndWorkGoesOn(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithConcurrency(1))
		raw := func(body, ct string) {
			t.Helper()
			msg := bus.Message{Body: []byte(body), ContentType: ct, Persistent: true, MessageID: body}
			if err := bus.PublishAndWait(ctx, b, "", q.Name(), msg); err != nil {
				t.Fatal(err)
			}
		}
		raw(`{"id": broken`, wire.ContentTypeJSON) // not JSON
		raw(`"just a string"`, "")                 // JSON, wrong shape for task
		raw(`{"id":"x","n":"not a number"}`, "")   // wrong field type
		if err := q.Enqueue(ctx, task{ID: "good", N: 1}); err != nil {
			t.Fatal(err)
		}
		good := make(chan string, 1)
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			good <- v.ID
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		if id := recv(t, good); id != "good" {
			t.Errorf("handled %q", id)
		}
		dead := drain(t, b, q.DeadLetterQueue(), 3)
		for _, d := range dead {
			if got := header(d, workers.HeaderDeadReason); got != workers.ReasonDecode {
				t.Errorf("%s: reason %v", d.Body, got)
			}
			if got, _ := header(d, workers.HeaderError).(string); !strings.Contains(got, patbus.ErrInvalidInput.Error()) {
				t.Errorf("%s: error %q", d.Body, got)
			}
			if got := asInt(header(d, workers.HeaderAttempt)); got != 1 {
				t.Errorf("%s: attempt %d", d.Body, got)
			}
		}
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPanicCountsAsFailure(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithBackoff(5*time.Millisecond, 5*time.Millisecond), workers.WithMaxAttempts(2))
		if err := q.Enqueue(ctx, task{ID: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			panic("kaboom")
		})); err != nil {
			t.Fatal(err)
		}
		d := drain(t, b, q.DeadLetterQueue(), 1)[0]
		if got, _ := header(d, workers.HeaderError).(string); !strings.Contains(got, "kaboom") {
			t.Errorf("error header %q", got)
		}
		if got := asInt(header(d, workers.HeaderAttempt)); got != 2 {
			t.Errorf("attempt %d, want 2", got)
		}
	})
}

func TestShutdownFinishesInFlightWork(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b, workers.WithConcurrency(2))
		for i := 0; i < 2; i++ {
			if err := q.Enqueue(ctx, task{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		started := make(chan string, 2)
		release := make(chan struct{})
		done := newLedger()
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			started <- v.ID
			<-release
			done.add(v.ID)
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		recv(t, started)
		recv(t, started)
		shut := make(chan error, 1)
		go func() { shut <- q.Shutdown(ctx) }()
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned before the handlers finished: %v", err)
		default:
		}
		close(release)
		if err := recv(t, shut); err != nil {
			t.Fatal(err)
		}
		if d, _ := done.snapshot(); d != 2 {
			t.Errorf("finished %d, want 2", d)
		}
		if err := q.Start(ctx, workers.HandlerFunc(func(context.Context, *workers.Item) error { return nil })); !errors.Is(err, workers.ErrClosed) {
			t.Errorf("Start after Shutdown: %v, want ErrClosed", err)
		}
		// Nothing is left: a new queue value on the same name sees only a
		// marker enqueued now.
		q2, err := workers.New(ctx, b, q.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := q2.Enqueue(ctx, task{ID: "marker"}); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 10)
		if err := q2.Start(ctx, workers.Typed(func(ctx context.Context, v task) error { got <- v.ID; return nil })); err != nil {
			t.Fatal(err)
		}
		defer q2.Close()
		if id := recv(t, got); id != "marker" {
			t.Errorf("left behind: %q", id)
		}
	})
}

func TestShutdownTimeoutAndCloseHandBackItems(t *testing.T) {
	for _, mode := range []string{"shutdown-timeout", "close"} {
		t.Run(mode, func(t *testing.T) {
			eachBroker(t, func(t *testing.T, b bus.Broker) {
				ctx := testCtx(t)
				q := newQueue(t, b, workers.WithConcurrency(1))
				if err := q.Enqueue(ctx, task{ID: "held"}); err != nil {
					t.Fatal(err)
				}
				started := make(chan struct{})
				if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
					close(started)
					<-ctx.Done()
					return ctx.Err()
				})); err != nil {
					t.Fatal(err)
				}
				recv(t, started)
				if mode == "close" {
					if err := q.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
					err := q.Shutdown(sctx)
					cancel()
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
					}
				}
				q2, err := workers.New(ctx, b, q.Name())
				if err != nil {
					t.Fatal(err)
				}
				got := make(chan workers.Item, 1)
				if err := q2.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error { got <- *it; return nil })); err != nil {
					t.Fatal(err)
				}
				defer q2.Close()
				it := recv(t, got)
				if !it.Redelivered || it.Attempt != 1 || it.LastError != "" {
					t.Errorf("handed back item: redelivered %v attempt %d last error %q, want true 1 \"\"", it.Redelivered, it.Attempt, it.LastError)
				}
				// No attempt used: nothing went to a retry queue or the
				// dead letters.
				st, err := q2.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Retrying != 0 || st.Dead != 0 {
					t.Errorf("after the hand-back: %+v, want no retries and no dead letters", st)
				}
			})
		})
	}
}

func TestWorkStopsWithItsContext(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b)
		if err := q.Enqueue(ctx, task{ID: "w"}); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- q.Work(wctx, workers.Typed(func(ctx context.Context, v task) error { got <- v.ID; return nil }))
		}()
		if id := recv(t, got); id != "w" {
			t.Errorf("got %q", id)
		}
		cancel()
		if err := recv(t, done); err != nil {
			t.Errorf("Work: %v", err)
		}
	})
}

func TestStartTwiceAndEnqueueToMissingQueue(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b)
		h := workers.HandlerFunc(func(context.Context, *workers.Item) error { return nil })
		if err := q.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx, h); !errors.Is(err, workers.ErrRunning) {
			t.Errorf("second Start: %v, want ErrRunning", err)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := q.Start(ctx, h); !errors.Is(err, workers.ErrClosed) {
			t.Errorf("Start after Close: %v, want ErrClosed", err)
		}
		if err := q.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if err := q.Enqueue(ctx, 1); !errors.Is(err, bus.ErrUnroutable) {
			t.Errorf("Enqueue to a deleted queue: %v, want ErrUnroutable", err)
		}
		err := q.EnqueueBatch(ctx, 1, make(chan int))
		var ie *workers.ItemError
		if !errors.As(err, &ie) || !errors.Is(err, bus.ErrUnroutable) || !errors.Is(err, workers.ErrInvalidInput) {
			t.Errorf("EnqueueBatch: %v", err)
		}
		if err := q.Enqueue(ctx, []byte("{nope")); !errors.Is(err, workers.ErrInvalidInput) || patbus.Code(err) != patbus.CodeInvalidInput {
			t.Errorf("Enqueue invalid raw JSON: %v", err)
		}
	})
}

func TestInvalidConfig(t *testing.T) {
	b, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cases := []struct {
		name  string
		b     bus.Broker
		queue string
		opts  []workers.Option
	}{
		{"nil broker", nil, "q", nil},
		{"empty name", b, "", nil},
		{"concurrency above prefetch", b, "q", []workers.Option{workers.WithPrefetch(2), workers.WithConcurrency(3)}},
		{"negative prefetch", b, "q", []workers.Option{workers.WithPrefetch(-1)}},
		{"zero attempts", b, "q", []workers.Option{workers.WithMaxAttempts(0)}},
		{"backoff max below initial", b, "q", []workers.Option{workers.WithBackoff(time.Second, time.Millisecond)}},
		{"zero publish timeout", b, "q", []workers.Option{workers.WithPublishTimeout(0)}},
		{"zero shutdown timeout", b, "q", []workers.Option{workers.WithShutdownTimeout(0)}},
		{"zero redeliveries", b, "q", []workers.Option{workers.WithMaxRedeliveries(0)}},
		{"name too long", b, strings.Repeat("q", 250), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := workers.New(context.Background(), c.b, c.queue, c.opts...); !errors.Is(err, workers.ErrInvalidConfig) {
				t.Errorf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
	if err := (&workers.Queue{}).Start(context.Background(), nil); !errors.Is(err, workers.ErrInvalidConfig) {
		t.Errorf("Start(nil): %v", err)
	}
}

func TestBackoffSteps(t *testing.T) {
	b, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q, err := workers.New(context.Background(), b, "steps", workers.WithMaxAttempts(6), workers.WithBackoff(time.Second, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if d, ok := q.Backoff(i + 1); !ok || d != w {
			t.Errorf("Backoff(%d) = %v %v, want %v", i+1, d, ok, w)
		}
	}
	if _, ok := q.Backoff(6); ok {
		t.Error("Backoff(6): the last attempt has no retry")
	}
	if got := strings.Join(q.RetryQueues(), " "); got != "steps.retry.1s steps.retry.2s steps.retry.4s steps.retry.5s" {
		t.Errorf("retry queues %s", got)
	}
}

// Work returns, with the cause, when its consumer ends by itself: here the
// work queue is deleted under it.
func TestWorkReturnsWhenItsQueueIsDeleted(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b)
		if err := q.Enqueue(ctx, task{ID: "w"}); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- q.Work(ctx, workers.Typed(func(ctx context.Context, v task) error { got <- v.ID; return nil }))
		}()
		recv(t, got)
		if err := b.DeleteQueue(ctx, q.Name()); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, done); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("Work after its queue was deleted: %v, want bus.ErrNotFound", err)
		}
		select {
		case <-q.Done():
		default:
			t.Error("Done is not closed after the consumer ended")
		}
		if err := q.Err(); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("Err after the queue was deleted: %v, want bus.ErrNotFound", err)
		}
	})
}
