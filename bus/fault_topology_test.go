package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// Fault tests of what a client declared and consumes across reconnects,
// deletions and refusals. They share one private node (starting one costs
// tens of seconds on a busy machine); each subtest uses its own queues and
// client, and puts back whatever it changed on the node.
func TestRabbitFaultsTopology(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, node *testenv.RabbitNode)
	}{
		{"PublishesWaitForTopology", testPublishesWaitForTopology},
		{"ExclusiveRedeclareRefused", testExclusiveRedeclareRefused},
		{"AbandonedDeclareNotReplayed", testAbandonedDeclareNotReplayed},
		{"ResendKeepsDeadline", testResendKeepsDeadline},
		{"QueueDeletedByOthers", testQueueDeletedByOthers},
		{"QueueDeletedByProgram", testQueueDeletedByProgram},
		{"RedeclareConflict", testRedeclareConflict},
		{"OneWarningPerOutage", testOneWarningPerOutage},
		{"Interrupted", testInterruptedRabbit},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, node) })
	}
}

// queueNames lists the queues of the node's vhost "/".
func queueNames(t *testing.T, node *testenv.RabbitNode) map[string]bool {
	t.Helper()
	out := node.MustCtl("list_queues", "-q", "--no-table-headers", "name")
	names := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names[l] = true
		}
	}
	return names
}

// awaitClosed waits up to d for sub's Deliveries to close (acking what
// still comes) and fails the test if they do not.
func awaitClosed(t *testing.T, sub bus.Subscription, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case dl, ok := <-sub.Deliveries():
			if !ok {
				return
			}
			_ = dl.Ack()
		case <-timer.C:
			t.Fatalf("the subscription did not end within %v", d)
		}
	}
}

