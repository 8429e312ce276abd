package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// Fault tests: each runs on a private RabbitMQ node that it starts, breaks
// and stops (internal/testenv.StartRabbitNode), never on the shared broker.

// eventLog is a slog handler that keeps the broker's log records with their
// times, so that a test can tell when a connection was lost.
type eventLog struct {
	mu      sync.Mutex
	records []logEvent
	changed chan struct{} // closed and replaced on every record
}

type logEvent struct {
	at    time.Time
	level slog.Level
	msg   string
	attrs string
	kv    map[string]string
}

func (l *eventLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *eventLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	kv := make(map[string]string)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		kv[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, logEvent{r.Time, r.Level, r.Message, b.String(), kv})
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return nil
}

// await waits up to d for a record with msg at or after t0.
func (l *eventLog) await(msg string, t0 time.Time, d time.Duration) (time.Time, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if at, ok := l.first(msg, t0); ok {
			return at, true
		}
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return l.first(msg, t0)
		}
	}
}
func (l *eventLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *eventLog) WithGroup(string) slog.Handler      { return l }

// first returns the time of the first record with msg at or after t0.
func (l *eventLog) first(msg string, t0 time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.msg == msg && !r.at.Before(t0) {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// awaitN waits up to d until n records with msg exist at or after t0,
// and returns them.
func (l *eventLog) awaitN(msg string, t0 time.Time, n int, d time.Duration) []logEvent {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if got := l.all(msg, t0); len(got) >= n {
			return got
		}
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return l.all(msg, t0)
		}
	}
}

// awaitWhere waits up to d for a record at or after t0 with msg whose
// attribute key has the value val, and returns it.
func (l *eventLog) awaitWhere(msg, key, val string, t0 time.Time, d time.Duration) (logEvent, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		for _, r := range l.all(msg, t0) {
			if r.kv[key] == val {
				return r, true
			}
		}
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return logEvent{}, false
		}
	}
}

// all returns the records with msg at or after t0.
func (l *eventLog) all(msg string, t0 time.Time) []logEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logEvent
	for _, r := range l.records {
		if r.msg == msg && !r.at.Before(t0) {
			out = append(out, r)
		}
	}
	return out
}

// atLeast returns the records at or above level at or after t0.
func (l *eventLog) atLeast(level slog.Level, t0 time.Time) []logEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logEvent
	for _, r := range l.records {
		if r.level >= level && !r.at.Before(t0) {
			out = append(out, r)
		}
	}
	return out
}

func (l *eventLog) dump(t *testing.T, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if !r.at.Before(since) && r.level >= slog.LevelInfo {
			t.Logf("  %s %s %s%s", r.at.Format("15:04:05.000"), r.level, r.msg, r.attrs)
		}
	}
}

// faultOptions make the broker notice faults and recover quickly.
func faultOptions(l *eventLog) []bus.Option {
	return []bus.Option{
		bus.WithLogger(slog.New(l)),
		bus.WithHeartbeat(2 * time.Second),
		bus.WithReconnectBackoff(50*time.Millisecond, time.Second),
		bus.WithConfirmTimeout(5 * time.Second),
	}
}

// ledger records what happened to every message of a fault run.
type ledger struct {
	mu          sync.Mutex
	published   map[string]bool // Publish returned nil
	confirmed   map[string]bool
	confirmedAt map[string]time.Time
	failed      map[string]error // Publish or Wait failed
	received    map[string]int
	unexpected  []string
	staleAcks   int
	lastConfirm atomic.Int64 // unix nanos of the latest confirm
	lastRecv    atomic.Int64
	confirmAt   []time.Time
	recvAt      []time.Time
	progress    chan struct{} // a message was confirmed or received
}

func (l *ledger) signal() {
	select {
	case l.progress <- struct{}{}:
	default:
	}
}

// waitFor waits until cond (called under the lock) holds, up to d.
func (l *ledger) waitFor(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		ok := cond()
		l.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-l.progress:
		case <-timer.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			return cond()
		}
	}
}

