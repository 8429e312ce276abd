package workers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/workers"
)

// An item that kills every worker that takes it: each worker process takes
// the item and dies with it unsettled (on RabbitMQ its connection drops; on
// the in-memory broker, which has no connections, the worker is closed
// under the handler). After WithMaxRedeliveries redeliveries the next
// worker dead-letters the item instead of running it again.
func TestCrashLoopIsDeadLettered(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		const limit = 2
		_, rabbit := b.(*bus.Rabbit)
		q := newQueue(t, b, workers.WithMaxRedeliveries(limit))
		if err := q.Enqueue(ctx, task{ID: "killer"}); err != nil {
			t.Fatal(err)
		}
		type held struct {
			id          string
			redelivered bool
			attempt     int
			deliveries  any
		}
		var id string
		for run := 0; run <= limit; run++ {
			pb := b
			if rabbit {
				pb = dialRabbit(t) // a process of its own
			}
			wq, err := workers.New(ctx, pb, q.Name(), workers.WithMaxRedeliveries(limit))
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan held, 1)
			if err := wq.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				got <- held{it.ID, it.Redelivered, it.Attempt, it.Headers[workers.HeaderDeliveries]}
				<-ctx.Done() // the process dies before this returns
				return ctx.Err()
			})); err != nil {
				t.Fatal(err)
			}
			h := recv(t, got)
			if run == 0 {
				id = h.id
			}
			if h.id != id || h.attempt != 1 || h.redelivered != (run > 0) {
				t.Errorf("run %d: handler got %+v, want id %s, attempt 1, redelivered %v", run, h, id, run > 0)
			}
			if run > 0 && asInt(h.deliveries) != run {
				t.Errorf("run %d: deliveries header %v, want %d", run, h.deliveries, run)
			}
			if rabbit {
				if err := pb.Close(); err != nil { // the connection drops with the item unsettled
					t.Fatal(err)
				}
			}
			if err := wq.Close(); err != nil {
				t.Fatal(err)
			}
		}

		// The next worker does not run the item again.
		calls := newLedger()
		wq, err := workers.New(ctx, b, q.Name(), workers.WithMaxRedeliveries(limit))
		if err != nil {
			t.Fatal(err)
		}
		defer wq.Close()
		if err := wq.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			calls.add(it.ID)
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		d := drain(t, b, q.DeadLetterQueue(), 1)[0]
		if got := header(d, workers.HeaderDeadReason); got != workers.ReasonCrashLoop {
			t.Errorf("reason %v, want %s", got, workers.ReasonCrashLoop)
		}
		if got := asInt(header(d, workers.HeaderDeliveries)); got != limit+1 {
			t.Errorf("deliveries header %d, want %d", got, limit+1)
		}
		if got := asInt(header(d, workers.HeaderAttempt)); got != 1 {
			t.Errorf("attempt header %d, want 1", got)
		}
		if got, _ := header(d, workers.HeaderError).(string); !strings.Contains(got, "crash loop") {
			t.Errorf("error header %q", got)
		}
		if d.MessageID != id {
			t.Errorf("dead letter id %q, want the item's %q", d.MessageID, id)
		}
		if err := wq.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if n := calls.get(id); n != 0 {
			t.Errorf("the crash-looping item ran %d more times", n)
		}
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready != 0 || st.Retrying != 0 || st.Dead != 0 {
			t.Errorf("left behind: %+v", st)
		}
	})
}
