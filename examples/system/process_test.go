package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/examples/system/account"
	"github.com/patbus/patbus/examples/system/config"
	"github.com/patbus/patbus/examples/system/internal/systest"
	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// The gateway and the user service in processes of their own, on
// RabbitMQ: the user service is killed while requests are in flight, and
// every request is answered (200 before, 504 or 503 after) within the
// gateway's deadline, none hangs; started again, it serves again.
func TestKilledUserService(t *testing.T) {
	s := testSettings(t, testenv.AMQPURL(t))
	common := []string{"-amqp", s.amqp, "-namespace", s.namespace, "-log-level", "warn"}
	userArgs := append([]string{"user", "-mongodb", s.mongoURI, "-database", s.database, "-bcrypt-cost", "4"}, common...)
	const timeout = 2 * time.Second

	start := time.Now()
	userProc := startChild(t, userArgs...)
	userProc.waitLine(t, "user service", time.Minute)
	gw := startChild(t, append([]string{"gateway", "-addr", "127.0.0.1:0", "-timeout", timeout.String()}, common...)...)
	line := gw.waitLine(t, "gateway listening on ", time.Minute)
	base := strings.Fields(strings.TrimPrefix(line, "gateway listening on "))[0]

	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
	defer c.CloseIdleConnections()
	id := waitServing(t, c, base, 30*time.Second)
	t.Logf("serving after %v", time.Since(start))

	// 32 clients load the user in a loop; the user service dies under
	// them.
	type answer struct {
		status int
		took   time.Duration
		err    error
		after  bool // sent after the kill
	}
	var (
		mu      sync.Mutex
		answers []answer
		killed  atomic.Bool
		stop    atomic.Bool
		wg      sync.WaitGroup
		ok      atomic.Int64
	)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				after := killed.Load()
				t0 := time.Now()
				res, err := c.Get(base + "/user/" + id)
				a := answer{took: time.Since(t0), err: err, after: after}
				if err == nil {
					a.status = res.StatusCode
					readAll(res)
					if a.status == 200 {
						ok.Add(1)
					}
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}
	waitUntil(t, 30*time.Second, "200 answers before the kill", func() bool { return ok.Load() >= 100 })
	killed.Store(true)
	if err := userProc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-userProc.done
	// Long enough for every client to meet the dead service more than once.
	deadline := time.Now().Add(3 * timeout)
	waitUntil(t, time.Minute, "answers after the kill", func() bool { return time.Now().After(deadline) })
	stop.Store(true)
	wg.Wait()

	var before, failed int
	byStatus := map[int]int{}
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("a request got no answer (it took %v): %v", a.took, a.err)
		case a.took > timeout+2*time.Second:
			t.Errorf("a request took %v to be answered %d, past the deadline of %v", a.took, a.status, timeout)
		case a.status != 200 && a.status != 503 && a.status != 504:
			t.Errorf("a request was answered %d", a.status)
		}
		if !a.after {
			before++
		} else if a.status != 200 {
			failed++
		}
		byStatus[a.status]++
	}
	t.Logf("%d requests, %d sent before the kill; answers by status: %v", len(answers), before, byStatus)
	if failed == 0 {
		t.Fatal("no request sent after the kill failed: was the service killed?")
	}

	// Started again, the user service serves again.
	t0 := time.Now()
	startChild(t, userArgs...).waitLine(t, "user service", time.Minute)
	t.Logf("restarted in %v", time.Since(t0))
	waitServing(t, c, base, 30*time.Second)
	t.Logf("serving again after %v", time.Since(t0))
	for i := 0; i < 20; i++ {
		if status, _, body := do(t, c, "GET", base+"/user/"+id, ""); status != 200 {
			t.Fatalf("after the restart: %d %s", status, body)
		}
	}
	if t.Failed() {
		t.Logf("gateway output:\n%s", gw.output())
	}
}

