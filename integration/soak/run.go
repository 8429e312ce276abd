package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/testenv"
)

// Config says what a soak run does.
type Config struct {
	// Duration is how long the traffic flows.
	Duration time.Duration
	// FaultGap is the mean quiet time between the end of one fault (the
	// cluster whole again) and the start of the next; each gap is drawn
	// between half and one and a half of it.
	FaultGap time.Duration
	// Seed seeds the choice of faults, nodes and gaps (0: from the clock).
	Seed uint64
	// Rate is the operations per second of each driver goroutine: eight
	// act callers, four producers of work and four of events.
	Rate float64
	// Logf, if set, is told of every fault as it happens.
	Logf func(format string, args ...any)
}

// Fault kinds injected by Run.
const (
	FaultKill  = "kill -9"               // SIGKILL, down 5 s, restart
	FaultPause = "SIGSTOP"               // silent past the clients' heartbeat, or past the cluster's tick (a partition)
	FaultClose = "close_all_connections" // the broker closes every client connection
)

// FaultRecord is one injected fault and how the acts fared around it.
type FaultRecord struct {
	Kind string
	Node string
	// At is the time from the start of the run to the fault; Lasted the
	// time until the cluster was whole again.
	At, Lasted time.Duration
	// ActsFirstOK and ActsSteady are the ledger's recovery of the acts
	// (Window.FirstOK, Window.Steady) from the fault to the next one.
	ActsFirstOK, ActsSteady time.Duration
	// ActsFailed counts, by code, the acts that began in that window and
	// failed.
	ActsFailed map[string]int

	start time.Time
}

// Sample is one point of the memory and goroutine curve.
type Sample struct {
	At         time.Duration
	HeapAlloc  uint64
	RSS        uint64
	Goroutines int
}

// Report is the account of a soak run.
type Report struct {
	Duration time.Duration
	// Ledgers are the figures of acts, work and events, after the
	// consumers were given DrainTimeout to receive what was confirmed.
	Ledgers []Figures
	// Drained reports whether every confirmed message arrived.
	Drained bool
	// NeverReturned counts operations still running when their driver
	// stopped.
	NeverReturned int
	Faults        []FaultRecord
	// Samples are taken every second; Before and After are the process's
	// goroutines before the clients were dialled and after they closed.
	Samples       []Sample
	Before, After int
}

// DrainTimeout bounds the wait, after the traffic stops, for confirmed
// messages to arrive.
const DrainTimeout = 90 * time.Second

// The codes an operation may fail with while the cluster fails: those of
// the cluster tests (a timeout, a connection down, a queue without a
// leader, an interrupted act, an unconfirmed publish, no route while an
// instance's queue or catalog entry comes back).
var runCodes = []string{patbus.CodeNoRoute, patbus.CodeTimeout, patbus.CodeUnavailable, patbus.CodeInterrupted, patbus.CodeRejected, patbus.CodeUnconfirmed}

// Problems lists what makes the run a failure: a confirmed message lost,
// an operation hung or failed without one of the expected codes, a
// message delivered that was never sent, a goroutine left behind.
func (r *Report) Problems() []string {
	var out []string
	for _, f := range r.Ledgers {
		if f.Lost > 0 {
			out = append(out, fmt.Sprintf("%s: %d confirmed but never received", f.Kind, f.Lost))
		}
		if f.Hung > 0 {
			out = append(out, fmt.Sprintf("%s: %d hung", f.Kind, f.Hung))
		}
		if f.Stray > 0 {
			out = append(out, fmt.Sprintf("%s: %d deliveries of messages never sent", f.Kind, f.Stray))
		}
		if bad := f.Unexpected(runCodes); len(bad) > 0 {
			out = append(out, fmt.Sprintf("%s: failures with unexpected codes %v (untyped: %q)", f.Kind, bad, f.Untyped))
		}
	}
	if r.NeverReturned > 0 {
		out = append(out, fmt.Sprintf("%d operations never returned", r.NeverReturned))
	}
	// A few goroutines of the runtime and of the test may come and go.
	if r.After > r.Before+5 {
		out = append(out, fmt.Sprintf("goroutines: %d before the clients, %d after they closed", r.Before, r.After))
	}
	return out
}

