package bus_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// stallProxy forwards TCP on 127.0.0.1 until stalled: then it holds every
// byte in both directions, as a link that stops without closing does.
type stallProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	gate  chan struct{} // closed while bytes flow
	conns []net.Conn
	wg    sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, gate: make(chan struct{})}
	close(p.gate)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = to.Close()
			}
			return
		}
	}
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *stallProxy) resume() {
	p.mu.Lock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
}

func (p *stallProxy) close() {
	p.resume()
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// On a link that stalls without closing, calls that wait on the broker
// still return by their context (well before the heartbeat would notice).
func TestRabbitStalledLinkHonoursContext(t *testing.T) {
	url := testenv.AMQPURL(t)
	host := url[strings.LastIndex(url, "@")+1:]
	host = strings.TrimSuffix(host[:strings.IndexAny(host+"/", "/")], "/")
	px := newStallProxy(t, host)
	proxied := strings.Replace(url, host, px.ln.Addr().String(), 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Dial(ctx, []string{proxied}, bus.WithHeartbeat(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	q := randName("patbus.test.stall")
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: q, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}

	px.stall()
	big := make([]byte, 4<<20)
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Consume", func(c context.Context) error { _, err := b.Consume(c, q, bus.ConsumeOptions{}); return err }},
		{"DirectReply", func(c context.Context) error { _, err := bus.DirectReplier(b).DirectReply(c); return err }},
		{"DeclareQueue", func(c context.Context) error {
			_, err := b.DeclareQueue(c, bus.Queue{Name: q + ".x", AutoDelete: true})
			return err
		}},
		{"Publish 4 MiB", func(c context.Context) error {
			// Several, so that one fills the socket and the others wait.
			for i := 0; i < 4; i++ {
				if _, err := b.Publish(c, "", q, bus.Message{Body: big}); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, c := range calls {
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- c.call(cctx) }()
		select {
		case err := <-done:
			if err == nil && c.name != "Publish 4 MiB" {
				t.Errorf("%s on a stalled link succeeded", c.name)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s with a 300 ms context still blocked after 10 s", c.name)
			px.resume()
			<-done
		}
		ccancel()
	}
	px.resume()
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	other := dialRabbit(t, url)
	_ = other.DeleteQueue(context.Background(), q)
}