// The account and config services in processes of their own, on
// RabbitMQ, with the user service, which creates the sample users that
// the account service reads from MongoDB. The test process, on a
// connection of its own, asks the account queue for users as
// examples/rpcaccount's client does, acts on the account action and on
// config-server, and then stops each process with SIGTERM, which it must
// exit 0 on.
func TestAccountAndConfigProcesses(t *testing.T) {
	s := testSettings(t, testenv.AMQPURL(t))
	common := []string{"-amqp", s.amqp, "-namespace", s.namespace, "-log-level", "warn"}
	mongo := []string{"-mongodb", s.mongoURI, "-database", s.database}
	const gatewayAddr = "127.0.0.1:18080" // told by the configuration only

	userProc := startChild(t, append(append([]string{"user", "-bcrypt-cost", "4"}, mongo...), common...)...)
	userProc.waitLine(t, "user service", time.Minute)
	accountProc := startChild(t, append(append([]string{"account"}, mongo...), common...)...)
	accountProc.waitLine(t, "account service on the queue "+s.accountQueue(), time.Minute)
	configProc := startChild(t, append([]string{"config", "-gateway-addr", gatewayAddr}, common...)...)
	configProc.waitLine(t, "config service serving on RabbitMQ", time.Minute)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b, err := s.openBroker(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	caller, err := services.NewClient(s.serviceOptions(b)...)
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	for _, p := range []string{user.PatternList, account.Pattern, config.Pattern} {
		if err := caller.WaitFor(ctx, p); err != nil {
			t.Fatalf("the catalog does not show %s: %v", p, err)
		}
	}
	users, err := services.Call[[]user.User](ctx, caller, user.PatternList, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, u := range users {
		if u.Name == "甲" {
			id = u.ID
		}
	}
	if id == "" {
		t.Fatalf("the user service has no 甲: %+v", users)
	}

	// getUserById on the account queue: a user by its id, and
	// examples/rpcaccount's request with a numeric uid, which no user has.
	rpcTests := []struct{ body, want string }{
		{`{"method":"getUserById","uid":"` + id + `"}`, `{"state":1000,"msg":"ok","data":{"uid":"` + id + `","name":"甲","created":`},
		{`{"uid":2}`, `{"state":2000,"msg":"user not found","data":null}`},
	}
	for _, tt := range rpcTests {
		if got := systest.CallQueue(t, ctx, b, s.accountQueue(), tt.body); !strings.HasPrefix(got, tt.want) {
			t.Errorf("RPC %s on %s: %s, want %s…", tt.body, s.accountQueue(), got, tt.want)
		}
	}
	acct, err := services.Call[account.Response](ctx, caller, account.Pattern, account.Request{UID: id})
	if err != nil || acct.State != account.StateOK || acct.Data == nil || acct.Data.Name != "甲" {
		t.Errorf("act %s: %+v %v", account.Pattern, acct, err)
	}

	// config-server answers every act pinned to it with this system's
	// configuration.
	for _, in := range []any{nil, map[string]any{"cmd": "get"}} {
		cfg, err := services.Call[config.Config](ctx, caller, config.Pattern, in)
		if err != nil || cfg.AccountQueue != s.accountQueue() || cfg.Gateway != gatewayAddr || len(cfg.Routes) == 0 {
			t.Errorf("act %s with %v: %+v %v", config.Pattern, in, cfg, err)
		}
	}

	for _, p := range []*child{configProc, accountProc, userProc} {
		stopAndWait(t, p)
	}
	if t.Failed() {
		t.Logf("account output:\n%s\nconfig output:\n%s", accountProc.output(), configProc.output())
	}
}

// waitServing waits until GET /user answers 200 and returns the id of
// the first user.
func waitServing(t *testing.T, c *http.Client, base string, within time.Duration) string {
	t.Helper()
	var last string
	var id string
	waitUntil(t, within, "GET /user to answer 200", func() bool {
		status, _, body := do(t, c, "GET", base+"/user", "")
		last = fmt.Sprint(status, " ", body)
		if status != 200 {
			return false
		}
		i := strings.Index(body, `"id":"`)
		if i < 0 {
			return false
		}
		id = body[i+6 : i+30]
		return true
	})
	if id == "" {
		t.Fatalf("no user: %s", last)
	}
	return id
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole system as the command runs it: it serves until SIGTERM, then
// drains and exits 0.
func TestWholeSystemStopsOnSIGTERM(t *testing.T) {
	p := startChild(t, "-addr", "127.0.0.1:0", "-amqp", "", "-mongodb", "", "-bcrypt-cost", "4", "-log-level", "warn")
	line := p.waitLine(t, "gateway listening on ", time.Minute)
	base := strings.TrimPrefix(line, "gateway listening on ")
	p.waitLine(t, "Ctrl-C stops it.", 10*time.Second)
	c := &http.Client{Timeout: 30 * time.Second}
	defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
	defer c.CloseIdleConnections()
	if status, _, body := do(t, c, "GET", base+"/user", ""); status != 200 || !strings.Contains(body, `"name":"丙"`) {
		t.Fatalf("GET /user: %d %s", status, body)
	}
	stopAndWait(t, p)
}

// Each part as its own process, with its health endpoint: /readyz
// answers 200 (system probe succeeds), and SIGTERM drains it.
func TestPartsServeHealth(t *testing.T) {
	for _, part := range []string{"user", "account", "config"} {
		t.Run(part, func(t *testing.T) {
			args := []string{part, "-amqp", "", "-health", "127.0.0.1:0", "-log-level", "warn"}
			if part != "config" {
				args = append(args, "-mongodb", "") // an embedded FerretDB of its own
			}
			if part == "user" {
				args = append(args, "-bcrypt-cost", "4")
			}
			p := startChild(t, args...)
			line := p.waitLine(t, "health on http://", time.Minute)
			url := strings.Fields(strings.TrimPrefix(line, "health on "))[0]
			p.waitLine(t, "serving on the in-memory broker", 30*time.Second)
			var out strings.Builder
			for _, u := range []string{url, strings.Replace(url, "/healthz", "/readyz", 1)} {
				if code := run(t.Context(), []string{"probe", u}, &out, &out); code != 0 {
					t.Fatalf("system probe %s exited %d: %s\n%s", u, code, out.String(), p.output())
				}
			}
			stopAndWait(t, p)
			if code := run(t.Context(), []string{"probe", "-timeout", "500ms", url}, &out, &out); code != 1 {
				t.Fatalf("system probe of a stopped part exited %d, want 1", code)
			}
		})
	}
}

// stopAndWait sends SIGTERM to the process and waits until it exits,
// which it must do with status 0 within 20 seconds.
func stopAndWait(t *testing.T, p *child) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the process did not exit within 20s of SIGTERM:\n%s", p.output())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the process exited %d after SIGTERM:\n%s", code, p.output())
	}
}

// The user service creates the sample users in an empty collection
// unless it is given -samples=false.
func TestUserSamplesFlag(t *testing.T) {
	for _, c := range []struct {
		flag string
		want int64
	}{{"-samples=true", int64(len(user.Samples()))}, {"-samples=false", 0}} {
		t.Run(c.flag, func(t *testing.T) {
			db, uri := systest.DB(t)
			p := startChild(t, "user", "-amqp", "", "-mongodb", uri, "-database", db.Name(),
				"-bcrypt-cost", "4", "-log-level", "warn", c.flag)
			p.waitLine(t, "serving on the in-memory broker", time.Minute)
			users, err := store.NewCollection[user.User](db, user.CollectionName)
			if err != nil {
				t.Fatal(err)
			}
			n, err := users.Count(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if n != c.want {
				t.Errorf("with %s the service created %d users, want %d", c.flag, n, c.want)
			}
			stopAndWait(t, p)
		})
	}
}