// Write prints the report: the ledgers, the faults, and the curve (at
// most 20 points).
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "soak: %v of traffic, %d faults, drained: %v\n", r.Duration.Round(time.Second), len(r.Faults), r.Drained)
	for _, f := range r.Ledgers {
		fmt.Fprintf(w, "  %-6s sent %d, confirmed %d, failed %d (%s), hung %d, received %d distinct (%d after a failure), lost %d, duplicates %d\n",
			f.Kind, f.Sent, f.Confirmed, f.Failed, FormatCodes(f.Failures), f.Hung, f.Received, f.Unconfirmed, f.Lost, f.Duplicates)
	}
	for _, f := range r.Faults {
		fmt.Fprintf(w, "  fault at %6.1fs: %-21s on %-9s whole after %5.1fs; acts: first answer %s, steady from %s, failed %s\n",
			f.At.Seconds(), f.Kind, f.Node, f.Lasted.Seconds(), FormatDuration(f.ActsFirstOK), FormatDuration(f.ActsSteady), FormatCodes(f.ActsFailed))
	}
	step := 1
	if len(r.Samples) > 20 {
		step = (len(r.Samples) + 19) / 20
	}
	fmt.Fprintf(w, "  %8s %10s %10s %10s\n", "t", "heap MiB", "RSS MiB", "goroutines")
	for i := 0; i < len(r.Samples); i += step {
		s := r.Samples[i]
		fmt.Fprintf(w, "  %7.0fs %10.1f %10.1f %10d\n", s.At.Seconds(), float64(s.HeapAlloc)/(1<<20), float64(s.RSS)/(1<<20), s.Goroutines)
	}
	fmt.Fprintf(w, "  goroutines before the clients %d, after they closed %d\n", r.Before, r.After)
}

// Run keeps acts, work and group events flowing through the cluster c
// for cfg.Duration while it injects faults at random, one at a time,
// each on a node drawn at random: kill -9 and restart after 5 s; SIGSTOP
// for 8 s (past the clients' heartbeat, within the cluster's tick) or
// 20 s (a partition, healed as an operator would: Heal); and
// rabbitmqctl close_all_connections. The traffic: one service version
// with two instances (clients on nodes 1 and 2, which also run a worker
// of a work queue and a member of a subscriber group each), and one
// client dialled with every address that acts from eight goroutines and
// enqueues and emits from four each. Run returns when the clients have
// closed; an error means the run could not be set up or carried out
// (the report's Problems say whether patbus failed it).
func Run(ctx context.Context, c *testenv.RabbitCluster, cfg Config) (*Report, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 20
	}
	if cfg.FaultGap <= 0 {
		cfg.FaultGap = 10 * time.Second
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	logf("soak: seed %d, %v of traffic, a fault every %v or so", seed, cfg.Duration, cfg.FaultGap)

	rep := &Report{Before: runtime.NumGoroutine()}
	stopSampling := sample(&rep.Samples)
	err := run(ctx, c, cfg, rng, logf, rep)
	stopSampling()
	rep.After = settledGoroutines(rep.Before)
	return rep, err
}

func run(ctx context.Context, c *testenv.RabbitCluster, cfg Config, rng *rand.Rand, logf func(string, ...any), rep *Report) error {
	for _, n := range c.Nodes {
		if err := AwaitNode(ctx, n.URL()); err != nil {
			return err
		}
	}
	name := fmt.Sprintf("soak-%08x", rng.Uint32())
	acts, work, events := NewLedger("acts"), NewLedger("work"), NewLedger("events")
	pattern := EventPattern(name)

	var clients []*Client
	defer func() {
		for _, cl := range clients {
			_ = cl.Close()
		}
	}()
	dial := func(name string, n *testenv.RabbitNode) (*Client, error) {
		var cl *Client
		var err error
		if n == nil {
			cl, err = Dial(ctx, name, c.URLs(), nil, 0)
		} else {
			cl, err = DialOn(ctx, name, c.URLs(), fmt.Sprintf("127.0.0.1:%d", n.Port), nil, 0)
		}
		if err == nil {
			clients = append(clients, cl)
		}
		return cl, err
	}

	type consumer struct {
		srv *ActServer
		q   *WorkQueue
		ev  *Events
	}
	var consumers []consumer
	for i, n := range c.Nodes[:2] {
		cl, err := dial(fmt.Sprintf("server%d", i+1), n)
		if err != nil {
			return err
		}
		srv, err := StartActServer(ctx, cl, name, acts)
		if err != nil {
			return err
		}
		q, err := NewWorkQueue(ctx, cl, name)
		if err != nil {
			return err
		}
		if err := q.Work(ctx, work); err != nil {
			return err
		}
		ev, err := NewEvents(ctx, cl)
		if err != nil {
			return err
		}
		if err := ev.Subscribe(ctx, pattern, name, events); err != nil {
			return err
		}
		consumers = append(consumers, consumer{srv, q, ev})
	}
	cl, err := dial("producer", nil)
	if err != nil {
		return err
	}
	caller, err := NewActCaller(ctx, cl, name)
	if err != nil {
		return err
	}
	defer caller.Close()
	q, err := NewWorkQueue(ctx, cl, name)
	if err != nil {
		return err
	}
	ev, err := NewEvents(ctx, cl)
	if err != nil {
		return err
	}
	defer ev.Shutdown(context.Background())
	drivers := []*Driver{
		{Ledger: acts, Goroutines: 8, Rate: cfg.Rate, Timeout: 5 * time.Second, Source: 1,
			Op: func(ctx context.Context, seq int) error { return caller.Act(ctx, seq, seq%2 == 1) }},
		{Ledger: work, Goroutines: 4, Rate: cfg.Rate, Timeout: 10 * time.Second, Op: q.Enqueue, Source: 1},
		{Ledger: events, Goroutines: 4, Rate: cfg.Rate, Timeout: 10 * time.Second, Source: 1,
			Op: func(ctx context.Context, seq int) error { return ev.Emit(ctx, pattern, seq) }},
	}
	began := time.Now()
	for _, d := range drivers {
		d.Start()
	}
	end := began.Add(cfg.Duration)

	var faultErr error
	for faultErr == nil {
		gap := cfg.FaultGap/2 + time.Duration(rng.Int64N(int64(cfg.FaultGap)+1))
		if time.Now().Add(gap).After(end) {
			break
		}
		if !sleepCtx(ctx, gap) {
			faultErr = ctx.Err()
			break
		}
		n := c.Nodes[rng.IntN(len(c.Nodes))]
		var f FaultRecord
		f, faultErr = inject(ctx, c, n, rng, logf)
		rep.Faults = append(rep.Faults, f)
	}
	sleepCtx(ctx, time.Until(end))
	stopAt := time.Now()
	for _, d := range drivers {
		rep.NeverReturned += d.Stop()
	}
	rep.Duration = stopAt.Sub(began)
	rep.Drained = WaitUntil(DrainTimeout, func() bool { return work.Missing() == 0 && events.Missing() == 0 })

	// The acts' recovery around each fault, up to the next one.
	for i := range rep.Faults {
		f := &rep.Faults[i]
		to := stopAt
		if i+1 < len(rep.Faults) {
			to = rep.Faults[i+1].start
		}
		w := acts.Window(f.start, to)
		f.At = f.start.Sub(began)
		f.ActsFirstOK, f.ActsSteady, f.ActsFailed = w.FirstOK, w.Steady, w.Failures
	}
	for _, l := range []*Ledger{acts, work, events} {
		rep.Ledgers = append(rep.Ledgers, l.Figures())
	}

	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, cons := range consumers {
		errs = append(errs, cons.q.Err(), cons.ev.Err(),
			cons.q.Shutdown(sctx), cons.ev.Shutdown(sctx), cons.srv.Shutdown(sctx))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("soak: consumers: %w", err)
	}
	return faultErr
}

