package main

import (
	"bytes"
	"context"
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
	t.Run("memory", func(t *testing.T) {
		b, err := bus.NewMemory()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		check(t, b)
	})
	t.Run("rabbitmq", func(t *testing.T) {
		url := testenv.AMQPURL(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := bus.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		// The queue is durable: start from empty and leave nothing behind.
		clean := func() {
			q, err := workers.New(b, Queue)
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	// 10ms per dot: long enough that a busy worker has the next task
	// given to the other one.
	if err := run(ctx, b, &out, DefaultTasks, 10*time.Millisecond, 2); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	received := regexp.MustCompile(`^worker (\d): \[x\] Received (.*)$`)
	byWorker := map[string]int{}
	seen := map[string]int{}
	sent, done := 0, 0
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
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