// testPublishesWaitForTopology: when the consuming connection is lost, the
// client's exclusive queues go with it. A publish made before they are
// declared again must wait for them (bounded by its context), not be
// returned as unroutable or routed to a queue that is going away.
func testPublishesWaitForTopology(t *testing.T, node *testenv.RabbitNode) {
	base, _ := url.Parse(node.URL())
	px := newNodeProxy(t, base.Host)
	events := &eventLog{}
	b := dialRabbit(t, px.url(base), faultOptions(events)...)
	if px.count() != 2 {
		t.Fatalf("%d connections through the proxy, want 2 (consuming, then publishing)", px.count())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: "before", Mandatory: true, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	_ = recvWithin(t, sub, 10*time.Second).Ack()

	// Lose the consuming connection only, and keep it from coming back.
	px.setRefuse(true)
	cutAt := time.Now()
	px.cut(0)
	if _, ok := events.awaitWhere("connection lost", "role", "sub", cutAt, 10*time.Second); !ok {
		t.Fatal("the client did not notice the lost consuming connection")
	}
	done := make(chan error, 1)
	go func() {
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		defer pcancel()
		done <- bus.PublishAndWait(pctx, b, "", q, bus.Message{MessageID: "held", Mandatory: true, Body: []byte("x")})
	}()
	if _, ok := events.awaitWhere("connect failed", "role", "sub", cutAt, 10*time.Second); !ok {
		t.Fatal("no refused reconnect")
	}
	select {
	case err := <-done:
		t.Fatalf("publish finished (%v) while the client's exclusive queue was not declared again", err)
	default:
	}
	px.setRefuse(false)
	if err := <-done; err != nil {
		t.Fatalf("publish made while the topology was down: %v, want it held and confirmed", err)
	}
	if d := recvWithin(t, sub, 10*time.Second); d.MessageID != "held" {
		t.Errorf("got %q, want the held message", d.MessageID)
	} else {
		_ = d.Ack()
	}
	_ = sub.Cancel(ctx)
}

// testExclusiveRedeclareRefused: a consumer whose exclusive queue cannot be
// declared again (here: the user lost its configure permission) ends with
// an error that says why, instead of trying for ever.
func testExclusiveRedeclareRefused(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.MustCtl("set_permissions", "-p", "/", "guest", "^$", ".*", ".*")
	t.Cleanup(func() { node.MustCtl("set_permissions", "-p", "/", "guest", ".*", ".*", ".*") })
	node.MustCtl("close_all_connections", "patbus test: refused redeclare")
	awaitClosed(t, sub, 30*time.Second)
	err = sub.Err()
	if err == nil || errors.Is(err, bus.ErrClosed) || !strings.Contains(err.Error(), "ACCESS_REFUSED") {
		t.Errorf("Err = %v, want the broker's refusal (ACCESS_REFUSED)", err)
	}
}

// testAbandonedDeclareNotReplayed: a declaration whose context ended
// before the broker answered is not remembered, so that a reconnect does
// not declare what the caller was told had failed.
func testAbandonedDeclareNotReplayed(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const name, marker = "patbus.fault.abandoned", "patbus.fault.abandoned.marker"
	node.Pause()
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := b.DeclareQueue(dctx, bus.Queue{Name: name, Exclusive: true})
	dcancel()
	node.Resume()
	if err == nil {
		t.Fatal("a declaration into a frozen broker succeeded within 300ms")
	}
	// Declarations run one at a time: once this one is done, so is the
	// abandoned one (the broker answered it after all).
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: marker, Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	closedAt := time.Now()
	node.MustCtl("close_all_connections", "patbus test: abandoned declaration")
	if _, ok := events.await("topology replayed", closedAt, 30*time.Second); !ok {
		t.Fatal("no topology replay after the reconnect")
	}
	names := queueNames(t, node)
	if !names[marker] {
		t.Errorf("the marker queue was not declared again: %v", names)
	}
	if names[name] {
		t.Errorf("the declaration whose context ended was declared again after the reconnect")
	}
}

// testResendKeepsDeadline: a message published again after a reconnect
// carries what is left of its expiration, and one whose expiration passed
// meanwhile is not published again: its Confirmation fails with
// ErrExpired.
func testResendKeepsDeadline(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), bus.WithLogger(slog.New(events)), bus.WithHeartbeat(time.Second),
		bus.WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond), bus.WithConfirmTimeout(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.fault.resend", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.DeleteQueue(context.Background(), q)
	const long = 30 * time.Second
	node.Pause()
	pausedAt := time.Now()
	lc, err := b.Publish(ctx, "", q, bus.Message{MessageID: "long", Expiration: long, Persistent: true, Body: []byte("x")})
	if err != nil {
		node.Resume()
		t.Fatal(err)
	}
	sc, err := b.Publish(ctx, "", q, bus.Message{MessageID: "short", Expiration: 500 * time.Millisecond, Persistent: true, Body: []byte("x")})
	if err != nil {
		node.Resume()
		t.Fatal(err)
	}
	// The publishing connection must be given up (the messages are
	// published again on the next one).
	_, lost := events.awaitWhere("connection lost", "role", "pub", pausedAt, 20*time.Second)
	node.Resume()
	paused := time.Since(pausedAt)
	if !lost {
		t.Fatal("the client did not notice the frozen broker")
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := lc.Wait(wctx); err != nil {
		t.Fatalf("the long-lived message: %v", err)
	}
	if err := sc.Wait(wctx); !errors.Is(err, bus.ErrExpired) || !errors.Is(err, bus.ErrUnconfirmed) {
		t.Errorf("the message that expired during the outage: %v, want ErrExpired and ErrUnconfirmed", err)
	}
	if err := bus.PublishAndWait(wctx, b, "", q, bus.Message{MessageID: "end", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var longest, shortest time.Duration
	for {
		d := recvWithin(t, sub, 10*time.Second)
		_ = d.Ack()
		if d.MessageID == "end" {
			break
		}
		if d.MessageID != "long" {
			continue // a copy of "short" the frozen broker took before the reconnect
		}
		if shortest == 0 || d.Expiration < shortest {
			shortest = d.Expiration
		}
		longest = max(longest, d.Expiration)
	}
	t.Logf("frozen %v; copies of the long-lived message: expiration %v to %v", paused.Round(time.Millisecond), shortest, longest)
	if shortest == 0 || shortest > long-paused+time.Second {
		t.Errorf("the copy published again expires in %v, want at most %v (its expiration less the outage)", shortest, long-paused+time.Second)
	}
	_ = sub.Cancel(ctx)
}

// testQueueDeletedByOthers: a durable queue declared through the broker
// and deleted by someone else (an operator, another program) is declared
// again with its bindings, and its consumer resumes.
func testQueueDeletedByOthers(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ex, q = "patbus.fault.others.ex", "patbus.fault.others"
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: ex, Kind: bus.Direct, Durable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: q, Durable: true}); err != nil {
		t.Fatal(err)
	}
	defer b.DeleteQueue(context.Background(), q)
	if err := b.Bind(ctx, bus.Binding{Exchange: ex, Queue: q, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deletedAt := time.Now()
	node.MustCtl("delete_queue", q)
	if _, ok := events.await("queue declared again", deletedAt, 20*time.Second); !ok {
		t.Fatalf("the deleted queue was not declared again (subscription: %v)", sub.Err())
	}
	if err := bus.PublishAndWait(ctx, b, ex, "k", bus.Message{MessageID: "after", Mandatory: true, Body: []byte("x")}); err != nil {
		t.Fatalf("publish through the binding after the deletion: %v", err)
	}
	if d := recvWithin(t, sub, 10*time.Second); d.MessageID != "after" {
		t.Errorf("got %q", d.MessageID)
	} else {
		_ = d.Ack()
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	_ = sub.Cancel(ctx)
}

// testQueueDeletedByProgram: a queue the program deletes through the
// broker stays deleted, although its consumer is told of the deletion by
// the broker, maybe before the deletion returns; a reconnect does not
// bring it back either.
func testQueueDeletedByProgram(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for i := 0; i < 10; i++ {
		q, err := b.DeclareQueue(ctx, bus.Queue{Name: fmt.Sprintf("patbus.fault.mine.%d", i), Durable: true})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, q)
		sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.DeleteQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
		awaitClosed(t, sub, 10*time.Second)
		if err := sub.Err(); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("%s: Err = %v, want ErrNotFound", q, err)
		}
	}
	check := func(when string) {
		have := queueNames(t, node)
		for _, q := range names {
			if have[q] {
				t.Errorf("%s: %s exists again", when, q)
			}
		}
	}
	check("after the deletions")
	closedAt := time.Now()
	node.MustCtl("close_all_connections", "patbus test: deleted queues")
	if _, ok := events.await("connected", closedAt, 30*time.Second); !ok {
		t.Fatal("no reconnect")
	}
	// A declaration runs after the reconnect's topology replay.
	if _, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	check("after a reconnect")
}

// testRedeclareConflict: a consumer whose deleted queue cannot be declared
// again as it was (its exchange now has another kind) ends with an error
// wrapping ErrPrecondition instead of trying for ever.
func testRedeclareConflict(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	other := dialRabbit(t, node.URL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ex = "patbus.fault.kind"
	if err := b.DeclareExchange(ctx, bus.Exchange{Name: ex, Kind: bus.Direct, Durable: true}); err != nil {
		t.Fatal(err)
	}
	defer other.DeleteExchange(context.Background(), ex)
	q, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, bus.Binding{Exchange: ex, Queue: q, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteExchange(ctx, ex); err != nil {
		t.Fatal(err)
	}
	if err := other.DeclareExchange(ctx, bus.Exchange{Name: ex, Kind: bus.Fanout, Durable: true}); err != nil {
		t.Fatal(err)
	}
	node.MustCtl("delete_queue", q)
	awaitClosed(t, sub, 30*time.Second)
	if err := sub.Err(); !errors.Is(err, bus.ErrPrecondition) {
		t.Errorf("Err = %v, want ErrPrecondition", err)
	}
}

// testOneWarningPerOutage: while the broker is away, the client logs one
// warning when the outage begins and one when it ends, with counts, not a
// warning per consumer, connection or attempt.
func testOneWarningPerOutage(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const consumers = 8
	var subs []bus.Subscription
	var queues []string
	for i := 0; i < consumers; i++ {
		q, err := b.DeclareQueue(ctx, bus.Queue{Name: fmt.Sprintf("patbus.fault.outage.%d", i), Durable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer b.DeleteQueue(context.Background(), q)
		sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		queues, subs = append(queues, q), append(subs, sub)
	}
	t0 := time.Now()
	node.StopApp()
	if got := events.awaitN("connect failed", t0, 4, 30*time.Second); len(got) < 4 {
		t.Fatalf("%d failed reconnects logged, want 4", len(got))
	}
	node.StartApp()
	over, ok := events.await("connection restored", t0, time.Minute)
	if !ok {
		events.dump(t, t0)
		t.Fatal("no end of the outage logged")
	}
	for i, q := range queues {
		if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: q, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if d := recvWithin(t, subs[i], 10*time.Second); d.MessageID != q {
			t.Errorf("got %q on %s", d.MessageID, q)
		} else {
			_ = d.Ack()
		}
	}
	var warns []string
	for _, e := range events.atLeast(slog.LevelWarn, t0) {
		warns = append(warns, e.msg+e.attrs)
	}
	if len(warns) != 2 {
		t.Errorf("%d warnings for one outage, want 2 (begun, ended):\n%s", len(warns), strings.Join(warns, "\n"))
	}
	restored := events.all("connection restored", t0)
	if len(restored) == 1 {
		t.Logf("end of the outage: %s", restored[0].attrs)
		if restored[0].kv["consumers"] != fmt.Sprint(consumers) {
			t.Errorf("the end of the outage counts consumers=%s, want %d", restored[0].kv["consumers"], consumers)
		}
	}
	_ = over
	for _, s := range subs {
		_ = s.Cancel(ctx)
	}
}

// testInterruptedRabbit: a connection loss closes the channel Interrupted
// returned; the consumer resumes by itself, and the next Interrupted
// channel stays open until the next interruption or the end.
func testInterruptedRabbit(t *testing.T, node *testenv.RabbitNode) {
	events := &eventLog{}
	b := dialRabbit(t, node.URL(), faultOptions(events)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := b.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	intr := sub.Interrupted()
	select {
	case <-intr:
		t.Fatal("Interrupted closed before any interruption")
	default:
	}
	node.MustCtl("close_all_connections", "patbus test: interrupted")
	select {
	case <-intr:
	case <-time.After(20 * time.Second):
		t.Fatal("Interrupted not closed by the connection loss")
	}
	next := sub.Interrupted()
	if err := bus.PublishAndWait(ctx, b, "", q, bus.Message{MessageID: "after", Mandatory: true, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if d := recvWithin(t, sub, 10*time.Second); d.MessageID != "after" {
		t.Errorf("got %q", d.MessageID)
	} else {
		_ = d.Ack()
	}
	select {
	case <-next:
		t.Fatal("the next Interrupted channel closed without a second interruption")
	default:
	}
	if err := sub.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	default:
		t.Error("Interrupted not closed after Cancel")
	}
}
