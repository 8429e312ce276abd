package gateway_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
)

// serving is a gateway running in Serve on a loopback listener.
type serving struct {
	gw     *gateway.Gateway
	url    string
	addr   string
	done   chan error // Serve's result
	cancel context.CancelFunc
	client *http.Client
}

func serve(t *testing.T, actor gateway.Actor, opts ...gateway.Option) *serving {
	t.Helper()
	gw, err := gateway.New(actor, []gateway.RouteSet{referenceMap(), testSet()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{gw: gw, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), done: make(chan error, 1), cancel: cancel}
	tr := &http.Transport{}
	s.client = &http.Client{Transport: tr}
	go func() { s.done <- gw.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		_ = gw.Close()
		<-s.done
		tr.CloseIdleConnections()
	})
	return s
}

// waitFor polls cond every few milliseconds until it holds, or fails the
// test after 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Shutdown answers the request in flight, then returns; Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		h := newHooks()
		t.Cleanup(h.releaseAll)
		s := serve(t, startStack(t, b, b, h).actor)
		if r := send(t, s.client, "GET", s.url+"/readyz", ""); r.status != 200 {
			t.Fatalf("readyz %d %s", r.status, r.body)
		}
		inflight := make(chan reply, 1)
		go func() {
			res, err := s.client.Get(s.url + "/test/hold/1")
			if err != nil {
				inflight <- reply{status: -1, body: []byte(err.Error())}
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			inflight <- reply{status: res.StatusCode, body: body}
		}()
		if n := <-h.started; n != "1" {
			t.Fatalf("held %q", n)
		}
		shut := make(chan error, 1)
		go func() { shut <- s.gw.Shutdown(context.Background()) }()
		// The listener closes: new connections are refused.
		waitFor(t, "the listener to close", func() bool {
			c, err := net.Dial("tcp", s.addr)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		rec := httptest.NewRecorder()
		s.gw.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != 503 {
			t.Errorf("readyz while draining: %d", rec.Code)
		}
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a request in flight", err)
		case r := <-inflight:
			t.Fatalf("the request in flight ended before its action: %d %s", r.status, r.body)
		default:
		}
		h.releaseAll()
		if r := <-inflight; r.status != 200 || !sameJSON(r.body, []byte(`{"released":"1"}`)) {
			t.Errorf("the request in flight got %d %s", r.status, r.body)
		}
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-s.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.done <- nil // for the cleanup
	})
}

// A Shutdown whose context ends cuts the request in flight off.
func TestShutdownDeadline(t *testing.T) {
	h := newHooks()
	t.Cleanup(h.releaseAll)
	s := serve(t, localActor(t, testenv.Memory(t), h))
	inflight := make(chan error, 1)
	go func() {
		res, err := s.client.Get(s.url + "/test/hold/2")
		if err == nil {
			res.Body.Close()
		}
		inflight <- err
	}()
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.gw.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want a deadline error", err)
	}
	if err := <-inflight; err == nil {
		t.Error("the request in flight was answered")
	}
}

// Run serves on its address until its context ends.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	gw, err := gateway.New(localActor(t, testenv.Memory(t), nil), []gateway.RouteSet{referenceMap()}, gateway.WithAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	waitFor(t, "Run to serve", func() bool {
		res, err := c.Get("http://" + addr + "/user")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := gw.Run(context.Background()); !errors.Is(err, patbus.ErrClosed) {
		t.Errorf("Run after the end = %v, want ErrClosed", err)
	}
	bad, err := gateway.New(localActor(t, testenv.Memory(t), nil), []gateway.RouteSet{referenceMap()}, gateway.WithAddr("127.0.0.1:-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a bad address = %v", err)
	}
}

// Slow clients are cut off by the server's timeouts.
func TestSlowClients(t *testing.T) {
	s := serve(t, localActor(t, testenv.Memory(t), nil),
		gateway.WithReadHeaderTimeout(200*time.Millisecond), gateway.WithReadTimeout(400*time.Millisecond))
	for _, c := range []struct {
		name string
		sent string
	}{
		{"headers never end", "GET /user HTTP/1.1\r\nHost: x\r\n"},
		{"nothing sent", ""},
		{"body never ends", "POST /test/echo/1/2 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.sent); err != nil {
				t.Fatal(err)
			}
			// The server must close the connection long before this.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept the connection open (read %q)", got)
			}
			if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400") && !strings.HasPrefix(string(got), "HTTP/1.1 408") {
				t.Errorf("answer %q", got)
			}
		})
	}
}
