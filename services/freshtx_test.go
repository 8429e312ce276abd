package services_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/services"
)

// A tx minted for one request (the gateway's, wire.WithFreshTx) is the
// request id of the first act sent with it, which then carries no tx
// header; a second act with the same context gets an id of its own and
// carries the tx in traceparent. Both handlers see the tx.
func TestFreshTxIsTheFirstRequestsID(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("fresh")
		seen := make(chan string, 2)
		e.svc(name, "1.0.0", func(s *services.Service) {
			if err := s.Add("cmd:fresh", services.HandlerFunc(func(ctx context.Context, _ *services.Message) (any, error) {
				seen <- patbus.Tx(ctx)
				return "ok", nil
			})); err != nil {
				t.Fatal(err)
			}
		})
		// A program of its own on the act exchange sees every request as
		// it travels.
		b := e.broker()
		ctx := ctxT(t)
		q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.observe." + wire.NewID()[:8], Exclusive: true, AutoDelete: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Bind(ctx, bus.Binding{Exchange: testAct, Queue: q, Key: "#.cmd:fresh.#"}); err != nil {
			t.Fatal(err)
		}
		sub, err := b.Consume(ctx, q, bus.ConsumeOptions{NoAck: true, Prefetch: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Cancel(context.Background()) }()
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "cmd:fresh")

		tx := wire.NewID()
		actx := wire.WithFreshTx(ctx, tx)
		for range 2 {
			rep, err := caller.Act(actx, "cmd:fresh", nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Tx != tx {
				t.Errorf("reply tx %q, want %q", rep.Tx, tx)
			}
			if got := <-seen; got != tx {
				t.Errorf("the handler saw tx %q, want %q", got, tx)
			}
		}
		var reqs [2]*bus.Delivery
		for i := range reqs {
			select {
			case reqs[i] = <-sub.Deliveries():
			case <-time.After(10 * time.Second):
				t.Fatalf("the observer saw %d requests, want 2", i)
			}
		}
		first, second := reqs[0], reqs[1]
		if first.MessageID != tx || first.CorrelationID != tx {
			t.Errorf("first request: message id %q, correlation id %q; want the tx %q", first.MessageID, first.CorrelationID, tx)
		}
		for _, h := range []string{wire.HeaderTraceparent, wire.HeaderTx} {
			if v, ok := first.Headers[h]; ok {
				t.Errorf("first request carries %s = %v; its id is the tx", h, v)
			}
		}
		if second.MessageID == tx || second.MessageID == "" {
			t.Errorf("second request's id %q: want one of its own", second.MessageID)
		}
		if tp := wire.String(second.Headers, wire.HeaderTraceparent); !strings.Contains(tp, tx) {
			t.Errorf("second request's traceparent %q does not carry the tx %q", tp, tx)
		}
	})
}
