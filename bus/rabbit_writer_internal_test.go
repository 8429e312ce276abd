package bus

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Writes from many goroutines reach the socket whole and in each writer's
// order, and Close hands over what is still buffered.
func TestCoalescingConnKeepsWrites(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	const writers, each = 8, 500
	got := make(chan error, 1)
	go func() {
		next := make([]int, writers)
		sc := bufio.NewScanner(server)
		n := 0
		for sc.Scan() {
			var w, i int
			if _, err := fmt.Sscanf(sc.Text(), "w%d:%d", &w, &i); err != nil || w >= writers {
				got <- fmt.Errorf("torn write %q", sc.Text())
				return
			}
			if i != next[w] {
				got <- fmt.Errorf("writer %d: got %d, want %d", w, i, next[w])
				return
			}
			next[w]++
			n++
		}
		if n != writers*each {
			got <- fmt.Errorf("read %d lines, want %d", n, writers*each)
			return
		}
		got <- nil
	}()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				line := fmt.Sprintf("w%d:%d\n", w, i)
				if n, err := c.Write([]byte(line)); err != nil || n != len(line) {
					t.Errorf("Write = %d, %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// A socket that fails makes the next writes fail, and closes the socket so
// that a reader on it (amqp091's) ends at once.
func TestCoalescingConnFailsAfterSocketError(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	server.Close()
	var err error
	for i := 0; err == nil; i++ {
		if i > 1000 {
			t.Fatal("writes keep succeeding on a closed socket")
		}
		_, err = c.Write([]byte("x"))
		if err == nil {
			c.waitFlushed()
		}
	}
	if _, rerr := c.Read(make([]byte, 1)); rerr == nil {
		t.Error("Read after the socket failed succeeded")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after a failed write: %v", err)
	}
}

// Close does not hang on a peer that stopped reading (closeFlushTimeout
// bounds it; the test's own timeout catches a hang), and the writes it
// could not hand over fail the ones after it.
func TestCoalescingConnCloseOnStalledPeer(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := newCoalescingConn(client)
	if _, err := c.Write([]byte(strings.Repeat("x", 100))); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if _, err := c.Write([]byte("y")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// A buffer too large to keep is not kept, and the buffer kept instead is
// never the one being written: bytes in flight are never overwritten.
func TestCoalescingConnNeverReusesBufferInFlight(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := newCoalescingConn(client)
	defer c.Close()
	big := 3 << 20
	read := func(n int) string {
		t.Helper()
		buf := make([]byte, n)
		if _, err := io.ReadFull(server, buf); err != nil {
			t.Fatal(err)
		}
		return string(buf[:min(n, 8)])
	}
	mustWrite := func(s string) {
		t.Helper()
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("a")
	read(1)
	mustWrite(strings.Repeat("x", big))
	read(big)
	mustWrite("B")
	// Wait until the flusher has taken "B" (it now blocks in the pipe's
	// Write until we read), then queue "C" behind it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		taken := len(c.buf) == 0
		c.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flusher never took the write")
		}
		runtime.Gosched()
	}
	mustWrite("C")
	if got := read(1) + read(1); got != "BC" {
		t.Fatalf("read %q, want \"BC\"", got)
	}
}