// inject breaks node n with a fault drawn at random and mends it; it
// returns when the cluster is whole again.
func inject(ctx context.Context, c *testenv.RabbitCluster, n *testenv.RabbitNode, rng *rand.Rand, logf func(string, ...any)) (FaultRecord, error) {
	f := FaultRecord{Node: shortName(n.Name), start: time.Now()}
	var err error
	switch rng.IntN(3) {
	case 0:
		f.Kind = FaultKill
		n.Kill9()
		sleepCtx(ctx, 5*time.Second)
		n.Restart()
	case 1:
		f.Kind = FaultPause
		d := 8 * time.Second
		if rng.IntN(2) == 0 {
			d = 20 * time.Second
		}
		n.Pause()
		sleepCtx(ctx, d)
		n.Resume()
		_, err = Heal(ctx, c, n)
	case 2:
		f.Kind = FaultClose
		var out string
		out, err = n.Ctl("close_all_connections", "soak")
		if err != nil {
			err = fmt.Errorf("soak: close_all_connections on %s: %v: %s", n.Name, err, strings.TrimSpace(out))
		}
	}
	if err == nil {
		err = AwaitNode(ctx, n.URL())
	}
	f.Lasted = time.Since(f.start)
	logf("soak: %s on %s, whole again after %v", f.Kind, f.Node, f.Lasted.Round(100*time.Millisecond))
	return f, err
}

// shortName shortens a node name patbus-cluster1-ab12cd34@localhost to
// cluster1.
func shortName(node string) string {
	if f := strings.Split(node, "-"); len(f) >= 3 {
		return f[1]
	}
	return node
}

// sample appends a Sample to out every second until the returned stop is
// called.
func sample(out *[]Sample) (stop func()) {
	start := time.Now()
	quit, done := make(chan struct{}), make(chan struct{})
	take := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		*out = append(*out, Sample{At: time.Since(start), HeapAlloc: ms.HeapAlloc, RSS: rss(), Goroutines: runtime.NumGoroutine()})
	}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		take()
		for {
			select {
			case <-quit:
				take()
				return
			case <-t.C:
				take()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// rss returns the process's resident set size from /proc (0 where there
// is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// settledGoroutines returns the number of goroutines once it is back to
// want or has stopped falling for a few seconds: closed clients' goroutines
// end shortly after Close returns.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 50 && n > want; i++ {
		time.Sleep(100 * time.Millisecond) // goroutines have no event to wait on
		n = runtime.NumGoroutine()
	}
	return n
}
