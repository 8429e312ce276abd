package bustest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/bus/bustest"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// suite's helpers, and the brokers they drive, must stop what they start.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunMemory runs the suite against the in-memory broker, so that the
// suite's own helpers are checked (for leaks above all) where the suite
// lives. Package bus runs it against both brokers as well.
func TestRunMemory(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Broker {
		b, err := bus.NewMemory()
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
