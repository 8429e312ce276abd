package gateway_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/wire"
)

// A panic while acting is answered 500 and the gateway goes on serving;
// an actor that returns nothing at all is a 500 too.
func TestActorFailures(t *testing.T) {
	for _, c := range []struct {
		name  string
		actor actorFunc
		code  string
	}{
		{"panic", func(context.Context, string, any) ([]byte, error) { panic("secret of the panic") }, "panic"},
		{"nil reply", func(context.Context, string, any) ([]byte, error) { return nil, nil }, "bad_reply"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gw, err := gateway.New(c.actor, []gateway.RouteSet{referenceMap()}, gateway.WithReadiness())
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				rec := httptest.NewRecorder()
				gw.ServeHTTP(rec, httptest.NewRequest("GET", "/user", nil))
				var eb gateway.ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
					t.Fatalf("body %q: %v", rec.Body, err)
				}
				if rec.Code != 500 || eb.Code != c.code || strings.Contains(rec.Body.String(), "secret") {
					t.Errorf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// The act's input is {"args":{...}} and its pattern the route's.
func TestActInput(t *testing.T) {
	var gotPattern string
	var gotInput json.RawMessage
	actor := actorFunc(func(ctx context.Context, pattern string, input any) ([]byte, error) {
		gotPattern, gotInput = pattern, input.(json.RawMessage)
		return []byte(`{"ok":true}`), nil
	})
	gw, err := gateway.New(actor, []gateway.RouteSet{referenceMap()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("PUT", "/user/7?x=1", strings.NewReader(`{"name":"Ada"}`))
	req.Header.Set("Content-Type", "application/json")
	gw.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != `{"ok":true}` {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if gotPattern != "if:edit,module:user" {
		t.Errorf("pattern %q", gotPattern)
	}
	if want := `{"args":{"params":{"id":"7"},"query":{"x":"1"},"body":{"name":"Ada"}}}`; string(gotInput) != want {
		t.Errorf("input %s, want %s", gotInput, want)
	}
}

// The tx the gateway makes for a request that brings none may be its act's
// request id (wire.ClaimFreshTx), so that it travels in no header; a tx
// that came with the request may not: the caller may send it again.
func TestOwnTxIsFresh(t *testing.T) {
	var tx string
	var fresh bool
	actor := actorFunc(func(ctx context.Context, _ string, _ any) ([]byte, error) {
		tx = patbus.Tx(ctx)
		fresh = wire.ClaimFreshTx(ctx, tx)
		return []byte(`{}`), nil
	})
	gw, err := gateway.New(actor, []gateway.RouteSet{referenceMap()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		requestID string
		fresh     bool
	}{{"", true}, {"req-1", false}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/user", nil)
		if c.requestID != "" {
			req.Header.Set("X-Request-Id", c.requestID)
		}
		gw.ServeHTTP(rec, req)
		if rec.Code != 200 || tx == "" || rec.Header().Get("X-Request-Id") != tx {
			t.Fatalf("X-Request-Id %q: %d, response tx %q, act tx %q", c.requestID, rec.Code, rec.Header().Get("X-Request-Id"), tx)
		}
		if fresh != c.fresh {
			t.Errorf("X-Request-Id %q: the act's tx claimable %v, want %v", c.requestID, fresh, c.fresh)
		}
	}
}
