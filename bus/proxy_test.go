package bus_test

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/internal/testenv"
)

// nodeProxy forwards TCP connections from its own port on 127.0.0.1 to a
// broker, so that a test can give one broker several addresses (one per
// proxy) and take an address down as a dead node would: Down resets every
// connection through it and refuses new ones (accepted and closed at
// once, before the AMQP handshake); Up lets them through again. Cut
// resets one connection, in the order they were made.
type nodeProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	pairs  []*nodePair
	down   bool
	refuse bool
	closed bool
	opened chan struct{} // closed and replaced when a connection is forwarded
}

type nodePair struct {
	client, server net.Conn
	once           sync.Once
}

func (p *nodePair) reset() {
	p.once.Do(func() {
		if tc, ok := p.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		_ = p.client.Close()
		_ = p.server.Close()
	})
}

func newNodeProxy(t testing.TB, target string) *nodeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &nodeProxy{ln: ln, target: target, opened: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// brokerHostPort returns host:port of the first address of
// PATBUS_AMQP_URL, and the URL itself.
func brokerHostPort(t testing.TB) (string, *url.URL) {
	t.Helper()
	raw := strings.TrimSpace(strings.Split(testenv.AMQPURL(t), ",")[0])
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse PATBUS_AMQP_URL: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	return host, u
}

// url returns base with its host replaced by the proxy's address.
func (p *nodeProxy) url(base *url.URL) string {
	u := *base
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *nodeProxy) addr() string { return p.ln.Addr().String() }

func (p *nodeProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, closed := p.down || p.refuse, p.closed
		p.mu.Unlock()
		if down || closed {
			_ = c.Close()
			if closed {
				return
			}
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		pr := &nodePair{client: c, server: s}
		p.mu.Lock()
		if p.closed || p.down || p.refuse {
			p.mu.Unlock()
			pr.reset()
			continue
		}
		p.pairs = append(p.pairs, pr)
		close(p.opened)
		p.opened = make(chan struct{})
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(pr, c, s)
		go p.pipe(pr, s, c)
	}
}

func (p *nodeProxy) pipe(pr *nodePair, from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				pr.reset()
				return
			}
		}
		if err != nil {
			pr.reset()
			return
		}
	}
}

// count returns how many connections the proxy has forwarded so far.
func (p *nodeProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// awaitCount waits up to d until the proxy has forwarded n connections.
func (p *nodeProxy) awaitCount(n int, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		got, opened := len(p.pairs), p.opened
		p.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-opened:
		case <-timer.C:
			return false
		}
	}
}

// cut resets the i-th connection (0-based, in the order accepted).
func (p *nodeProxy) cut(i int) {
	p.mu.Lock()
	pr := p.pairs[i]
	p.mu.Unlock()
	pr.reset()
}

// setDown takes the address down (every connection reset, new ones
// refused) or brings it up again.
func (p *nodeProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	var pairs []*nodePair
	if down {
		pairs = append(pairs, p.pairs...)
	}
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.reset()
	}
}

// setRefuse refuses new connections (or lets them through again) and
// leaves the current ones alone.
func (p *nodeProxy) setRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

func (p *nodeProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	pairs := append([]*nodePair(nil), p.pairs...)
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.reset()
	}
	p.wg.Wait()
}
