package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/integration/soak"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// soakFor is how long the soak (TestCluster/Soak) keeps traffic flowing
// through random faults: two minutes in the default run, longer through
// scripts/soak.sh.
var soakFor = flag.Duration("soak", 2*time.Minute, "how long TestCluster/Soak runs traffic through random faults")

// The load of the tests: every goroutine of a driver starts at most this
// many operations a second (16 act callers: 400 acts a second; 8
// producers of work and 8 of events: 200 of each a second).
const (
	rate       = 25.0
	actTimeout = 5 * time.Second
	pubTimeout = 10 * time.Second
)

// How long the faults last: a killed node stays down killedFor before it
// is restarted; a paused node is silent for pausedFor, longer than the
// clients' heartbeat timeout (three intervals of 2 s) and than the
// cluster's net_ticktime (10 s, so the other nodes take it for down after
// 7.5 to 12.5 s and elect new queue leaders: a network partition).
const (
	killedFor = 10 * time.Second
	pausedFor = 20 * time.Second
	// afterwards is how long the traffic goes on once the node is back.
	afterwards = 5 * time.Second
	// clusterTick is the net_ticktime of testenv's clusters.
	clusterTick = 10 * time.Second
)

// actCodes are the codes an act may fail with while a node fails: no
// route (the instance's queue or catalog entry is being re-established),
// timeout, unavailable (the caller's connection is down), interrupted
// (the reply queue went with the connection), rejected (a quorum queue
// nacks while it elects a leader), unconfirmed.
var actCodes = []string{patbus.CodeNoRoute, patbus.CodeTimeout, patbus.CodeUnavailable, patbus.CodeInterrupted, patbus.CodeRejected, patbus.CodeUnconfirmed}

// pubCodes are the codes a confirmed Enqueue or Emit may fail with.
var pubCodes = []string{patbus.CodeTimeout, patbus.CodeUnavailable, patbus.CodeRejected, patbus.CodeUnconfirmed, patbus.CodeNoRoute}

// TestCluster starts one three-node cluster and runs each fault on it in
// turn; every subtest leaves the three nodes running.
func TestCluster(t *testing.T) {
	c := testenv.StartRabbitCluster(t, 3)
	t.Run("ActsKillLeader", func(t *testing.T) { testActs(t, c, killLeader) })
	t.Run("WorkAndEventsKillLeader", func(t *testing.T) { testFlow(t, c, killLeader) })
	t.Run("ActsPartition", func(t *testing.T) { testActs(t, c, pauseLeader) })
	t.Run("WorkAndEventsPartition", func(t *testing.T) { testFlow(t, c, pauseLeader) })
	t.Run("Soak", func(t *testing.T) { testSoak(t, c) })
}

