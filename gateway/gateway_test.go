package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
)

// The reference route map, end to end: every route, in an order that builds
// on what the previous steps did, and the failures of each.
func TestReferenceMap(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		e := newEnv(t, b)
		for _, c := range []struct {
			name   string
			method string
			path   string
			body   string
			status int
			want   string // the JSON body (success) or the error code
			allow  string // the Allow header of a 405
		}{
			{"list empty", "GET", "/user", "", 200, `{"users":[]}`, ""},
			{"create", "POST", "/user", `{"name":"Ada"}`, 200, `{"id":"u1","name":"Ada"}`, ""},
			{"create with id", "POST", "/user", `{"id":"g","name":"Grace"}`, 200, `{"id":"g","name":"Grace"}`, ""},
			{"create duplicate", "POST", "/user", `{"id":"g","name":"Again"}`, 409, "conflict", ""},
			{"create without name", "POST", "/user", `{"id":"x"}`, 400, "invalid_input", ""},
			{"create without body", "POST", "/user", "", 400, "invalid_input", ""},
			{"load", "GET", "/user/u1", "", 200, `{"id":"u1","name":"Ada"}`, ""},
			{"load missing", "GET", "/user/nobody", "", 404, "not_found", ""},
			{"edit", "PUT", "/user/u1", `{"name":"Ada L."}`, 200, `{"id":"u1","name":"Ada L."}`, ""},
			{"edit missing", "PUT", "/user/nobody", `{"name":"x"}`, 404, "not_found", ""},
			{"list", "GET", "/user", "", 200, `{"users":[{"id":"g","name":"Grace"},{"id":"u1","name":"Ada L."}]}`, ""},
			{"delete", "DELETE", "/user/u1", "", 200, `{"deleted":"u1"}`, ""},
			{"load deleted", "GET", "/user/u1", "", 404, "not_found", ""},
			{"delete missing", "DELETE", "/user/u1", "", 404, "not_found", ""},
			{"head list", "HEAD", "/user", "", 200, "", ""},
			{"patch collection", "PATCH", "/user", `{}`, 405, "method_not_allowed", "GET, HEAD, POST"},
			{"delete collection", "DELETE", "/user", "", 405, "method_not_allowed", "GET, HEAD, POST"},
			{"post item", "POST", "/user/g", `{}`, 405, "method_not_allowed", "DELETE, GET, HEAD, PUT"},
			{"post health", "POST", "/healthz", "", 405, "method_not_allowed", "GET, HEAD"},
			{"unknown path", "GET", "/nowhere", "", 404, "not_found", ""},
			{"too deep a path", "GET", "/user/g/more", "", 404, "not_found", ""},
			{"unknown path and verb", "PATCH", "/nowhere", "", 404, "not_found", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.do(t, c.method, c.path, c.body)
				if r.status != c.status {
					t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, r.status, c.status, r.body)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				tx := r.header.Get("X-Request-Id")
				if tx == "" {
					t.Error("no X-Request-Id")
				}
				if got := r.header.Get("Allow"); got != c.allow {
					t.Errorf("Allow %q, want %q", got, c.allow)
				}
				switch {
				case c.method == "HEAD":
					if len(r.body) != 0 {
						t.Errorf("HEAD has a body %q", r.body)
					}
				case c.status == 200:
					if !sameJSON(r.body, []byte(c.want)) {
						t.Errorf("body %s, want %s", r.body, c.want)
					}
				default:
					eb := r.errorBody(t)
					if eb.Code != c.want || eb.Tx != tx || eb.Message == "" {
						t.Errorf("error body %+v, want code %q and tx %q", eb, c.want, tx)
					}
				}
			})
		}
		// The message of a 4xx is the action's own.
		if eb := e.do(t, "GET", "/user/nobody", "").errorBody(t); eb.Message != "no user nobody" {
			t.Errorf("404 message %q", eb.Message)
		}
	})
}

// Every error code an act can fail with, and its status.
func TestStatusCodes(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		e := newEnv(t, b, gateway.WithTimeout(500*time.Millisecond))
		secret := regexp.MustCompile(`secret|goroutine|\.go:`)
		for _, c := range []struct {
			path   string
			status int
			code   string
			msg    string // the message, when it is the action's own
		}{
			{"/test/fail/invalid_input", 400, "invalid_input", "failed with invalid_input"},
			{"/test/fail/unauthorized", 401, "unauthorized", "failed with unauthorized"},
			{"/test/fail/forbidden", 403, "forbidden", "failed with forbidden"},
			{"/test/fail/not_found", 404, "not_found", "failed with not_found"},
			{"/test/fail/conflict", 409, "conflict", "failed with conflict"},
			{"/test/fail/too_large", 413, "too_large", "failed with too_large"},
			{"/test/fail/no_route", 503, "no_route", ""},
			{"/test/fail/unavailable", 503, "unavailable", ""},
			{"/test/fail/timeout", 504, "timeout", ""},
			{"/test/fail/teapot", 500, "teapot", ""},
			{"/test/fail/internal", 500, "internal", ""},
			{"/test/fail/plain", 500, "internal", ""},
			{"/test/fail/panic", 500, "panic", ""},
			// Nobody serves module:test,do:missing.
			{"/test/missing", 503, "no_route", ""},
			// The action outlives the gateway's act timeout.
			{"/test/hold/timeout", 504, "timeout", ""},
		} {
			t.Run(strings.TrimPrefix(c.path, "/test/"), func(t *testing.T) {
				r := e.do(t, "GET", c.path, "")
				if r.status != c.status {
					t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
				}
				eb := r.errorBody(t)
				if eb.Code != c.code {
					t.Errorf("code %q, want %q", eb.Code, c.code)
				}
				if c.msg != "" && eb.Message != c.msg {
					t.Errorf("message %q, want %q", eb.Message, c.msg)
				}
				if eb.Message == "" || secret.Match(r.body) {
					t.Errorf("the body tells too much or too little: %s", r.body)
				}
				if eb.Tx == "" || eb.Tx != r.header.Get("X-Request-Id") {
					t.Errorf("tx %q, header %q", eb.Tx, r.header.Get("X-Request-Id"))
				}
			})
		}
		// With the user service gone, its routes have no service.
		e.st.closeUsers()
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := e.do(t, "GET", "/user", "")
			if r.status == 503 && r.errorBody(t).Code == "no_route" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the user service closed: status %d body %s, want 503 no_route", r.status, r.body)
			}
			time.Sleep(20 * time.Millisecond) // poll until the catalog drops the service
		}
	})
}

