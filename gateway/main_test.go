package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// referenceJSON is the route map of seneca-web's REST example, on the pin
// module:user,if:*.
const referenceJSON = `{"prefix": "/user", "pin": "module:user,if:*", "map": {
	"list":   {"GET": true, "name": ""},
	"load":   {"GET": true, "name": "", "suffix": "/:id"},
	"edit":   {"PUT": true, "name": "", "suffix": "/:id"},
	"create": {"POST": true, "name": ""},
	"delete": {"DELETE": true, "name": "", "suffix": "/:id"}
}}`

// referenceMap is referenceJSON written in Go.
func referenceMap() gateway.RouteSet {
	none := gateway.Named("")
	return gateway.RouteSet{
		Prefix: "/user",
		Pin:    "module:user,if:*",
		Map: map[string]gateway.Action{
			"list":   {GET: true, Name: none},
			"load":   {GET: true, Name: none, Suffix: "/:id"},
			"edit":   {PUT: true, Name: none, Suffix: "/:id"},
			"create": {POST: true, Name: none},
			"delete": {DELETE: true, Name: none, Suffix: "/:id"},
		},
	}
}

// testSet routes the test actions of services_test.go.
func testSet() gateway.RouteSet {
	return gateway.RouteSet{
		Prefix: "/test",
		Pin:    "module:test,do:*",
		Map: map[string]gateway.Action{
			"echo":    {GET: true, POST: true, PUT: true, PATCH: true, DELETE: true, Suffix: "/:a/:b"},
			"fail":    {GET: true, Suffix: "/:code"},
			"hold":    {GET: true, Suffix: "/:n"},
			"missing": {},
		},
	}
}

// env is a gateway in front of a stack of services, behind an
// httptest.Server.
type env struct {
	gw     *gateway.Gateway
	st     *stack
	hooks  *hooks
	url    string
	client *http.Client
	// bodyRead counts the bytes of request bodies the gateway has read.
	bodyRead *atomic.Int64
}

// countingBody counts what is read from a request's body into n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}

// newEnv starts the services on b, the gateway with the reference route map (from
// JSON) and the test set, and an httptest.Server; all closed in
// t.Cleanup.
func newEnv(t *testing.T, b bus.Broker, opts ...gateway.Option) *env {
	t.Helper()
	h := newHooks()
	st := startStack(t, b, b, h)
	return newEnvOn(t, st, h, opts...)
}

func newEnvOn(t *testing.T, st *stack, h *hooks, opts ...gateway.Option) *env {
	t.Helper()
	seed, err := gateway.ParseRoutes([]byte(referenceJSON))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(st.actor, append(seed, testSet()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	read := new(atomic.Int64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			// A copy of the request: the server looks at the original's
			// Body after the handler to decide whether to read the rest.
			counted := *r
			counted.Body = countingBody{r.Body, read}
			r = &counted
		}
		gw.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	// Release held actions before the server waits for their requests.
	t.Cleanup(func() { h.releaseAll() })
	return &env{gw: gw, st: st, hooks: h, url: ts.URL, client: ts.Client(), bodyRead: read}
}

// reply is a response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errorBody(t *testing.T) gateway.ErrorBody {
	t.Helper()
	var eb gateway.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return eb
}

// do sends a request; a non-empty body goes as application/json unless
// header says otherwise (pairs of name and value).
func (e *env) do(t *testing.T, method, path, body string, header ...string) reply {
	t.Helper()
	return send(t, e.client, method, e.url+path, body, header...)
}

func send(t *testing.T, c *http.Client, method, url, body string, header ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

// sameJSON reports whether two JSON texts are equal once compacted.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