func newLedger() *ledger {
	return &ledger{
		published:   make(map[string]bool),
		confirmed:   make(map[string]bool),
		confirmedAt: make(map[string]time.Time),
		failed:      make(map[string]error),
		received:    make(map[string]int),
		progress:    make(chan struct{}, 1),
	}
}

// firstAfter returns the first of ts at or after t0.
func firstAfter(ts []time.Time, t0 time.Time) (time.Time, bool) {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(t0) })
	if i == len(ts) {
		return time.Time{}, false
	}
	return ts[i], true
}

// runLedger publishes total persistent messages with unique ids from four
// publishers (paced over about ten seconds) while one consumer acks them,
// injects the fault once a third is confirmed, and checks the ledger.
func runLedger(t *testing.T, name string, fault func(n *testenv.RabbitNode)) {
	node := testenv.StartRabbitNode(t)
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.fault.ledger", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	// RabbitMQ 3.10 keeps a durable queue's definition in Mnesia, whose
	// log reaches the disk a little later: a kill -9 within seconds of the
	// declaration lost the queue itself in 4 of about 40 runs ("Recovering
	// 0 queues" after the restart), and with it every confirmed message in
	// it, while topology replay declared it again, empty. A queue that has
	// existed for longer is on disk; make this one so before the fault.
	node.MustCtl("eval", "mnesia:dump_log().")
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 200})
	if err != nil {
		t.Fatal(err)
	}
	const total = 20000
	const publishers = 4
	led := newLedger()

	// Consumer: ack everything, note every id.
	consumerDone := make(chan struct{})
	stopConsumer := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			select {
			case d, ok := <-sub.Deliveries():
				if !ok {
					return
				}
				now := time.Now()
				err := d.Ack()
				led.mu.Lock()
				if !strings.HasPrefix(d.MessageID, "m-") && d.MessageID != "after" {
					led.unexpected = append(led.unexpected, d.MessageID)
				}
				led.received[d.MessageID]++
				led.recvAt = append(led.recvAt, now)
				if errors.Is(err, bus.ErrStaleDelivery) {
					led.staleAcks++
				} else if err != nil {
					t.Errorf("Ack: %v", err)
				}
				led.mu.Unlock()
				led.signal()
			case <-stopConsumer:
				return
			}
		}
	}()

	// Publishers: paced, every confirm waited for with a bound.
	const confirmBound = 90 * time.Second
	start := time.Now()
	var pubWG, waitWG sync.WaitGroup
	var hung atomic.Int64
	for p := 0; p < publishers; p++ {
		p := p
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := p; i < total; i += publishers {
				if i%100 == 0 {
					// 2000 messages a second: the run spans the fault.
					due := start.Add(time.Duration(i/100) * 50 * time.Millisecond)
					time.Sleep(time.Until(due))
				}
				id := fmt.Sprintf("m-%05d", i)
				pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
				// Mandatory, as workers publish: right after a broker
				// restart a durable queue can be briefly unroutable, and a
				// message published then without mandatory is dropped and
				// still confirmed. With it, the publisher is told.
				c, err := b.Publish(pctx, "", q, bus.Message{MessageID: id, Persistent: true, Mandatory: true, Body: []byte(id)})
				pcancel()
				led.mu.Lock()
				if err != nil {
					led.failed[id] = err
				} else {
					led.published[id] = true
				}
				led.mu.Unlock()
				if err != nil {
					continue
				}
				waitWG.Add(1)
				go func() {
					defer waitWG.Done()
					wctx, wcancel := context.WithTimeout(ctx, confirmBound)
					defer wcancel()
					err := c.Wait(wctx)
					now := time.Now()
					if wctx.Err() != nil && errors.Is(err, bus.ErrUnconfirmed) {
						hung.Add(1)
					}
					led.mu.Lock()
					if err == nil {
						led.confirmed[id] = true
						led.confirmedAt[id] = now
						led.confirmAt = append(led.confirmAt, now)
					} else {
						led.failed[id] = err
					}
					led.mu.Unlock()
					led.signal()
				}()
			}
		}()
	}

	// Fault once a third is confirmed.
	if !led.waitFor(time.Minute, func() bool { return len(led.confirmed) >= total/3 }) {
		t.Fatalf("only %d confirmed before the fault", len(led.confirmed))
	}
	faultStart := time.Now()
	fault(node)
	faultEnd := time.Now()

	pubWG.Wait()
	waitWG.Wait()
	publishDone := time.Now()

	// Every confirmed message must arrive: wait for them, bounded.
	missing := func() int {
		n := 0
		for id := range led.confirmed {
			if led.received[id] == 0 {
				n++
			}
		}
		return n
	}
	if !led.waitFor(time.Minute, func() bool { return missing() == 0 }) {
		led.mu.Lock()
		n := missing()
		led.mu.Unlock()
		events.dump(t, faultStart)
		// When were the missing ones confirmed, and which are they?
		led.mu.Lock()
		var before, during, after int
		var ids []string
		for id := range led.confirmed {
			if led.received[id] > 0 {
				continue
			}
			ids = append(ids, id)
			switch at := led.confirmedAt[id]; {
			case at.Before(faultStart):
				before++
			case at.Before(faultEnd):
				during++
			default:
				after++
			}
		}
		led.mu.Unlock()
		sort.Strings(ids)
		t.Logf("missing: confirmed before the fault %d, during it %d, after it %d; ids %s … %s",
			before, during, after, ids[0], ids[len(ids)-1])
		// Still in the queue (a stuck consumer) or gone (the broker)?
		out, err := node.Ctl("list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers")
		t.Logf("queues on the node: %s (err %v)", strings.TrimSpace(out), err)
		t.Logf("the node's log on recovery:\n%s", strings.Join(node.LogLines("unclean shutdown", "dropped", "recover", "Recover", "rebuilding"), "\n"))
		t.Fatalf("%d confirmed messages never consumed (subscription error: %v)", n, sub.Err())
	}

	// Both sides work again, with the same broker and subscription.
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := bus.PublishAndWait(pctx, b, "", q, bus.Message{MessageID: "after", Body: []byte("after")}); err != nil {
		t.Errorf("publish after the fault: %v", err)
	}
	pcancel()
	if !led.waitFor(30*time.Second, func() bool { return led.received["after"] > 0 }) {
		t.Fatal("the subscription did not resume: no delivery after the fault")
	}
	close(stopConsumer)
	<-consumerDone

	led.mu.Lock()
	defer led.mu.Unlock()
	dups := 0
	for _, n := range led.received {
		if n > 1 {
			dups += n - 1
		}
	}
	if len(led.unexpected) > 0 {
		t.Errorf("unexpected messages: %q", led.unexpected[:min(10, len(led.unexpected))])
	}
	if h := hung.Load(); h > 0 {
		t.Errorf("%d confirm waits hit their %v bound", h, confirmBound)
	}
	// Returned (unroutable) messages were reported to their publisher, who
	// may send them again; any other failure is a fault of the broker value.
	failedByKind := map[string]int{}
	returned := 0
	for _, err := range led.failed {
		if errors.Is(err, bus.ErrUnroutable) {
			returned++
			continue
		}
		failedByKind[err.Error()]++
	}
	if len(failedByKind) > 0 {
		t.Errorf("%d publishes not confirmed: %v", len(led.failed)-returned, failedByKind)
	}
	if returned > 0 {
		t.Logf("FAULT %s: %d publishes returned unroutable while the queue was recovering", name, returned)
	}
	var lostAt, backAt time.Time
	if at, ok := events.first("connection lost", faultStart); ok {
		lostAt = at
		backAt, _ = events.first("connected", lostAt)
	}
	sort.Slice(led.confirmAt, func(i, j int) bool { return led.confirmAt[i].Before(led.confirmAt[j]) })
	sort.Slice(led.recvAt, func(i, j int) bool { return led.recvAt[i].Before(led.recvAt[j]) })
	measure := func(ts []time.Time, from time.Time) string {
		if from.IsZero() {
			return "n/a"
		}
		if at, ok := firstAfter(ts, from); ok {
			return at.Sub(from).Round(time.Millisecond).String()
		}
		return "never"
	}
	t.Logf("FAULT %s: published %d, confirmed %d, failed %d, consumed %d distinct, duplicates %d, stale acks %d, hung waits %d",
		name, len(led.published), len(led.confirmed), len(led.failed), len(led.received), dups, led.staleAcks, hung.Load())
	t.Logf("FAULT %s: fault command took %v; connection lost at +%v; reconnected %s after the loss; first confirm after loss +%s, after reconnect +%s; first delivery after loss +%s, after reconnect +%s; run %v",
		name, faultEnd.Sub(faultStart).Round(time.Millisecond), lostAt.Sub(faultStart).Round(time.Millisecond),
		measure([]time.Time{backAt}, lostAt),
		measure(led.confirmAt, lostAt), measure(led.confirmAt, backAt),
		measure(led.recvAt, lostAt), measure(led.recvAt, backAt), publishDone.Sub(start).Round(time.Millisecond))
	if lostAt.IsZero() {
		t.Errorf("the broker never logged a lost connection")
	}
	if t.Failed() {
		events.dump(t, faultStart)
	}
	if err := sub.Cancel(ctx); err != nil {
		t.Errorf("Cancel: %v", err)
	}
}

