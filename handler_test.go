package patbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/patbus/patbus"
)

func TestChainOrder(t *testing.T) {
	var trace []string
	mw := func(name string) patbus.Middleware {
		return func(next patbus.Handler) patbus.Handler {
			return patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
				trace = append(trace, name+">")
				err := next.Handle(ctx, m)
				trace = append(trace, "<"+name)
				return err
			})
		}
	}
	h := patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		trace = append(trace, "h")
		return nil
	})
	if err := patbus.Chain(h, mw("a"), nil, mw("b")).Handle(context.Background(), &patbus.Message{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, " "); got != "a> b> h <b <a" {
		t.Errorf("order %q, want the first middleware outermost", got)
	}
}

func TestTyped(t *testing.T) {
	type job struct{ N int }
	var got job
	h := patbus.Typed(func(ctx context.Context, j job) error {
		got = j
		return nil
	})
	if err := h.Handle(context.Background(), &patbus.Message{Kind: patbus.KindWork, Body: []byte(`{"N":7,"extra":1}`)}); err != nil || got.N != 7 {
		t.Fatalf("Handle = %v, decoded %+v", err, got)
	}
	err := h.Handle(context.Background(), &patbus.Message{Kind: patbus.KindWork, Body: []byte(`{"N":"seven"}`)})
	if !errors.Is(err, patbus.ErrInvalidInput) {
		t.Errorf("a body that does not decode gives %v, want ErrInvalidInput", err)
	}
}

// A middleware that answers acts it knows without calling the handler.
func ExampleMiddleware() {
	cached := map[string][]byte{"cmd:ping": []byte(`"pong"`)}
	cache := func(next patbus.Handler) patbus.Handler {
		return patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
			if r, ok := cached[m.Pattern]; ok && m.Kind == patbus.KindAct {
				m.Reply = r
				return nil
			}
			return next.Handle(ctx, m)
		})
	}
	h := patbus.Chain(patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		m.Reply = []byte(`"from the handler"`)
		return nil
	}), cache)
	for _, p := range []string{"cmd:ping", "cmd:other"} {
		m := &patbus.Message{Kind: patbus.KindAct, Pattern: p}
		_ = h.Handle(context.Background(), m)
		fmt.Println(p, string(m.Reply))
	}
	// Output:
	// cmd:ping "pong"
	// cmd:other "from the handler"
}
