package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/pubsub"
)

// declareWorkQueue declares a work queue and its dead-letter queue as
// workers does (durable), deleted at the end of the test.
func declareWorkQueue(t *testing.T, b bus.Broker, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range []string{name, name + ".dead"} {
		if _, err := b.DeclareQueue(ctx, bus.Queue{Name: q, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, q := range []string{name, name + ".dead", name + ".dead.replay"} {
			_ = b.DeleteQueue(ctx, q)
		}
	})
}

// counter consumes a queue and counts the messages by id and by body.
type counter struct {
	mu     sync.Mutex
	ids    map[string]int
	bodies map[string]int
	n      int
	bad    []string
}

func consume(t *testing.T, b bus.Broker, queue string, check func(d *bus.Delivery) string) *counter {
	t.Helper()
	c := &counter{ids: map[string]int{}, bodies: map[string]int{}}
	ctx := context.Background()
	sub, err := b.Consume(ctx, queue, bus.ConsumeOptions{Prefetch: 1000})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range sub.Deliveries() {
			c.mu.Lock()
			c.n++
			c.ids[d.MessageID]++
			c.bodies[string(d.Body)]++
			if check != nil {
				if msg := check(d); msg != "" && len(c.bad) < 5 {
					c.bad = append(c.bad, msg)
				}
			}
			c.mu.Unlock()
			_ = d.Ack()
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sub.Cancel(ctx)
		<-done
	})
	return c
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// linesFile writes n JSON lines to a file and returns its path.
func linesFile(t *testing.T, n int, object bool) string {
	t.Helper()
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&buf, `{"n":%d,"name":"item %d"}`+"\n", i, i)
		if i%1000 == 999 {
			buf.WriteString("\n") // blank lines are skipped
		}
	}
	p := filepath.Join(t.TempDir(), "lines.jsonl")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// enqueueLines runs "patbus enqueue --json [flags] QUEUE -" over n lines
// from stdin and checks that every one was read, sent and confirmed.
func enqueueLines(t *testing.T, env []string, n int, queue string, flags ...string) publishSummary {
	t.Helper()
	f, err := os.Open(linesFile(t, n, false))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args := append(append([]string{"enqueue", "--json"}, flags...), queue, "-")
	r := patbusCmd(t, env, f, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var s publishSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("summary: %v: %s", err, r.stdout)
	}
	if s.Read != int64(n) || s.Sent != int64(n) || s.Confirmed != int64(n) || s.Failed != 0 || s.Unknown != 0 {
		t.Fatalf("summary %+v, want %d read, sent and confirmed", s, n)
	}
	return s
}

var summaryRE = regexp.MustCompile(`(\w+) (\d+) (\w+)s .*: (\d+) confirmed`)

