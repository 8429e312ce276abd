package bus_test

import (
	"testing"
	"time"

	"github.com/patbus/patbus/internal/testenv"
)

func TestMemoryConnected(t *testing.T) {
	b := newMemory(t)
	if !b.Connected() {
		t.Error("an open in-memory broker says it is not connected")
	}
	_ = b.Close()
	if b.Connected() {
		t.Error("a closed in-memory broker says it is connected")
	}
}

// Connected follows the broker: false while it is away, true again after
// the reconnect, false after Close.
func TestRabbitConnectedFollowsTheBroker(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	b := dialRabbit(t, node.URL())
	until := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for b.Connected() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Connected() did not become %v", want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	until(true) // Dial's connections are installed by its supervisor
	node.StopApp()
	until(false)
	node.StartApp()
	until(true)
	_ = b.Close()
	if b.Connected() {
		t.Error("a closed broker says it is connected")
	}
}
