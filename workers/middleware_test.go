package workers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/workers"
)

// A producer in another language sends its tx as bytes, or only inside a
// traceparent; the handler's context carries it all the same.
func TestForeignProducersKeepTheirTx(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		q := newQueue(t, b)
		traceTx, otherTrace := wire.NewID(), wire.NewID()
		cases := map[string]struct {
			headers map[string]any
			want    string
		}{
			"bytes traceparent": {map[string]any{wire.HeaderTraceparent: []byte(wire.Traceparent(traceTx))}, traceTx},
			"bytes tx":          {map[string]any{wire.HeaderTx: []byte("order-42")}, "order-42"},
			"tx and traceparent": {map[string]any{wire.HeaderTx: "order-43",
				wire.HeaderTraceparent: wire.Traceparent(otherTrace)}, "order-43"},
		}
		for id, c := range cases {
			msg := bus.Message{MessageID: id, Headers: c.headers, Body: []byte(`{}`), Persistent: true}
			if err := bus.PublishAndWait(ctx, b, "", q.Name(), msg); err != nil {
				t.Fatal(err)
			}
		}
		type seen struct{ id, ctxTx, itemTx string }
		got := make(chan seen, len(cases))
		if err := q.Start(ctx, workers.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
			got <- seen{it.ID, patbus.Tx(ctx), it.Tx}
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		for range cases {
			s := recv(t, got)
			if want := cases[s.id].want; s.ctxTx != want || s.itemTx != want {
				t.Errorf("%s: context tx %q, item tx %q; want %q", s.id, s.ctxTx, s.itemTx, want)
			}
		}
	})
}

// The program's middleware runs, outermost first, around the handler: it
// sees each item with the handler's context and the handler's error, and
// what it returns decides the item's fate.
func TestMiddlewareSeesTheItems(t *testing.T) {
	eachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx := testCtx(t)
		var mu sync.Mutex
		var trail []string
		note := func(s string) {
			mu.Lock()
			trail = append(trail, s)
			mu.Unlock()
		}
		outer := func(next patbus.Handler) patbus.Handler {
			return patbus.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				var v task
				if err := it.Decode(&v); err != nil {
					return err
				}
				note(fmt.Sprintf("outer %s attempt %d tx-ok %v", v.ID, it.Attempt, patbus.Tx(ctx) == it.Tx && it.Tx == "tx-mw"))
				err := next.Handle(ctx, it)
				note(fmt.Sprintf("outer %s saw %v", v.ID, err))
				return err
			})
		}
		// inner turns the handler's "fatal" failures into poison.
		inner := func(next patbus.Handler) patbus.Handler {
			return patbus.HandlerFunc(func(ctx context.Context, it *workers.Item) error {
				note("inner")
				err := next.Handle(ctx, it)
				if err != nil && strings.Contains(err.Error(), "fatal") {
					return workers.Poison(err)
				}
				return err
			})
		}
		q := newQueue(t, b, workers.WithConcurrency(1), workers.WithMiddleware(outer, inner))
		for _, id := range []string{"ok", "fatal"} {
			if err := q.Enqueue(patbus.WithTx(ctx, "tx-mw"), task{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		handled := make(chan string, 2)
		if err := q.Start(ctx, workers.Typed(func(ctx context.Context, v task) error {
			note("handler " + v.ID)
			handled <- v.ID
			if v.ID == "fatal" {
				return errors.New("fatal failure")
			}
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		recv(t, handled)
		recv(t, handled)
		d := drain(t, b, q.DeadLetterQueue(), 1)[0]
		if got := header(d, workers.HeaderDeadReason); got != workers.ReasonPoison {
			t.Errorf("the item made poison by middleware: reason %v", got)
		}
		if err := q.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"outer ok attempt 1 tx-ok true", "inner", "handler ok", "outer ok saw <nil>",
			"outer fatal attempt 1 tx-ok true", "inner", "handler fatal", "outer fatal saw workers: poison item: fatal failure",
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(trail, "\n") != strings.Join(want, "\n") {
			t.Errorf("trail:\n%s\nwant:\n%s", strings.Join(trail, "\n"), strings.Join(want, "\n"))
		}
	})
}