func TestRabbitFaultCloseAllConnections(t *testing.T) {
	runLedger(t, "close_all_connections", func(n *testenv.RabbitNode) {
		n.MustCtl("close_all_connections", "patbus fault test")
	})
}

func TestRabbitFaultStopStartApp(t *testing.T) {
	runLedger(t, "stop_app/start_app", func(n *testenv.RabbitNode) {
		n.StopApp()
		n.StartApp()
	})
}

func TestRabbitFaultKill9(t *testing.T) {
	runLedger(t, "kill -9/restart", func(n *testenv.RabbitNode) {
		n.Kill9()
		n.Restart()
	})
}

// recvWithin receives one delivery or fails the test.
func recvWithin(t *testing.T, sub bus.Subscription, d time.Duration) *bus.Delivery {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-sub.Deliveries():
		if !ok {
			t.Fatalf("deliveries closed: %v", sub.Err())
		}
		return m
	case <-timer.C:
		t.Fatalf("no delivery within %v", d)
	}
	return nil
}

// TestRabbitFaultStaleAck: a delivery received before a reconnect and acked
// after it is refused with ErrStaleDelivery and removes nothing: the
// redelivered copy (which has the same delivery tag on the new channel)
// and every other message stay in the queue.
func TestRabbitFaultStaleAck(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.fault.stale", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"A", "B"} {
		if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: id, Persistent: true, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	old := recvWithin(t, sub, 10*time.Second)
	if old.MessageID != "A" {
		t.Fatalf("first delivery %q, want A", old.MessageID)
	}
	faultAt := time.Now()
	node.MustCtl("close_all_connections", "patbus stale ack test")

	// After the reconnect both come again, A with the same tag as before.
	seen := map[string]*bus.Delivery{}
	for len(seen) < 2 {
		d := recvWithin(t, sub, 30*time.Second)
		if !d.Redelivered {
			t.Errorf("%s after the reconnect not marked redelivered", d.MessageID)
		}
		seen[d.MessageID] = d
	}
	resumed, _ := events.first("consumer resumed", faultAt)
	t.Logf("consumer resumed %v after close_all_connections", resumed.Sub(faultAt).Round(time.Millisecond))
	if err := old.Ack(); !errors.Is(err, bus.ErrStaleDelivery) {
		t.Fatalf("ack of the pre-reconnect delivery: %v, want ErrStaleDelivery", err)
	}
	if err := old.Ack(); !errors.Is(err, bus.ErrAcknowledged) {
		t.Errorf("second ack: %v, want ErrAcknowledged", err)
	}
	// Give the new copies back without acking them (Cancel with an ended
	// context releases at once); a fresh consumer must get both: the stale
	// ack removed nothing.
	ended, end := context.WithCancel(ctx)
	end()
	if err := sub.Cancel(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Cancel with unacked deliveries and an ended context: %v", err)
	}
	for _, d := range seen {
		if err := d.Ack(); err == nil {
			t.Errorf("ack after Cancel of %s succeeded", d.MessageID)
		}
	}
	sub2, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		d := recvWithin(t, sub2, 10*time.Second)
		got[d.MessageID] = true
		if err := d.Ack(); err != nil {
			t.Errorf("ack %s: %v", d.MessageID, err)
		}
	}
	if !got["A"] || !got["B"] {
		t.Errorf("after the stale ack the queue held %v, want A and B", got)
	}
	_ = sub2.Cancel(ctx)

	// WithMaxReconnects: a broker that gives up closes itself; its
	// subscriptions end with ErrClosed and calls fail with ErrClosed.
	limited := dialRabbit(t, node.URL(), bus.WithMaxReconnects(2), bus.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	sub3, err := limited.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.StopApp()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for closed := false; !closed; {
		select {
		case _, ok := <-sub3.Deliveries():
			closed = !ok
		case <-timer.C:
			t.Fatal("the subscription did not end after the broker gave up reconnecting")
		}
	}
	if err := sub3.Err(); !errors.Is(err, bus.ErrClosed) || !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("subscription Err after giving up: %v, want ErrClosed wrapping ErrDisconnected", err)
	}
	if _, err := limited.Publish(ctx, "", q, bus.Message{Body: []byte("x")}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after giving up: %v, want ErrClosed", err)
	}
}

