package bus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// halfProxy forwards TCP connections from 127.0.0.1 to a broker and can
// reset only the client side of them: the broker side stays open and
// silent, so the broker keeps the old connection (and its exclusive
// queues) until its heartbeat timeout.
type halfProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	pairs  []*proxyPair
	closed bool
}

type proxyPair struct {
	client, server net.Conn
	once           sync.Once
	cut            chan struct{} // closed when the client side is reset
}

func newHalfProxy(t *testing.T, target string) *halfProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &halfProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *halfProxy) addr() string { return p.ln.Addr().String() }

func (p *halfProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		pr := &proxyPair{client: c, server: s, cut: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.pairs = append(p.pairs, pr)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(pr, c, s, true)
		go p.pipe(pr, s, c, false)
	}
}

// pipe copies from one side to the other. Once the pair is cut, whatever
// the broker sends is read and dropped (nothing reaches the broker any
// more), and the broker side is closed only by close.
func (p *halfProxy) pipe(pr *proxyPair, from, to net.Conn, toServer bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		select {
		case <-pr.cut:
			if toServer {
				return // the client side is gone; leave the broker side silent
			}
			if err != nil {
				return
			}
			continue // drop what the broker sends
		default:
		}
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				_ = from.Close()
				return
			}
		}
		if err != nil {
			_ = to.Close()
			return
		}
	}
}

// cutClients resets the client side of every current connection.
func (p *halfProxy) cutClients() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.once.Do(func() {
			close(pr.cut)
			if tc, ok := pr.client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
			_ = pr.client.Close()
		})
	}
}

func (p *halfProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, pr := range p.pairs {
		_ = pr.client.Close()
		_ = pr.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func exclName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// TestRabbitExclusiveQueueSurvivesOneSidedReset: the client's connections
// die on the client side only, so the broker still holds the exclusive
// queue for the old connection when the client reconnects (405), and
// deletes it when it finally drops that connection. The queue must come
// back under the same name with its binding, and the same Subscription
// must keep consuming it.
func TestRabbitExclusiveQueueSurvivesOneSidedReset(t *testing.T) {
	raw := strings.TrimSpace(strings.Split(testenv.AMQPURL(t), ",")[0])
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse PATBUS_AMQP_URL: %v", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5672")
	}
	px := newHalfProxy(t, target)
	u.Host = px.addr()

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// Cleanup of the exchange on a direct connection, whatever happens.
	exchange := exclName("patbus.test.excl-")
	direct, err := bus.Dial(ctx, []string{raw})
	if err != nil {
		t.Fatalf("dial direct: %v", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = direct.DeleteExchange(dctx, exchange)
		_ = direct.Close()
	}()

	r, err := bus.Dial(ctx, []string{u.String()},
		bus.WithHeartbeat(2*time.Second),
		bus.WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer r.Close()

	if err := r.DeclareExchange(ctx, bus.Exchange{Name: exchange, Kind: bus.Direct}); err != nil {
		t.Fatalf("declare exchange: %v", err)
	}
	q, err := r.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	if err := r.Bind(ctx, bus.Binding{Exchange: exchange, Queue: q, Key: "k"}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	// A second exclusive queue nobody consumes: only the topology replay
	// can bring it back.
	idle, err := r.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatalf("declare idle queue: %v", err)
	}
	sub, err := r.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatalf("consume: %v", err)
	}

	// receive waits up to d for the delivery with body want, acking
	// everything; it fails the test if the subscription ends.
	receive := func(want string, d time.Duration) bool {
		t.Helper()
		timer := time.NewTimer(d)
		defer timer.Stop()
		for {
			select {
			case dl, ok := <-sub.Deliveries():
				if !ok {
					t.Fatalf("subscription ended: %v", sub.Err())
				}
				_ = dl.Ack()
				if string(dl.Body) == want {
					return true
				}
			case <-timer.C:
				return false
			}
		}
	}
	// send publishes a mandatory message and reports whether the broker
	// routed and confirmed it.
	send := func(ex, key, body string) error {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		defer pcancel()
		return bus.PublishAndWait(pctx, r, ex, key, bus.Message{Body: []byte(body), Mandatory: true})
	}

	if err := send("", q, "before"); err != nil {
		t.Fatalf("publish before the reset: %v", err)
	}
	if !receive("before", 5*time.Second) {
		t.Fatal("no delivery before the reset")
	}

	px.cutClients()

	// Poll until a message through the default exchange reaches the same
	// Subscription: it is routed to the old queue (and lost) as long as
	// the broker holds the old connection, and unroutable while nothing
	// declared the queue again.
	deadline := time.Now().Add(35 * time.Second)
	var lastErr error
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("exclusive queue %q not back within 35s (last publish error: %v, sub.Err: %v)", q, lastErr, sub.Err())
		}
		body := "after-" + hex.EncodeToString([]byte{byte(i >> 8), byte(i)})
		lastErr = send("", q, body)
		if lastErr == nil {
			if receive(body, 500*time.Millisecond) {
				break
			}
			continue
		}
		if !errors.Is(lastErr, bus.ErrUnroutable) && !errors.Is(lastErr, bus.ErrDisconnected) &&
			!errors.Is(lastErr, context.DeadlineExceeded) {
			t.Logf("publish: %v", lastErr)
		}
		// Give the reconnect a moment (bounded by the deadline above).
		if receive("", 200*time.Millisecond) {
			t.Fatal("unexpected empty delivery")
		}
	}

	// The binding came back with the queue.
	if err := send(exchange, "k", "bound"); err != nil {
		t.Fatalf("publish through the bound exchange: %v", err)
	}
	if !receive("bound", 5*time.Second) {
		t.Fatal("no delivery through the bound exchange after the reset")
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Subscription.Err after the reset = %v, want nil", err)
	}
	// The broker has dropped the old connection (the consumed queue was
	// declared again), so the idle queue went with it too: it must become
	// routable again.
	for err := send("", idle, "idle"); err != nil; err = send("", idle, "idle") {
		if time.Now().After(deadline) {
			t.Fatalf("idle exclusive queue %q not back within 35s: %v", idle, err)
		}
		if !errors.Is(err, bus.ErrUnroutable) {
			t.Logf("publish to the idle queue: %v", err)
		}
		if receive("", 200*time.Millisecond) {
			t.Fatal("unexpected empty delivery")
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := sub.Cancel(cctx); err != nil {
		t.Fatalf("cancel: %v", err)
	}
}