// testSoak runs soak.Run for -soak and fails on any of its Problems.
func testSoak(t *testing.T, c *testenv.RabbitCluster) {
	ctx, cancel := context.WithTimeout(context.Background(), *soakFor+10*time.Minute)
	defer cancel()
	rep, err := soak.Run(ctx, c, soak.Config{Duration: *soakFor, Logf: t.Logf})
	var out strings.Builder
	rep.Write(&out)
	t.Logf("SOAK\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
}

// fault breaks leader and mends it; it returns when it broke it (at),
// when it began to mend it (healAt: the restart or the resume) and when
// the cluster was whole again (healedAt).
type fault struct {
	name string
	// recovery bounds the time from the fault to steady success of acts.
	recovery time.Duration
	run      func(t *testing.T, c *testenv.RabbitCluster, leader *testenv.RabbitNode) (at, healAt, healedAt time.Time)
}

var killLeader = fault{
	name:     "kill -9",
	recovery: 5 * time.Second,
	run: func(t *testing.T, c *testenv.RabbitCluster, leader *testenv.RabbitNode) (time.Time, time.Time, time.Time) {
		at := time.Now()
		leader.Kill9()
		time.Sleep(time.Until(at.Add(killedFor))) // the node stays down this long; nothing waits on it
		healAt := time.Now()
		leader.Restart()
		t.Logf("CLUSTER %s: %s restarted in %v", t.Name(), short(leader.Name), time.Since(healAt).Round(time.Millisecond))
		return at, healAt, time.Now()
	},
}

var pauseLeader = fault{
	name: "SIGSTOP",
	// The queues on the silent node have no leader until the others take
	// it for down (net_ticktime 10 s: after 7.5 to 12.5 s).
	recovery: clusterTick*5/4 + 5*time.Second,
	run: func(t *testing.T, c *testenv.RabbitCluster, leader *testenv.RabbitNode) (time.Time, time.Time, time.Time) {
		at := time.Now()
		leader.Pause()
		time.Sleep(pausedFor) // the partition lasts this long; nothing waits on it
		healAt := time.Now()
		leader.Resume()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		restarted, err := soak.Heal(ctx, c, leader)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("CLUSTER %s: cluster healed %v after the resume (application of %s restarted: %v)", t.Name(), time.Since(healAt).Round(time.Millisecond), short(leader.Name), restarted)
		return at, healAt, time.Now()
	},
}

// scene is the clients of one subtest, closed at its end.
type scene struct {
	t       *testing.T
	c       *testenv.RabbitCluster
	clients []*soak.Client
}

func newScene(t *testing.T, c *testenv.RabbitCluster) *scene {
	s := &scene{t: t, c: c}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range c.Nodes {
		if err := soak.AwaitNode(ctx, n.URL()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// dialOn dials a client with the three addresses whose two connections
// are on node n.
func (s *scene) dialOn(name string, n *testenv.RabbitNode) *soak.Client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := soak.DialOn(ctx, name, s.c.URLs(), fmt.Sprintf("127.0.0.1:%d", n.Port), debugLog(s.t), slog.LevelDebug)
	if err != nil {
		s.t.Fatal(err)
	}
	s.clients = append(s.clients, cl)
	s.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// logCounts logs the warnings and errors of every client.
func (s *scene) logCounts() {
	logs := make([]*soak.Log, len(s.clients))
	for i, cl := range s.clients {
		logs[i] = cl.Log
	}
	for _, line := range soak.SortedCounts(soak.MergeCounts(logs...)) {
		s.t.Logf("log: %s", line)
	}
}

// where says which node each client is on now.
func (s *scene) where() string {
	var parts []string
	for _, cl := range s.clients {
		pub, sub := cl.Nodes()
		parts = append(parts, fmt.Sprintf("%s pub→%s sub→%s", cl.Name, short(pub), short(sub)))
	}
	return strings.Join(parts, "; ")
}

// short shortens a node name patbus-cluster1-ab12cd34@localhost to
// cluster1.
func short(node string) string {
	if f := strings.Split(node, "-"); len(f) >= 3 {
		return f[1]
	}
	return node
}

// debugLog returns a handler that writes every record of the clients to
// the file named by PATBUS_CLUSTER_LOG, for a look at a failure; nil
// (records go nowhere) when it is unset.
func debugLog(t *testing.T) slog.Handler {
	path := os.Getenv("PATBUS_CLUSTER_LOG")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
}

// queueState logs what the cluster says of the queues: messages ready
// and unacknowledged, consumers, leader and online members.
func (s *scene) queueState(node *testenv.RabbitNode) {
	out, err := node.Ctl("list_queues", "-q", "name", "type", "messages_ready", "messages_unacknowledged", "consumers", "leader", "online")
	s.t.Logf("list_queues on %s (%v):\n%s", short(node.Name), err, out)
}

// nodeLogs logs the lines of the nodes' logs that mention any of subs
// (the last 40 of each node).
func (s *scene) nodeLogs(subs ...string) {
	for _, n := range s.c.Nodes {
		lines := n.LogLines(subs...)
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		s.t.Logf("log of %s:\n%s", short(n.Name), strings.Join(lines, "\n"))
	}
}

func randName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// testActs runs acts from 16 callers (four client programs on nodes 1, 2,
// 3 and 1, four goroutines each, half of them on a pattern declared
// idempotent) against a service version with two instances, on nodes 1
// and 2, while f breaks the node of the act queue's leader (node 1, where
// the first instance declared it).
func testActs(t *testing.T, c *testenv.RabbitCluster, f fault) {
	s := newScene(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := randName("soakacts")
	led := soak.NewLedger("acts")

	var servers []*soak.ActServer
	for i, n := range c.Nodes[:2] {
		srv, err := soak.StartActServer(ctx, s.dialOn(fmt.Sprintf("server%d", i+1), n), name, led)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, srv)
	}
	leader, err := c.AwaitQueueLeader(soak.ActQueue(name), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var drivers []*soak.Driver
	var callers []*soak.ActCaller
	for i := 0; i < 4; i++ {
		caller, err := soak.NewActCaller(ctx, s.dialOn(fmt.Sprintf("caller%d", i+1), c.Nodes[i%3]), name)
		if err != nil {
			t.Fatal(err)
		}
		callers = append(callers, caller)
		drivers = append(drivers, &soak.Driver{Ledger: led, Goroutines: 4, Rate: rate, Timeout: actTimeout, Source: uint8(i + 1),
			Op: func(ctx context.Context, seq int) error { return caller.Act(ctx, seq, seq%2 == 1) }})
	}
	t.Logf("CLUSTER %s: act queue leader on %s; %s", t.Name(), short(leader.Name), s.where())
	for _, d := range drivers {
		d.Start()
	}
	if !soak.WaitUntil(time.Minute, func() bool { _, ok := led.Counts(); return ok >= 1000 }) {
		t.Fatalf("fewer than 1000 acts answered before the fault: %+v", led.Figures())
	}

	at, healAt, healedAt, stopAt, hung := faultUnderLoad(t, c, f, leader, drivers)
	t.Logf("CLUSTER %s: after the fault: %s", t.Name(), s.where())

	fig := led.Figures()
	fw := led.Window(at, healAt)
	hw := led.Window(healAt, healedAt)
	aw := led.Window(healedAt, stopAt)
	t.Logf("CLUSTER %s: acts sent %d, answered %d, failed %d (%s), hung %d, handled %d distinct, duplicates %d",
		t.Name(), fig.Sent, fig.Confirmed, fig.Failed, soak.FormatCodes(fig.Failures), fig.Hung, fig.Received, fig.Duplicates)
	t.Logf("CLUSTER %s: %s of the leader's node: in flight failed %s; started during it: %d, failed %s; first success %s after the fault, steady from %s",
		t.Name(), f.name, soak.FormatCodes(fw.InFlight), fw.Began, soak.FormatCodes(fw.Failures), soak.FormatDuration(fw.FirstOK), soak.FormatDuration(fw.Steady))
	t.Logf("CLUSTER %s: while the node came back (%v after the fault, for %v): started %d, failed %s; afterwards: started %d, failed %s",
		t.Name(), healAt.Sub(at).Round(time.Millisecond), healedAt.Sub(healAt).Round(time.Millisecond), hw.Began, soak.FormatCodes(hw.Failures), aw.Began, soak.FormatCodes(aw.Failures))

	checkTyped(t, fig, actCodes)
	if hung > 0 || fig.Hung > 0 {
		t.Errorf("%d acts hung (%d never returned)", fig.Hung, hung)
	}
	if fig.Lost > 0 {
		t.Errorf("%d acts answered without their handler running (wrong replies?): %v", fig.Lost, led.MissingSample(10))
	}
	if fw.FirstOK < 0 || fw.FirstOK > f.recovery {
		t.Errorf("first act answered %s after the fault, want within %v", soak.FormatDuration(fw.FirstOK), f.recovery)
	}
	if fw.Steady < 0 || fw.Steady > f.recovery {
		t.Errorf("acts failed until %s after the fault, want every act started %v after it answered", soak.FormatDuration(fw.Steady), f.recovery)
	}
	if aw.Steady < 0 || aw.Steady > time.Second {
		t.Errorf("acts failed until %s after the cluster was whole again", soak.FormatDuration(aw.Steady))
	}
	// Duplicates: requests an instance held unacknowledged, delivered
	// again, and requests a caller's broker published again.
	bound := len(servers)*soak.ActPrefetch + len(callers)*soak.PublishChannels*soak.ConfirmWindow
	if fig.Duplicates > bound {
		t.Errorf("%d acts handled twice, more than the %d that can be in flight", fig.Duplicates, bound)
	}

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	for _, caller := range callers {
		_ = caller.Close()
	}
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	// Which callers failed, and when: with -v, or when the test fails.
	for _, w := range []soak.Window{fw, hw, aw} {
		for _, seq := range led.FailedSample(w.From, w.To, 5) {
			t.Logf("failed: %s", led.Describe(seq, at))
		}
	}
	if t.Failed() {
		s.logCounts()
	}
}

// testFlow runs work items and group events (confirmed Enqueue and Emit,
// eight goroutines each, from two producer programs on nodes 1 and 3)
// into a work queue with a worker on nodes 1 and 2 and a subscriber group
// with an instance on nodes 1 and 2, while f breaks the node of the
// queues' leaders (node 1, whose clients declared them).
func testFlow(t *testing.T, c *testenv.RabbitCluster, f fault) {
	s := newScene(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := randName("soakflow")
	work, events := soak.NewLedger("work"), soak.NewLedger("events")
	pattern := soak.EventPattern(name)

	var queues []*soak.WorkQueue
	var evs []*soak.Events
	for i, n := range c.Nodes[:2] {
		cl := s.dialOn(fmt.Sprintf("consumer%d", i+1), n)
		q, err := soak.NewWorkQueue(ctx, cl, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Work(ctx, work); err != nil {
			t.Fatal(err)
		}
		queues = append(queues, q)
		ev, err := soak.NewEvents(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Subscribe(ctx, pattern, name, events); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	leader, err := c.AwaitQueueLeader(name, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	groupLeader, err := c.AwaitQueueLeader(soak.GroupQueue(name), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var drivers []*soak.Driver
	producers := 0
	for i, n := range []*testenv.RabbitNode{c.Nodes[0], c.Nodes[2]} {
		cl := s.dialOn(fmt.Sprintf("producer%d", i+1), n)
		producers++
		q, err := soak.NewWorkQueue(ctx, cl, name)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := soak.NewEvents(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		drivers = append(drivers,
			&soak.Driver{Ledger: work, Goroutines: 4, Rate: rate, Timeout: pubTimeout, Op: q.Enqueue, Source: uint8(i + 1)},
			&soak.Driver{Ledger: events, Goroutines: 4, Rate: rate, Timeout: pubTimeout, Source: uint8(i + 1),
				Op: func(ctx context.Context, seq int) error { return ev.Emit(ctx, pattern, seq) }})
	}
	t.Logf("CLUSTER %s: work queue leader on %s, group queue leader on %s; %s", t.Name(), short(leader.Name), short(groupLeader.Name), s.where())
	if groupLeader != leader {
		t.Logf("CLUSTER %s: the group queue's leader is elsewhere; the fault breaks the work queue's", t.Name())
	}
	for _, d := range drivers {
		d.Start()
	}
	if !soak.WaitUntil(time.Minute, func() bool {
		_, w := work.Counts()
		_, e := events.Counts()
		return w >= 500 && e >= 500
	}) {
		t.Fatalf("too little confirmed before the fault: work %+v, events %+v", work.Figures(), events.Figures())
	}

	at, healAt, healedAt, stopAt, hung := faultUnderLoad(t, c, f, leader, drivers)
	// Everything confirmed must arrive: wait for it, bounded.
	drained := soak.WaitUntil(90*time.Second, func() bool { return work.Missing() == 0 && events.Missing() == 0 })
	drainedIn := time.Since(stopAt)
	t.Logf("CLUSTER %s: after the fault: %s", t.Name(), s.where())

	for _, kind := range []struct {
		led   *soak.Ledger
		bound int
	}{
		{work, len(queues)*soak.WorkPrefetch + producers*soak.PublishChannels*soak.ConfirmWindow},
		{events, 2*soak.EventPrefetch + producers*soak.PublishChannels*soak.ConfirmWindow},
	} {
		fig := kind.led.Figures()
		fw := kind.led.Window(at, healAt)
		hw := kind.led.Window(healAt, healedAt)
		aw := kind.led.Window(healedAt, stopAt)
		k := fig.Kind
		t.Logf("CLUSTER %s: %s sent %d, confirmed %d, failed %d (%s), hung %d, received %d distinct (%d unconfirmed), lost %d, duplicates %d (bound %d)",
			t.Name(), k, fig.Sent, fig.Confirmed, fig.Failed, soak.FormatCodes(fig.Failures), fig.Hung, fig.Received, fig.Unconfirmed, fig.Lost, fig.Duplicates, kind.bound)
		t.Logf("CLUSTER %s: %s during the %s: in flight failed %s; started %d, failed %s; first confirm %s after the fault, steady from %s; duplicates %d",
			t.Name(), k, f.name, soak.FormatCodes(fw.InFlight), fw.Began, soak.FormatCodes(fw.Failures), soak.FormatDuration(fw.FirstOK), soak.FormatDuration(fw.Steady), fw.Duplicates)
		t.Logf("CLUSTER %s: %s while the node came back (%v): started %d, failed %s; duplicates %d; afterwards: started %d, failed %s",
			t.Name(), k, healedAt.Sub(healAt).Round(time.Millisecond), hw.Began, soak.FormatCodes(hw.Failures), hw.Duplicates, aw.Began, soak.FormatCodes(aw.Failures))
		checkTyped(t, fig, pubCodes)
		if fig.Hung > 0 {
			t.Errorf("%s: %d publishes hung", k, fig.Hung)
		}
		if fig.Lost > 0 {
			t.Errorf("%s: %d confirmed messages lost (not received %v after the traffic stopped), such as %v", k, fig.Lost, drainedIn.Round(time.Millisecond), kind.led.MissingSample(10))
		}
		if fig.Duplicates > kind.bound {
			t.Errorf("%s: %d duplicates, more than the %d that can be in flight", k, fig.Duplicates, kind.bound)
		}
		if fig.Stray > 0 {
			t.Errorf("%s: %d deliveries of messages never sent", k, fig.Stray)
		}
		if aw.Steady < 0 || aw.Steady > time.Second {
			t.Errorf("%s: publishes failed until %s after the cluster was whole again", k, soak.FormatDuration(aw.Steady))
		}
	}
	if !drained {
		t.Logf("CLUSTER %s: not everything confirmed arrived within %v", t.Name(), drainedIn.Round(time.Millisecond))
		s.queueState(c.Nodes[2])
		s.nodeLogs(name, "partition", "down", "leader")
		for _, led := range []*soak.Ledger{work, events} {
			for _, seq := range led.MissingSample(20) {
				t.Logf("missing %s %s", led.Kind(), led.Describe(seq, at))
			}
		}
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	if dead, err := queues[0].Dead(dctx); err != nil || dead > 0 {
		t.Logf("CLUSTER %s: dead letters %d (%v)", t.Name(), dead, err)
	}
	for _, q := range queues {
		if err := q.Err(); err != nil {
			t.Errorf("a worker ended by itself: %v", err)
		}
		if err := q.Shutdown(dctx); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	}
	for _, ev := range evs {
		if err := ev.Err(); err != nil {
			t.Errorf("a subscription ended by itself: %v", err)
		}
		if err := ev.Shutdown(dctx); err != nil {
			t.Errorf("events shutdown: %v", err)
		}
	}
	if hung > 0 {
		t.Errorf("%d publishes never returned", hung)
	}
	if t.Failed() {
		s.logCounts()
	}
}

// faultUnderLoad runs f on leader while the drivers' traffic flows, lets
// the traffic go on for afterwards, then stops the drivers. It returns
// f's times, when the traffic stopped, and the number of operations that
// never returned.
func faultUnderLoad(t *testing.T, c *testenv.RabbitCluster, f fault, leader *testenv.RabbitNode, drivers []*soak.Driver) (at, healAt, healedAt, stopAt time.Time, hung int) {
	at, healAt, healedAt = f.run(t, c, leader)
	time.Sleep(afterwards) // the traffic goes on this long with the node back
	stopAt = time.Now()
	for _, d := range drivers {
		hung += d.Stop()
	}
	return at, healAt, healedAt, stopAt, hung
}

// checkTyped fails the test for failures whose code is not one of want.
func checkTyped(t *testing.T, fig soak.Figures, want []string) {
	t.Helper()
	if bad := fig.Unexpected(want); len(bad) > 0 {
		t.Errorf("%s failed with unexpected codes %v (untyped: %q)", fig.Kind, bad, fig.Untyped)
	}
}
