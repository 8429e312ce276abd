package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/pubsub"
)

// rawQueue binds a queue of its own to the events of pattern and returns
// its deliveries, as a consumer in another language would see them.
func rawQueue(t *testing.T, e *env, b bus.Broker, pattern string) <-chan *bus.Delivery {
	t.Helper()
	ctx := testCtx(t)
	key, err := patterns.Key(patterns.MustParse(pattern))
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.pubsub.raw." + uniq()})
	if err != nil {
		t.Fatal(err)
	}
	testenv.DeleteQueues(t, b, q)
	if err := b.Bind(ctx, bus.Binding{Exchange: pubsub.EventsExchange, Queue: q, Key: key}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 10, NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Cancel(context.Background()) })
	return sub.Deliveries()
}

// On the wire an event carries its canonical pattern as its type, the tx
// of its chain written compactly (a trace id only inside traceparent), no
// tx header when it starts a chain, a UUID message id, and is persistent
// JSON.
func TestEmitWire(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		b := e.broker()
		p, err := pubsub.New(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		run := uniq()
		deliveries := rawQueue(t, e, b, "run:"+run+",evt:wire")
		trace := patbus.NewTx()
		txs := []string{trace, "order-17", ""}
		for _, tx := range txs {
			if err := p.Emit(patbus.WithTx(ctx, tx), "evt:wire, run:"+run, nil); err != nil {
				t.Fatal(err)
			}
		}
		ids := map[string]bool{}
		for _, tx := range txs {
			d := recv(t, deliveries)
			f := wire.Read(d.Headers)
			if f.Tx != tx || d.Type != "evt:wire,run:"+run || f.Pattern != "" {
				t.Errorf("read tx %q, type %q, pattern header %q; want %q and the canonical pattern as the type", f.Tx, d.Type, f.Pattern, tx)
			}
			if tx == "" {
				if len(d.Headers) != 0 {
					t.Errorf("an event that starts a chain carries headers %v", d.Headers)
				}
				continue
			}
			_, hasTx := d.Headers[wire.HeaderTx]
			if tp := wire.String(d.Headers, wire.HeaderTraceparent); tp == "" || hasTx != (tx != trace) {
				t.Errorf("tx %q sent as traceparent %q and patbus-tx %v", tx, tp, d.Headers[wire.HeaderTx])
			}
			if _, err := uuid.Parse(d.MessageID); err != nil || ids[d.MessageID] {
				t.Errorf("message id %q: not a fresh UUID (%v)", d.MessageID, err)
			}
			ids[d.MessageID] = true
			if !d.Persistent || d.ContentType != wire.ContentTypeJSON || string(d.Body) != `{"evt":"wire","run":"`+run+`"}` {
				t.Errorf("persistent %v, content type %q, body %s", d.Persistent, d.ContentType, d.Body)
			}
		}
	})
}

// EmitAsync hands back the confirmation; EmitBatch waits for all of them
// and names the events that failed.
func TestEmitAsyncAndBatch(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		p := e.pubsub()
		run := uniq()
		l := newLedger()
		sub, err := p.Subscribe(ctx, "run:"+run, record(l))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		// The caller may reuse its bytes once EmitAsync returned.
		data := []byte(`{"id":"async"}`)
		c, err := p.EmitAsync(ctx, "run:"+run, data)
		if err != nil {
			t.Fatal(err)
		}
		copy(data, `{"id":"xxxxx"}`)
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		err = p.EmitBatch(ctx, "run:"+run, payload{ID: "b0"}, map[string]any{"run": "another"}, payload{ID: "b2"}, "not an object")
		var ie *pubsub.ItemError
		if !errors.As(err, &ie) || ie.Index != 1 || !errors.Is(err, pubsub.ErrInvalidInput) {
			t.Errorf("EmitBatch with bad data: %v", err)
		}
		if got := fmt.Sprint(err); !strings.Contains(got, "event 1 of the batch") || !strings.Contains(got, "event 3 of the batch") {
			t.Errorf("EmitBatch error %q does not name events 1 and 3", got)
		}
		if err := p.EmitBatch(ctx, "run:"+run+",x:*"); !errors.Is(err, patterns.ErrInvalidPattern) {
			t.Errorf("EmitBatch with a glob: %v", err)
		}
		waitFor(t, "the events", func() bool { return len(l.ids()) == 3 }, l)
		if got := fmt.Sprint(l.ids()); got != "map[async:1 b0:1 b2:1]" {
			t.Errorf("got %s", got)
		}
		if _, err := p.EmitAsync(ctx, "run:", nil); !errors.Is(err, patterns.ErrInvalidPattern) {
			t.Errorf("EmitAsync with a bad pattern: %v", err)
		}
	})
}