// TestRabbitFaultMemoryAlarm: under a memory alarm publishes wait and then
// fail by their context with ErrBlocked (never hang), consumers go on, and
// publishing works again once the alarm clears.
func TestRabbitFaultMemoryAlarm(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.fault.alarm", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	const preload = 50
	for i := 0; i < preload; i++ {
		if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: fmt.Sprint("pre-", i), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	alarmAt := time.Now()
	node.MustCtl("set_vm_memory_high_watermark", "0")
	restored := false
	defer func() {
		if !restored {
			_, _ = node.Ctl("set_vm_memory_high_watermark", "0.4")
		}
	}()

	// Publishes wait for their context: a written one's confirm cannot come,
	// and once the broker has said so, Publish itself fails with ErrBlocked.
	var unconfirmed []*bus.Confirmation
	blocked := false
	for i := 0; i < 40 && !blocked; i++ {
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		t0 := time.Now()
		c, err := b.Publish(pctx, "", q, bus.Message{MessageID: fmt.Sprint("during-", i), Body: []byte("x")})
		if err == nil {
			unconfirmed = append(unconfirmed, c)
			err = c.Wait(pctx)
			if err == nil {
				pcancel()
				continue // accepted before the alarm took hold
			}
		}
		took := time.Since(t0)
		pcancel()
		switch {
		case errors.Is(err, bus.ErrBlocked):
			blocked = true
		case errors.Is(err, bus.ErrUnconfirmed) && errors.Is(err, context.DeadlineExceeded):
		default:
			t.Fatalf("publish under the alarm: %v", err)
		}
		if took > 5*time.Second {
			t.Errorf("publish under the alarm took %v, its context allowed 300ms", took)
		}
	}
	if !blocked {
		t.Fatal("no publish failed with ErrBlocked under the memory alarm")
	}
	blockedAt, _ := events.first("broker blocks publishing", alarmAt)
	t.Logf("broker blocked publishing %v after the alarm was set", blockedAt.Sub(alarmAt).Round(time.Millisecond))

	// Consumers go on.
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 20})
	if err != nil {
		t.Fatalf("Consume under the alarm: %v", err)
	}
	for i := 0; i < preload; i++ {
		d := recvWithin(t, sub, 10*time.Second)
		if err := d.Ack(); err != nil {
			t.Fatalf("ack under the alarm: %v", err)
		}
	}

	node.MustCtl("set_vm_memory_high_watermark", "0.4")
	restored = true
	clearedAt := time.Now()
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := bus.PublishAndWait(pctx, b, "", q, bus.Message{MessageID: "after", Body: []byte("x")}); err != nil {
		t.Fatalf("publish after the alarm cleared: %v", err)
	}
	t.Logf("publishing confirmed again %v after the alarm cleared", time.Since(clearedAt).Round(time.Millisecond))
	// The messages written during the alarm are confirmed now.
	for _, c := range unconfirmed {
		if err := c.Wait(pctx); err != nil {
			t.Errorf("confirm of a message written during the alarm: %v", err)
		}
	}
	want := len(unconfirmed) + 1
	for i := 0; i < want; i++ {
		d := recvWithin(t, sub, 10*time.Second)
		_ = d.Ack()
	}
	if err := sub.Cancel(ctx); err != nil {
		t.Errorf("Cancel: %v", err)
	}
}

