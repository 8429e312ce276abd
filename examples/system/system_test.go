package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/examples/system/internal/embedmongo"
	"github.com/patbus/patbus/examples/system/user"
	patgw "github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
)

// startTestSystem starts the whole system with s and g in this process,
// the gateway serving on a free port, and returns it with the gateway's
// base URL; the test's cleanup drains it.
func startTestSystem(t testing.TB, s *settings, g *gatewayFlags) (*system, string) {
	t.Helper()
	if g == nil {
		g = &gatewayFlags{timeout: patgw.DefaultTimeout, maxBody: patgw.DefaultMaxBodyBytes}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys, err := startSystem(ctx, s, g, ln.Addr().String(), "", cheapHashes())
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sys.gw.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("the gateway: %v", err)
		}
		if err := sys.shutdown(); err != nil {
			t.Errorf("drain: %v", err)
		}
	})
	return sys, "http://" + ln.Addr().String()
}

// The gateway over RabbitMQ and MongoDB, through a real HTTP client: the
// whole user CRUD and every status the system produces.
func TestGatewayOnRabbitMQ(t *testing.T) {
	s := testSettings(t, testenv.AMQPURL(t))
	sys, base := startTestSystem(t, s, nil)
	c := &http.Client{Timeout: 30 * time.Second}
	defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
	defer c.CloseIdleConnections()

	// The sample users, in order.
	status, _, body := do(t, c, "GET", base+"/user", "")
	if status != 200 || !strings.Contains(body, `"name":"asd"`) || strings.Index(body, `"甲"`) > strings.Index(body, `"丙"`) {
		t.Fatalf("GET /user: %d %s", status, body)
	}

	// Create, load, edit, log in, delete.
	status, hdr, body := do(t, c, "POST", base+"/user", `{"name":"丁","password":"秘密"}`)
	if status != 200 || hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Request-Id") == "" {
		t.Fatalf("POST /user: %d %v %s", status, hdr, body)
	}
	u := decodeUser(t, body)
	if u.Name != "丁" || strings.Contains(body, "password") || strings.Contains(body, "秘密") {
		t.Fatalf("created %s", body)
	}
	if status, _, body := do(t, c, "GET", base+"/user/"+u.ID, ""); status != 200 || decodeUser(t, body).Name != "丁" {
		t.Fatalf("GET /user/:id: %d %s", status, body)
	}
	if status, _, body := do(t, c, "PUT", base+"/user/"+u.ID, `{"name":"戊"}`); status != 200 || !strings.HasPrefix(body, `{"success":true,"user":{"id":"`+u.ID) || !strings.Contains(body, `"name":"戊"`) {
		t.Fatalf("PUT /user/:id: %d %s", status, body)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"user":"戊","password":"秘密"}`, `{"code":1000}`},
		{`{"user":"戊","password":"wrong"}`, `{"code":2100}`},
		{`{"user":"丁","password":"秘密"}`, `{"code":2100}`},
		{`{"user":"asd","password":"123"}`, `{"code":1000}`},
	} {
		if status, _, body := do(t, c, "POST", base+"/login", tt.body); status != 200 || body != tt.want {
			t.Errorf("POST /login %s: %d %s, want %s", tt.body, status, body, tt.want)
		}
	}
	if status, _, body := do(t, c, "DELETE", base+"/user/"+u.ID, ""); status != 200 || body != `{"success":true}` {
		t.Fatalf("DELETE /user/:id: %d %s", status, body)
	}
	if status, _, body := do(t, c, "DELETE", base+"/user/"+u.ID, ""); status != 200 || body != `{"success":false}` {
		t.Fatalf("DELETE of a deleted user: %d %s, want {success:false}", status, body)
	}
	if status, _, body := do(t, c, "PUT", base+"/user/"+u.ID, `{"name":"己"}`); status != 200 || body != `{"success":false}` {
		t.Fatalf("PUT of a deleted user: %d %s, want {success:false}", status, body)
	}
	if status, _, body := do(t, c, "GET", base+"/config", ""); status != 200 || !strings.Contains(body, `"database":"`+s.database+`"`) {
		t.Fatalf("GET /config: %d %s", status, body)
	}

	// The statuses of failures.
	big := `{"name":"` + strings.Repeat("x", patgw.DefaultMaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"a user that is not there", "GET", "/user/" + u.ID, "", "", 404, "not_found"},
		{"a path no route has", "GET", "/users", "", "", 404, "not_found"},
		{"an id that is not an id", "GET", "/user/7", "", "", 400, "invalid_input"},
		{"an edit of an id that is not an id", "PUT", "/user/7", "application/json", `{"name":"x"}`, 400, "invalid_input"},
		{"a body that is not JSON", "POST", "/user", "application/json", `{"name":`, 400, "invalid_input"},
		{"a body with an unknown field", "POST", "/user", "application/json", `{"name":"x","role":"admin"}`, 400, "invalid_input"},
		{"a user without a name", "POST", "/user", "application/json", `{}`, 400, "invalid_input"},
		{"an edit with nothing to change", "PUT", "/user/" + u.ID, "application/json", `{}`, 400, "invalid_input"},
		{"a body nested too deep", "POST", "/user", "application/json", strings.Repeat("[", 100) + strings.Repeat("]", 100), 400, "invalid_input"},
		{"a verb the path does not take", "PATCH", "/user", "application/json", `{}`, 405, "method_not_allowed"},
		{"a name that is taken", "POST", "/user", "application/json", `{"name":"乙"}`, 409, "conflict"},
		{"a body over 1 MiB", "POST", "/user", "application/json", big, 413, "too_large"},
		{"a body that is not JSON by its type", "POST", "/user", "text/plain", `{"name":"x"}`, 415, "unsupported_media_type"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		req.Header.Set("X-Request-Id", "test-"+strings.ReplaceAll(tt.name, " ", "-"))
		res, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(res))
		if res.StatusCode != tt.status || !strings.Contains(b.String(), `"code":"`+tt.code+`"`) {
			t.Errorf("%s: %s %s answered %d %s, want %d with code %s", tt.name, tt.method, tt.path, res.StatusCode, b.String(), tt.status, tt.code)
		}
		if got := res.Header.Get("X-Request-Id"); got != req.Header.Get("X-Request-Id") {
			t.Errorf("%s: X-Request-Id %q, want the request's", tt.name, got)
		}
		if tt.status == 405 && !strings.Contains(res.Header.Get("Allow"), "POST") {
			t.Errorf("%s: Allow %q", tt.name, res.Header.Get("Allow"))
		}
	}
	// Nothing of the refused requests was stored.
	if _, _, body := do(t, c, "GET", base+"/user", ""); strings.Count(body, `"id"`) != 4 {
		t.Fatalf("after the refused requests: %s, want the 4 sample users", body)
	}

	// Health and readiness.
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, _, body := do(t, c, "GET", base+p, ""); status != 200 {
			t.Errorf("GET %s: %d %s", p, status, body)
		}
	}

	// A service that stopped: no route, 503, at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sys.svcs[2].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if status, _, body := do(t, c, "GET", base+"/config", ""); status != 503 || !strings.Contains(body, `"code":"no_route"`) {
		t.Fatalf("GET /config with the config service stopped: %d %s, want 503 no_route", status, body)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the 503 took %v", d)
	}
}

