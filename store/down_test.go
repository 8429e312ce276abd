package store_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/store"
)

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOpenServerDownFailsWithinContext(t *testing.T) {
	uri := "mongodb://" + deadAddr(t) + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The dial timeout is far longer than the context: the context ends
	// the wait.
	db, err := store.Open(ctx, uri, "patbus_test", store.WithDialTimeout(time.Minute))
	elapsed := time.Since(start)
	if err == nil {
		db.Close(context.Background())
		t.Fatal("open of a dead address succeeded")
	}
	t.Logf("error: %v", err)
	checkCode(t, "open", err, patbus.CodeTimeout, context.DeadlineExceeded)
	if elapsed > 20*time.Second {
		t.Fatalf("open returned after %v, long after its context ended", elapsed)
	}
}

func TestOpenServerDownFailsAfterDialTimeout(t *testing.T) {
	uri := "mongodb://" + deadAddr(t) + "/"
	ctx := ctxFor(t)
	db, err := store.Open(ctx, uri, "patbus_test", store.WithDialTimeout(200*time.Millisecond))
	if err == nil {
		db.Close(context.Background())
		t.Fatal("open of a dead address succeeded")
	}
	t.Logf("error: %v", err)
	checkCode(t, "open", err, patbus.CodeUnavailable, store.ErrUnavailable)
	if !strings.Contains(err.Error(), "server unavailable") {
		t.Errorf("error %q does not say the server is unavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("open returned only when the test's context ended")
	}
}

// proxy forwards TCP connections from a loopback port to target until
// closed; Close also cuts every forwarded connection, as a server that
// goes away does.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
	// mute, once set, drops what clients send: the server sees no more
	// requests and the clients wait for answers that never come, as with
	// a server that hangs.
	mute atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.forward(s, c); s.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
	}
}

// forward copies what the client c sends to the server s, dropping it
// while the proxy is muted.
func (p *proxy) forward(s, c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && !p.mute.Load() {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops listening, cuts every connection and waits for the copies.
func (p *proxy) Close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// viaProxy opens a database of its own on MONGODB_URI's server through
// a proxy, with opts, and returns the proxy, its "users" collection and a
// user saved through it. The database is dropped through a direct
// connection at the end of the test.
func viaProxy(t *testing.T, opts ...store.Option) (*proxy, *store.Collection[user], user) {
	t.Helper()
	u, err := url.Parse(testenv.MongoURI(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	via := *u
	via.Host = p.l.Addr().String()
	// A direct connection: the server's hello names its own address,
	// which a replica set discovery would go to instead of the proxy.
	q := via.Query()
	q.Set("directConnection", "true")
	via.RawQuery = q.Encode()

	ctx := ctxFor(t)
	db, err := store.Open(ctx, via.String(), "patbus_test_"+randHex(6), opts...)
	if err != nil {
		t.Fatalf("open through the proxy: %v", err)
	}
	t.Cleanup(func() {
		// Drop the database through a direct connection.
		direct, err := store.Open(ctx, u.String(), db.Name())
		if err == nil {
			direct.Drop(ctx)
			direct.Close(ctx)
		}
	})
	t.Cleanup(func() { db.Close(context.Background()) })
	c, err := store.NewCollection[user](db, "users")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := c.Save(ctx, user{Name: "甲"})
	if err != nil {
		t.Fatalf("save through the proxy: %v", err)
	}
	return p, c, saved
}

func TestServerGoesAway(t *testing.T) {
	ctx := ctxFor(t)
	p, c, saved := viaProxy(t, store.WithDialTimeout(300*time.Millisecond))

	p.Close() // the server goes away

	// Within the dial timeout: unavailable.
	_, err := c.Load(ctx, saved.ID)
	t.Logf("load after the server went away: %v", err)
	if code := patbus.Code(err); code != patbus.CodeUnavailable {
		t.Fatalf("load: code %q, want %q (error: %v)", code, patbus.CodeUnavailable, err)
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("load: %v does not match ErrUnavailable", err)
	}

	// Within a context shorter than the dial timeout: timeout.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Save(short, user{Name: "乙"})
	checkCode(t, "save with a short context", err, patbus.CodeTimeout, context.DeadlineExceeded)
	if ctx.Err() != nil {
		t.Fatal("the operations returned only when the test's context ended")
	}
}

// A server that stops answering fails an operation whose context has no
// deadline once the store's own timeout (WithTimeout) passes, with the
// code "timeout", not "unavailable": the server is there, it is slow.
func TestServerHangsOwnTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p, c, saved := viaProxy(t, store.WithTimeout(timeout))

	p.mute.Store(true) // the server hangs
	start := time.Now()
	_, err := c.Load(context.Background(), saved.ID)
	elapsed := time.Since(start)
	t.Logf("load from a hung server after %v: %v", elapsed, err)
	checkCode(t, "load from a hung server", err, patbus.CodeTimeout, context.DeadlineExceeded)
	if errors.Is(err, store.ErrUnavailable) {
		t.Errorf("load: %v matches ErrUnavailable", err)
	}
	if elapsed < timeout {
		t.Errorf("load failed after %v, before the store's timeout of %v", elapsed, timeout)
	}
	if n := strings.Count(err.Error(), "incomplete read"); n > 1 {
		t.Errorf("error %q repeats the driver's text %d times", err, n)
	}
}