// 100,000 work items from stdin: every one confirmed, and every one
// consumed once, with the wire of a work item.
func TestEnqueue100k(t *testing.T) {
	const n = 100000
	env := testEnv(t)
	b := broker(t)
	queue := "clitest-" + runID + ".enqueue"
	declareWorkQueue(t, b, queue)
	c := consume(t, b, queue, func(d *bus.Delivery) string {
		f := wire.Read(d.Headers)
		// No --tx: each item starts a chain, and carries no tx header.
		if !d.Persistent || d.ContentType != "application/json" || len(d.MessageID) != 36 || f.Tx != "" || len(d.Headers) != 0 || d.Timestamp.IsZero() {
			return fmt.Sprintf("not a work item's wire: persistent %v, type %q, id %q, tx %q, time %v", d.Persistent, d.ContentType, d.MessageID, f.Tx, d.Timestamp)
		}
		return ""
	})
	s := enqueueLines(t, env, n, queue)
	t.Logf("enqueue: %d confirmed in %.2fs (%.0f/s)", s.Confirmed, s.Seconds, s.Rate)
	waitFor(t, 60*time.Second, "every item consumed", func() bool { return c.count() >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) != n || len(c.bodies) != n {
		t.Errorf("consumed %d messages: %d distinct ids, %d distinct bodies; want %d", c.n, len(c.ids), len(c.bodies), n)
	}
	if len(c.bad) > 0 {
		t.Errorf("items: %v", c.bad)
	}
}

// --bare: every item confirmed and consumed once, with the tutorial's wire
// (persistent JSON, no message id, time or headers); with --tx it is a
// usage error.
func TestEnqueueBare(t *testing.T) {
	const n = 10000
	env := testEnv(t)
	b := broker(t)
	queue := "clitest-" + runID + ".bare"
	declareWorkQueue(t, b, queue)
	c := consume(t, b, queue, func(d *bus.Delivery) string {
		if !d.Persistent || d.ContentType != "application/json" || d.MessageID != "" || len(d.Headers) != 0 || !d.Timestamp.IsZero() {
			return fmt.Sprintf("not a bare item: persistent %v, type %q, id %q, headers %v, time %v", d.Persistent, d.ContentType, d.MessageID, d.Headers, d.Timestamp)
		}
		return ""
	})
	r := patbusCmd(t, env, strings.NewReader(""), "enqueue", "--bare", "--tx", "t1", queue, `{"a":1}`)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--bare") {
		t.Fatalf("--bare with --tx: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
	enqueueLines(t, env, n, queue, "--bare")
	waitFor(t, 60*time.Second, "every item consumed", func() bool { return c.count() >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n != n || len(c.bodies) != n {
		t.Errorf("consumed %d messages, %d distinct bodies; want %d", c.n, len(c.bodies), n)
	}
	if len(c.bad) > 0 {
		t.Errorf("items: %v", c.bad)
	}
}

// 100,000 events from stdin: every one confirmed and consumed by a
// subscriber of the pattern, with the pattern's pairs in the body.
func TestEmit100k(t *testing.T) {
	const n = 100000
	env := testEnv(t)
	b := broker(t)
	ctx := context.Background()
	pattern := "role:clitest,evt:bulk,run:" + runID
	key, _ := patterns.BindingKey(patterns.MustParse(pattern))
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: pubsub.EventsExchange, Kind: bus.Topic, Durable: true}); err != nil {
		t.Fatal(err)
	}
	q, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true, AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, bus.Binding{Exchange: pubsub.EventsExchange, Queue: q, Key: key}); err != nil {
		t.Fatal(err)
	}
	c := consume(t, b, q, func(d *bus.Delivery) string {
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil || m["evt"] != "bulk" || m["run"] != runID {
			return "body " + string(d.Body)
		}
		if d.Type != patterns.MustParse(pattern).String() {
			return "type " + d.Type
		}
		return ""
	})
	f, err := os.Open(linesFile(t, n, true))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := patbusCmd(t, env, f, "emit", pattern, "-")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	m := summaryRE.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != "emitted" || m[2] != strconv.Itoa(n) || m[4] != strconv.Itoa(n) {
		t.Fatalf("summary %q: want %d emitted and confirmed", r.stdout, n)
	}
	t.Logf("emit: %s", strings.TrimSpace(r.stdout))
	waitFor(t, 60*time.Second, "every event consumed", func() bool { return c.count() >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) != n || len(c.bodies) != n {
		t.Errorf("consumed %d events: %d distinct ids, %d distinct bodies; want %d", c.n, len(c.ids), len(c.bodies), n)
	}
	if len(c.bad) > 0 {
		t.Errorf("events: %v", c.bad)
	}
}

// A malformed line stops the run, names its line, and what was confirmed
// before it is reported; a queue that does not exist says so.
func TestEnqueueBadInput(t *testing.T) {
	env := testEnv(t)
	b := broker(t)
	queue := "clitest-" + runID + ".bad"
	declareWorkQueue(t, b, queue)
	r := patbusCmd(t, env, strings.NewReader("{\"a\":1}\n\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n"), "enqueue", queue, "-")
	if r.code != 2 || !strings.Contains(r.stderr, "stdin line 4: malformed JSON") {
		t.Errorf("exit %d, stderr %q: want 2 and the line number", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "enqueued 2 items on "+queue+": 2 confirmed") {
		t.Errorf("stdout %q: want the 2 items before the bad line confirmed", r.stdout)
	}
	r = patbusCmd(t, env, strings.NewReader(""), "enqueue", "clitest-"+runID+".nosuchqueue", `{"a":1}`)
	if r.code != 3 || !strings.Contains(r.stderr, `queue "clitest-`+runID+`.nosuchqueue" does not exist`) {
		t.Errorf("exit %d, stderr %q: want 3 and that the queue does not exist", r.code, r.stderr)
	}
	r = patbusCmd(t, env, strings.NewReader(""), "emit", "role:x,evt:y", `{"role":"z"}`)
	if r.code != 2 {
		t.Errorf("an event whose data contradicts its pattern: exit %d, want 2 (stderr %q)", r.code, r.stderr)
	}
	r = patbusCmd(t, env, strings.NewReader("{}\n[1]\n"), "emit", "role:x,evt:y", "-")
	if r.code != 2 || !strings.Contains(r.stderr, "stdin line 2: not a JSON object") {
		t.Errorf("exit %d, stderr %q: want 2 and line 2", r.code, r.stderr)
	}
}

// Ctrl-C while enqueuing from a pipe that never ends: the command stops
// reading, waits for the outstanding confirms and reports exactly what the
// queue then holds.
func TestEnqueueInterrupted(t *testing.T) {
	env := testEnv(t)
	b := broker(t)
	queue := "clitest-" + runID + ".interrupt"
	declareWorkQueue(t, b, queue)
	cmd := exec.Command(binPath, "enqueue", "--json", queue, "-")
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	go func() {
		line := []byte(`{"job":"forever"}` + "\n")
		for {
			if _, err := stdin.Write(line); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	qi := b.(bus.QueueInspector)
	waitFor(t, 30*time.Second, "items arriving", func() bool {
		info, err := qi.InspectQueue(context.Background(), queue)
		return err == nil && info.Messages >= 2000
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	stdin.Close()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\nstderr: %s", err, errb.String())
	}
	var s publishSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary: %v: %s", err, out.String())
	}
	if !s.Interrupted || s.Confirmed == 0 || s.Confirmed != s.Sent || s.Failed != 0 || s.Unknown != 0 {
		t.Fatalf("summary %+v: want interrupted, every item sent confirmed", s)
	}
	info, err := qi.InspectQueue(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	if int64(info.Messages) != s.Confirmed {
		t.Errorf("the queue holds %d items, the command reported %d confirmed", info.Messages, s.Confirmed)
	}
}