func readAll(res *http.Response) string {
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// 500 creates from 50 clients through the gateway and RabbitMQ: every
// user is stored once, with ids all different.
func TestConcurrentCreates(t *testing.T) {
	s := testSettings(t, testenv.AMQPURL(t))
	_, base := startTestSystem(t, s, nil)
	const clients, n = 50, 500
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
	defer c.CloseIdleConnections()
	var next sync.Mutex
	i := 0
	ids := make(chan string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				req, _ := http.NewRequest("POST", base+"/user", strings.NewReader(fmt.Sprintf(`{"name":"用户%03d"}`, k)))
				req.Header.Set("Content-Type", "application/json")
				res, err := c.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body := readAll(res)
				if res.StatusCode != 200 {
					errs <- fmt.Errorf("create %d: %d %s", k, res.StatusCode, body)
					continue
				}
				ids <- decodeUser(t, body).ID
			}
		}()
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("the id %s was given twice", id)
		}
		seen[id] = true
	}
	_, _, body := do(t, c, "GET", base+"/user", "")
	stored := 0
	for k := 0; k < n; k++ {
		if cnt := strings.Count(body, fmt.Sprintf(`"name":"用户%03d"`, k)); cnt != 1 {
			t.Errorf("用户%03d is stored %d times", k, cnt)
		} else {
			stored++
		}
	}
	if len(seen) != n || stored != n || strings.Count(body, `"id"`) != n+len(user.Samples()) {
		t.Fatalf("%d created, %d stored once, %d users in all; want %d, %d, %d", len(seen), stored, strings.Count(body, `"id"`), n, n, n+len(user.Samples()))
	}
}

// MongoDB goes away: the store's "unavailable" is a 503, and the system
// serves again when it is back.
func TestMongoDBDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := embedmongo.Start(ctx, embedmongo.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	t.Cleanup(func() { _ = srv.Stop() })
	s := &settings{mongoURI: srv.URI(), database: "patbus_test_down", namespace: "patbus-test-down", logLevel: "error"}
	if err := s.check(testWriter{t}); err != nil {
		t.Fatal(err)
	}
	_, base := startTestSystem(t, s, &gatewayFlags{timeout: 30 * time.Second, maxBody: patgw.DefaultMaxBodyBytes})
	c := &http.Client{Timeout: time.Minute}
	defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
	defer c.CloseIdleConnections()
	if status, _, body := do(t, c, "GET", base+"/user", ""); status != 200 {
		t.Fatalf("GET /user: %d %s", status, body)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if status, _, body := do(t, c, "GET", base+"/user", ""); status != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("GET /user with MongoDB down: %d %s, want 503 unavailable", status, body)
	}
	// The same server, on the same address and data, comes back.
	srv, err = embedmongo.Start(ctx, embedmongo.Config{Addr: addr, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, body := do(t, c, "GET", base+"/user", "")
		if status == 200 && strings.Count(body, `"id"`) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /user after MongoDB came back: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
