package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// deadLetters puts n dead items in queue.dead as a worker does (WIRE.md
// section 4) and returns their ids in order.
func deadLetters(t *testing.T, b bus.Broker, queue string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := make([]string, n)
	confs := make([]*bus.Confirmation, 0, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		h := map[string]any{
			wire.HeaderAttempt: int64(5), wire.HeaderError: fmt.Sprintf("resize failed: item %d", i),
			headerDeadReason: "max-attempts", headerQueue: queue, headerFailedAt: time.Now().UnixMilli(),
		}
		wire.PutTx(h, wire.NewID())
		c, err := b.Publish(ctx, "", queue+".dead", bus.Message{
			Headers: h, ContentType: "application/json", MessageID: ids[i], Persistent: true, Mandatory: true,
			Timestamp: time.Now(), Body: []byte(fmt.Sprintf(`{"image":"img-%d.png"}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func depth(t *testing.T, b bus.Broker, queue string) int {
	t.Helper()
	info, err := b.(bus.QueueInspector).InspectQueue(context.Background(), queue)
	if errors.Is(err, bus.ErrNotFound) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.Messages
}

// list shows the dead items with their reason and attempts and leaves
// them where they were; show gives one in full; purge drops them.
func TestDLQListShowPurge(t *testing.T) {
	env := testEnv(t)
	b := broker(t)
	queue := "clitest-" + runID + ".dlq"
	declareWorkQueue(t, b, queue)
	ids := deadLetters(t, b, queue, 5)

	r := patbusCmd(t, env, nil, "dlq", "list", queue)
	if r.code != 0 {
		t.Fatalf("list: %d %s", r.code, r.stderr)
	}
	if n := strings.Count(r.stdout, "max-attempts"); n != 5 || !strings.Contains(r.stdout, ids[2]) || !strings.Contains(r.stdout, "REASON") {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = patbusCmd(t, env, nil, "dlq", "list", "--json", queue+".dead")
	var items []deadItem
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var it deadItem
		if err := json.Unmarshal([]byte(l), &it); err != nil {
			t.Fatalf("list --json: %q", l)
		}
		items = append(items, it)
	}
	if len(items) != 5 {
		t.Fatalf("list --json: %d items", len(items))
	}
	for i, it := range items {
		if it.Position != i+1 || it.ID != ids[i] || it.Reason != "max-attempts" || it.Attempts != 5 || it.Queue != queue ||
			it.Error != fmt.Sprintf("resize failed: item %d", i) || it.FailedAt == nil || it.Tx == "" {
			t.Errorf("item %d: %+v", i, it)
		}
	}
	if d := depth(t, b, queue+".dead"); d != 5 {
		t.Errorf("after list the dead-letter queue holds %d, want 5", d)
	}
	r = patbusCmd(t, env, nil, "dlq", "show", queue, ids[3])
	if r.code != 0 || !strings.Contains(r.stdout, "item 4 of 5") || !strings.Contains(r.stdout, `{"image":"img-3.png"}`) || !strings.Contains(r.stdout, "resize failed: item 3") {
		t.Errorf("show by id: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = patbusCmd(t, env, nil, "dlq", "show", queue, "2")
	if r.code != 0 || !strings.Contains(r.stdout, ids[1]) {
		t.Errorf("show by position: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = patbusCmd(t, env, nil, "dlq", "show", queue, "9")
	if r.code != 3 || !strings.Contains(r.stderr, "no item 9") {
		t.Errorf("show a missing item: %d %s", r.code, r.stderr)
	}
	r = patbusCmd(t, env, nil, "dlq", "list", "clitest-"+runID+".nosuch")
	if r.code != 3 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("list a missing queue: %d %s", r.code, r.stderr)
	}
	r = patbusCmd(t, env, nil, "dlq", "purge", queue)
	if r.code != 2 || depth(t, b, queue+".dead") != 5 {
		t.Errorf("purge without --yes and without a terminal: %d %s", r.code, r.stderr)
	}
	r = patbusCmd(t, env, nil, "dlq", "purge", "--yes", queue)
	if r.code != 0 || !strings.Contains(r.stdout, "dropped 5 items") {
		t.Errorf("purge: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if d := depth(t, b, queue+".dead"); d != 0 {
		t.Errorf("after purge the dead-letter queue holds %d", d)
	}
}

// replay moves every dead item back to its work queue once, even when it
// is interrupted: by Ctrl-C, killed, or stopped at the worst moment (a
// copy confirmed in the journal, its original not yet removed). The runs
// after the interruption finish the move; nothing is lost, nothing is
// duplicated.
func TestDLQReplayInterrupted(t *testing.T) {
	env := testEnv(t)
	b := broker(t)
	const n = 3000
	queue := "clitest-" + runID + ".replay"
	declareWorkQueue(t, b, queue)
	ids := deadLetters(t, b, queue, n)
	qi := b.(bus.QueueInspector)
	inWork := func() int {
		info, err := qi.InspectQueue(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		return info.Messages
	}

	// 1. Stopped at the worst moment, after the 100th journal copy.
	r := patbusCmd(t, append(env, "PATBUS_CLI_FAULT=replay-exit-after-journal:100"), nil, "dlq", "replay", "--window", "16", queue)
	if r.code != 9 {
		t.Fatalf("the faulty replay: exit %d, want 9\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The copies the faulty run held come back to the journal once the
	// broker has seen its connection go.
	waitFor(t, 10*time.Second, "copies left in the journal (the window the fault tests)", func() bool {
		return depth(t, b, queue+".dead.replay") >= 1
	})

	// 2. Ctrl-C during a run.
	cmd := exec.Command(binPath, "dlq", "replay", "--window", "8", queue)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	before := inWork()
	waitFor(t, 30*time.Second, "the replay moving items", func() bool { return inWork() > before+200 })
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("replay after Ctrl-C: %v, want exit 130\n%s", err, out.String())
	}

	// 3. Killed during a run.
	cmd = exec.Command(binPath, "dlq", "replay", "--window", "64", queue)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	before = inWork()
	waitFor(t, 30*time.Second, "the replay moving items", func() bool { return inWork() > before+300 })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// 4. The run that finishes.
	r = patbusCmd(t, env, nil, "dlq", "replay", queue)
	if r.code != 0 {
		t.Fatalf("the last replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "; 0 left in "+queue+".dead") {
		t.Errorf("the last replay says %q", r.stdout)
	}
	waitFor(t, 10*time.Second, "the journal gone", func() bool { return depth(t, b, queue+".dead.replay") == -1 })
	if d := depth(t, b, queue+".dead"); d != 0 {
		t.Errorf("the dead-letter queue holds %d", d)
	}
	// Every item is in the work queue by now (released copies are
	// dead-lettered by the broker itself, at once): exactly n of them.
	waitFor(t, 10*time.Second, "the released items in the work queue", func() bool { return inWork() >= n })
	if got := inWork(); got != n {
		t.Errorf("the work queue holds %d items, want %d", got, n)
	}
	c := consume(t, b, queue, func(d *bus.Delivery) string {
		if _, ok := d.Headers[wire.HeaderAttempt]; ok || d.Headers[headerDeadReason] != nil {
			return "a replayed item keeps its failure headers"
		}
		if wire.Read(d.Headers).Tx == "" || !d.Persistent {
			return "a replayed item lost its tx or persistence"
		}
		return ""
	})
	waitFor(t, 30*time.Second, "every item consumed", func() bool { return c.count() >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n != n || len(c.ids) != n {
		t.Errorf("the work queue got %d items, %d distinct; want %d, once each", c.n, len(c.ids), n)
	}
	for _, id := range ids {
		if c.ids[id] != 1 {
			t.Errorf("item %s arrived %d times", id, c.ids[id])
			break
		}
	}
	if len(c.bad) > 0 {
		t.Errorf("%v", c.bad)
	}
}
