package engine

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// waitIdle waits until n goroutines wait for the turn.
func waitIdle(t *testing.T, r *relay, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.idle)
		r.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines wait for the turn, want %d", got, n)
		}
		runtime.Gosched()
	}
}

// The turn goes to the goroutine that went idle last, and when nobody
// waits it goes to the next one that asks.
func TestRelayPassesToTheLastIdle(t *testing.T) {
	var r relay
	if !r.take(make(chan struct{}, 1)) {
		t.Fatal("the first take did not get the turn")
	}
	got := make(chan string, 3)
	wait := func(name string) {
		turn := make(chan struct{}, 1)
		if r.take(turn) {
			got <- name
		} else {
			got <- name + " (closed)"
		}
	}
	go wait("a")
	waitIdle(t, &r, 1)
	go wait("b")
	waitIdle(t, &r, 2)

	r.pass()
	if g := <-got; g != "b" {
		t.Fatalf("the turn went to %s, want b (idle last)", g)
	}
	r.pass()
	if g := <-got; g != "a" {
		t.Fatalf("the turn went to %s, want a", g)
	}
	r.pass() // nobody waits: the turn is free
	if !r.take(make(chan struct{}, 1)) {
		t.Fatal("a take after the turn was left free did not get it")
	}
}

// close releases every idle goroutine and refuses later takes.
func TestRelayClose(t *testing.T) {
	var r relay
	r.take(make(chan struct{}, 1))
	got := make(chan bool, 2)
	for range 2 {
		go func() { got <- r.take(make(chan struct{}, 1)) }()
	}
	waitIdle(t, &r, 2)
	r.close()
	r.close() // idempotent
	for range 2 {
		if <-got {
			t.Fatal("an idle goroutine got the turn after close")
		}
	}
	if r.take(make(chan struct{}, 1)) {
		t.Fatal("take after close got the turn")
	}
}

// goroutineID is the calling goroutine's number, from its stack header.
func goroutineID() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	return s[:strings.IndexByte(s, ' ')]
}

// One message at a time keeps to the same two goroutines of a larger pool
// (the one that holds the turn and the one that serves), where receiving
// straight from the channel would go round the pool.
func TestOneAtATimeReusesTwoGoroutines(t *testing.T) {
	const pool = 16
	b := testenv.Memory(t)
	r := newRig(t, b)
	seen := make(chan string, 100)
	c := r.start(t, Config{Kind: patbus.KindWork, Prefetch: pool, Handler: patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		seen <- goroutineID()
		return nil
	})})
	ids := map[string]bool{}
	for range 40 {
		// Every goroutine but the one holding the turn is idle again.
		waitIdle(t, &c.relay, pool-1)
		r.publish(t, bus.Message{})
		r.next(t)
		ids[<-seen] = true
	}
	if len(ids) > 2 {
		t.Errorf("40 messages one at a time ran on %d goroutines of %d, want at most 2", len(ids), pool)
	}
}