// The act carries args {params, query, body} and the request's tx.
func TestArgsAndTx(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		e := newEnv(t, b)
		const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
		hexTx := regexp.MustCompile(`^[0-9a-f]{32}$`)
		for _, c := range []struct {
			name   string
			method string
			path   string
			body   string
			header []string
			params string
			query  string
			wantTx string // "" means a fresh tx
		}{
			{"params and query", "GET", "/test/echo/a%2Fb/%C3%A9t%C3%A9?q=1&r=2&r=3&e=", "", nil,
				`{"a":"a/b","b":"été"}`, `{"e":"","q":"1","r":["2","3"]}`, ""},
			{"body", "POST", "/test/echo/1/2", `{"f":1e400,"l":[1.0,-0.0,1E-400],"n":123456789012345678901234567890,"s":"x"}`, nil,
				`{"a":"1","b":"2"}`, `{}`, ""},
			{"traceparent", "PUT", "/test/echo/1/2", `[]`, []string{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"},
				`{"a":"1","b":"2"}`, `{}`, trace},
			{"traceparent wins", "PATCH", "/test/echo/1/2", `{}`, []string{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01", "X-Request-Id", "req-1"},
				`{"a":"1","b":"2"}`, `{}`, trace},
			{"request id", "DELETE", "/test/echo/1/2", "", []string{"X-Request-Id", "req-42"},
				`{"a":"1","b":"2"}`, `{}`, "req-42"},
			{"bad traceparent", "GET", "/test/echo/1/2", "", []string{"traceparent", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"},
				`{"a":"1","b":"2"}`, `{}`, ""},
			{"request id too long", "GET", "/test/echo/1/2", "", []string{"X-Request-Id", strings.Repeat("x", 129)},
				`{"a":"1","b":"2"}`, `{}`, ""},
			{"request id with a space", "GET", "/test/echo/1/2", "", []string{"X-Request-Id", "a b"},
				`{"a":"1","b":"2"}`, `{}`, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.do(t, c.method, c.path, c.body, c.header...)
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				var got struct {
					Args struct {
						Params json.RawMessage `json:"params"`
						Query  json.RawMessage `json:"query"`
						Body   json.RawMessage `json:"body"`
					} `json:"args"`
					Tx string `json:"tx"`
				}
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatal(err)
				}
				if !sameJSON(got.Args.Params, []byte(c.params)) || !sameJSON(got.Args.Query, []byte(c.query)) {
					t.Errorf("params %s query %s, want %s %s", got.Args.Params, got.Args.Query, c.params, c.query)
				}
				wantBody := c.body
				if wantBody == "" {
					wantBody = "{}"
				}
				if string(got.Args.Body) != wantBody {
					t.Errorf("body %s, want it exactly as sent: %s", got.Args.Body, wantBody)
				}
				tx := r.header.Get("X-Request-Id")
				if got.Tx != tx {
					t.Errorf("the action's tx %q, X-Request-Id %q", got.Tx, tx)
				}
				switch {
				case c.wantTx != "" && tx != c.wantTx:
					t.Errorf("tx %q, want %q", tx, c.wantTx)
				case c.wantTx == "" && !hexTx.MatchString(tx):
					t.Errorf("fresh tx %q is not 32 hex digits", tx)
				}
			})
		}
	})
}

// 500 requests from 50 clients at once: each creates a user, then the
// list holds them all.
func TestConcurrentRequests(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		e := newEnv(t, b)
		const clients, each = 50, 10
		tr := &http.Transport{MaxIdleConnsPerHost: clients}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		errs := make(chan error, clients*each)
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for j := 0; j < each; j++ {
					id := fmt.Sprintf("c%02d-%02d", i, j)
					body := fmt.Sprintf(`{"id":%q,"name":"n-%s"}`, id, id)
					req, _ := http.NewRequest("POST", e.url+"/user", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Request-Id", "tx-"+id)
					res, err := c.Do(req)
					if err != nil {
						errs <- err
						continue
					}
					var u user
					err = json.NewDecoder(res.Body).Decode(&u)
					res.Body.Close()
					switch {
					case err != nil:
						errs <- fmt.Errorf("%s: %v", id, err)
					case res.StatusCode != 200 || u.ID != id || u.Name != "n-"+id:
						errs <- fmt.Errorf("%s: status %d, user %+v", id, res.StatusCode, u)
					case res.Header.Get("X-Request-Id") != "tx-"+id:
						errs <- fmt.Errorf("%s: X-Request-Id %q", id, res.Header.Get("X-Request-Id"))
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		r := e.do(t, "GET", "/user", "")
		var list struct{ Users []user }
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Users) != clients*each {
			t.Errorf("%d users listed, want %d", len(list.Users), clients*each)
		}
	})
}