// TestRabbitFaultDownAndStall: while the broker app is stopped, calls wait
// for their context and fail with ErrDisconnected; while the broker process
// is frozen (SIGSTOP, longer than the confirm timeout and two heartbeats)
// a confirm wait does not hang: the message is published again once the
// broker answers, and its Confirmation resolves on a real ack.
func TestRabbitFaultDownAndStall(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	events := &eventLog{}
	opts := append(faultOptions(events), bus.WithConfirmTimeout(time.Second))
	b := dialRabbit(t, node.URL(), opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.fault.stall", Durable: true})
	if err != nil {
		t.Fatal(err)
	}

	// Down: stop_app.
	node.StopApp()
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = b.Publish(short, "", q, bus.Message{Body: []byte("x")})
	if !errors.Is(err, bus.ErrDisconnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish while the broker is down: %v, want ErrDisconnected and DeadlineExceeded", err)
	}
	_, err = b.DeclareQueue(short, bus.Queue{Name: "patbus.fault.other"})
	if !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("DeclareQueue while the broker is down: %v, want ErrDisconnected", err)
	}
	scancel()
	// A publish that waits through the outage succeeds.
	pending := make(chan error, 1)
	go func() {
		pctx, pcancel := context.WithTimeout(ctx, time.Minute)
		defer pcancel()
		pending <- bus.PublishAndWait(pctx, b, "", q, bus.Message{MessageID: "through-outage", Persistent: true, Body: []byte("x")})
	}()
	node.StartApp()
	if err := <-pending; err != nil {
		t.Fatalf("publish waiting through the outage: %v", err)
	}

	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d := recvWithin(t, sub, 10*time.Second); d.MessageID != "through-outage" {
		t.Fatalf("got %q", d.MessageID)
	} else {
		_ = d.Ack()
	}

	// Stall: freeze the broker, publish, thaw.
	node.Pause()
	frozenAt := time.Now()
	c, err := b.Publish(ctx, "", q, bus.Message{MessageID: "through-stall", Persistent: true, Body: []byte("x")})
	if err != nil {
		node.Resume()
		t.Fatalf("Publish into a frozen broker: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	err = c.Wait(wctx)
	wcancel()
	if !errors.Is(err, bus.ErrUnconfirmed) {
		node.Resume()
		t.Fatalf("confirm from a frozen broker: %v, want ErrUnconfirmed by the wait's context", err)
	}
	// Longer than two heartbeats: the client gives the connection up.
	_, lost := events.await("connection lost", frozenAt, 10*time.Second)
	node.Resume()
	thawedAt := time.Now()
	if !lost {
		t.Error("the client did not notice the frozen broker within 10s")
	}
	wctx, wcancel = context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := c.Wait(wctx); err != nil {
		t.Fatalf("confirm after the broker thawed: %v", err)
	}
	t.Logf("STALL: frozen %v; confirm %v after thaw", thawedAt.Sub(frozenAt).Round(time.Millisecond), time.Since(thawedAt).Round(time.Millisecond))
	got := 0
	for got == 0 {
		d := recvWithin(t, sub, 30*time.Second)
		if d.MessageID == "through-stall" {
			got++
		}
		_ = d.Ack()
	}
	if t.Failed() {
		events.dump(t, frozenAt)
	}

	// A stall shorter than the heartbeat allows but longer than the confirm
	// timeout: the confirm is overdue, the channel is retired, the message
	// is published again on a fresh channel and confirmed by a real ack.
	slowEvents := &eventLog{}
	slow := dialRabbit(t, node.URL(), bus.WithLogger(slog.New(slowEvents)), bus.WithHeartbeat(30*time.Second),
		bus.WithConfirmTimeout(300*time.Millisecond), bus.WithPublishChannels(1))
	if err := bus.PublishAndWait(ctx, slow, "", q, bus.Message{MessageID: "warm-up", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	node.Pause()
	frozenAt = time.Now()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	c, err = slow.Publish(pctx, "", q, bus.Message{MessageID: "overdue", Persistent: true, Body: []byte("x")})
	pcancel()
	if err != nil {
		node.Resume()
		t.Fatalf("Publish into a frozen broker: %v", err)
	}
	_, overdue := slowEvents.await("confirm overdue: publishing again on a fresh channel", frozenAt, 10*time.Second)
	node.Resume()
	if !overdue {
		t.Error("no confirm deadline passed while the broker was frozen")
	}
	if err := c.Wait(wctx); err != nil {
		t.Fatalf("confirm of the overdue message: %v", err)
	}
	copies := 0
	for copies == 0 {
		d := recvWithin(t, sub, 30*time.Second)
		if d.MessageID == "overdue" {
			copies++
		}
		_ = d.Ack()
	}
	t.Logf("OVERDUE: confirm %v after the freeze began", time.Since(frozenAt).Round(time.Millisecond))
	_ = sub.Cancel(ctx)
}

// TestRabbitFaultMemoryAlarmReplies: a consumer made with Replies runs on
// the publishing connection. Under a memory alarm its Reply does not write
// into the blocked connection: it waits for its context and fails with
// ErrBlocked, leaving the request unsettled. Once the alarm clears, the same
// deliveries are answered and acked.
func TestRabbitFaultMemoryAlarmReplies(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	declare := func(q bus.Queue) string {
		name, err := b.DeclareQueue(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	q := declare(bus.Queue{Name: "patbus.fault.alarm.requests", Durable: true})
	rq := declare(bus.Queue{Name: "patbus.fault.alarm.replies"})
	scratch := declare(bus.Queue{Name: "patbus.fault.alarm.scratch"})
	const requests = 3
	for i := 0; i < requests; i++ {
		msg := bus.Message{CorrelationID: fmt.Sprint("c", i), ReplyTo: rq, Body: []byte("q")}
		if err := bus.PublishAndWait(ctx, b, "", q, msg); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 10, Replies: true})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := b.Consume(ctx, rq, bus.ConsumeOptions{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	var held []*bus.Delivery
	for i := 0; i < requests; i++ {
		held = append(held, recvWithin(t, sub, 10*time.Second))
	}

	node.MustCtl("set_vm_memory_high_watermark", "0")
	restored := false
	defer func() {
		if !restored {
			_, _ = node.Ctl("set_vm_memory_high_watermark", "0.4")
		}
	}()
	// Publish until the broker has said it blocks publishers.
	blocked := false
	for i := 0; i < 40 && !blocked; i++ {
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := bus.PublishAndWait(pctx, b, "", scratch, bus.Message{Body: []byte("x")})
		pcancel()
		blocked = errors.Is(err, bus.ErrBlocked)
	}
	if !blocked {
		t.Fatal("the broker never blocked publishing")
	}

	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	t0 := time.Now()
	err = bus.Reply(rctx, b, held[0], bus.Message{CorrelationID: held[0].CorrelationID, Body: []byte("a")})
	rcancel()
	if !errors.Is(err, bus.ErrBlocked) {
		t.Fatalf("Reply under the alarm: %v, want ErrBlocked", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("Reply under the alarm took %v, its context allowed 300ms", took)
	}

	node.MustCtl("set_vm_memory_high_watermark", "0.4")
	restored = true
	for _, d := range held {
		if err := bus.Reply(ctx, b, d, bus.Message{CorrelationID: d.CorrelationID, Body: []byte("a")}); err != nil {
			t.Fatalf("Reply after the alarm cleared: %v", err)
		}
	}
	got := map[string]bool{}
	for len(got) < requests {
		d := recvWithin(t, replies, 10*time.Second)
		got[d.CorrelationID] = true
		_ = d.Ack()
	}
	if err := sub.Cancel(ctx); err != nil {
		t.Errorf("Cancel: %v", err)
	}
	if out := node.MustCtl("list_queues", "-q", "name", "messages"); !strings.Contains(out, "patbus.fault.alarm.requests\t0") {
		t.Errorf("answered requests are still queued:\n%s", out)
	}
}
