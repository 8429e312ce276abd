package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/workers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTaskQueue(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		// The queue is durable: start from empty and leave nothing behind.
		clean := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			q, err := workers.New(ctx, b, Queue)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Delete(ctx); err != nil {
				t.Fatal(err)
			}
		}
		clean()
		defer clean()
		check(t, b)
	})
}

func check(t *testing.T, b bus.Broker) {
	out := testenv.Output(t, b, func(ctx context.Context, b bus.Broker, out io.Writer) error {
		// 10ms per dot: long enough that a busy worker has the next task
		// given to the other one.
		return run(ctx, b, out, DefaultTasks, 10*time.Millisecond, 2)
	})
	received := regexp.MustCompile(`^worker (\d): \[x\] Received (.*)$`)
	byWorker := map[string]int{}
	seen := map[string]int{}
	sent, done := 0, 0
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, " [x] Sent "):
			sent++
		case strings.HasSuffix(line, ": [x] Done"):
			done++
		default:
			m := received.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("unexpected line %q", line)
				continue
			}
			byWorker[m[1]]++
			seen[m[2]]++
		}
	}
	if sent != len(DefaultTasks) || done != len(DefaultTasks) {
		t.Errorf("sent %d, done %d, want %d", sent, done, len(DefaultTasks))
	}
	for _, task := range DefaultTasks {
		if seen[task] != 1 {
			t.Errorf("task %q received %d times", task, seen[task])
		}
	}
	if byWorker["1"] == 0 || byWorker["2"] == 0 {
		t.Errorf("the workers did not share the tasks: %v", byWorker)
	}
}
