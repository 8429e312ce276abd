package rpc

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
)

// The benchmarks measure a round trip (concurrency 1: p50 and p99 from the
// recorded durations) and throughput (concurrency 64: calls/s) of patbus on
// RabbitMQ next to a plain amqp091-go client and server written as in
// RabbitMQ's RPC tutorial (internal/baseline) in the same run, and patbus on
// the in-memory broker. See /work/notes/rpc.md for figures.
//
//	PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ go test -run '^$' -bench 'RoundTrip|Throughput' -benchtime 3s ./rpc
//	PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ go test -run '^$' -bench Interleaved -benchtime 1x -count 3 ./rpc
//
// patbus publishes on the topic exchange patbus.act, as services do; the
// baseline, as the tutorial, on the default exchange. BENCH_DIRECT=1 makes
// patbus use the default exchange too, which shows what topic routing
// costs RabbitMQ.

// benchPrefetch is the server prefetch of both patbus and the baseline.
const benchPrefetch = 64

// benchBody is a small JSON request, echoed back.
var benchBody = []byte(`{"cmd":"get","role":"account","uid":2,"name":"Ada Lovelace"}`)

type callFunc func(ctx context.Context) error

func BenchmarkRoundTrip(b *testing.B) {
	eachBenchTarget(b, func(b *testing.B, call callFunc) { latency(b, call) })
}

func BenchmarkThroughput64(b *testing.B) {
	eachBenchTarget(b, func(b *testing.B, call callFunc) { throughput(b, call, 64) })
}

// eachBenchTarget runs f for patbus on the in-memory broker, patbus on
// RabbitMQ and the plain amqp091-go baseline on RabbitMQ.
func eachBenchTarget(b *testing.B, f func(b *testing.B, call callFunc)) {
	b.Run("patbus-memory", func(b *testing.B) {
		m, err := bus.NewMemory()
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		f(b, patbusCaller(b, m, m))
	})
	b.Run("patbus-rabbitmq", func(b *testing.B) {
		url := testenv.AMQPURL(b)
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		// Client and server on their own connections, as two processes.
		cb, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-bench-client"))
		if err != nil {
			b.Fatal(err)
		}
		defer cb.Close()
		sb, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-bench-server"))
		if err != nil {
			b.Fatal(err)
		}
		defer sb.Close()
		f(b, patbusCaller(b, cb, sb))
	})
	b.Run("baseline-rabbitmq", func(b *testing.B) {
		url := testenv.AMQPURL(b)
		queue := "patbus.bench.baseline." + wire.NewID()[:12]
		srv, err := baseline.NewRPCServer(url, queue, benchPrefetch, func(body []byte) []byte { return body })
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		cl, err := baseline.NewRPCClient(url)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		f(b, func(ctx context.Context) error {
			_, err := cl.Call(ctx, "", queue, benchBody)
			return err
		})
	})
}

// patbusCaller starts an echo Server on sb and returns calls from a Client
// on cb made with clientOpts; everything is stopped at the end of the benchmark.
func patbusCaller(b *testing.B, cb, sb bus.Broker, clientOpts ...Option) callFunc {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := DeclareActExchange(ctx, sb); err != nil {
		b.Fatal(err)
	}
	id := wire.NewID()[:12]
	queue, key := "patbus.bench.rpc."+id, "cmd:get.id:"+id+".role:account"
	if _, err := sb.DeclareQueue(ctx, bus.Queue{Name: queue, Durable: true}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sb.DeleteQueue(context.Background(), queue) })
	if err := sb.Bind(ctx, bus.Binding{Exchange: ActExchange, Queue: queue, Key: key}); err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(sb, queue, HandlerFunc(echo), WithPrefetch(benchPrefetch))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	c, err := NewClientContext(ctx, cb, clientOpts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	req := Request{Key: key, Pattern: "cmd:get,role:account", Target: "account@1.0.0", Body: benchBody}
	if os.Getenv("BENCH_DIRECT") != "" {
		req.Exchange, req.Key = DefaultExchange, queue
	}
	return func(ctx context.Context) error {
		_, err := c.Call(ctx, req)
		return err
	}
}

// warmup makes a few calls before the clock starts.
func warmup(b *testing.B, call callFunc) {
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		err := call(ctx)
		cancel()
		if err != nil {
			b.Fatalf("warm-up call: %v", err)
		}
	}
}

// latency makes b.N calls one after another and reports p50 and p99.
func latency(b *testing.B, call callFunc) {
	warmup(b, call)
	ds := make([]time.Duration, 0, b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, ds)
}

// throughput makes b.N calls from conc goroutines and reports calls/s.
func throughput(b *testing.B, call callFunc, conc int) {
	warmup(b, call)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		all   = make([]time.Duration, 0, b.N)
		first error
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds := make([]time.Duration, 0, b.N/conc+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				ds = append(ds, time.Since(t0))
			}
			mu.Lock()
			all = append(all, ds...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	reportPercentiles(b, all)
}

func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := int(p * float64(len(ds)-1))
		return float64(ds[i]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkInterleaved compares patbus with the baseline on RabbitMQ in
// alternating rounds (300 sequential calls, then 6,000 calls from 64
// goroutines, for each in turn), so that a machine whose load drifts
// during the run (other processes, RabbitMQ's own work) affects both alike.
// It reports both p50s and throughputs and their ratios; run it with
// -benchtime 1x (each iteration is a full comparison). A third contender,
// the same baseline publishing through the topic exchange patbus.act (as
// patbus does), gives the fair comparison (the "-vs-topic" ratios); the
// headline ratios stay against the tutorial's default exchange. A fourth,
// patbus with WithDirectReplyTo (its own echo Server on the same
// connection), reports "direct-" figures and its ratios to the default
// exclusive reply queue ("direct-vs-queue") and to the baseline.
func BenchmarkInterleaved(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	cb, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-bench-client"))
	if err != nil {
		b.Fatal(err)
	}
	defer cb.Close()
	sb, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-bench-server"))
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	patbus := patbusCaller(b, cb, sb)
	direct := patbusCaller(b, cb, sb, WithDirectReplyTo())

	queue := "patbus.bench.baseline." + wire.NewID()[:12]
	srv, err := baseline.NewRPCServer(url, queue, benchPrefetch, func(body []byte) []byte { return body })
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cl, err := baseline.NewRPCClient(url)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	base := func(ctx context.Context) error {
		_, err := cl.Call(ctx, "", queue, benchBody)
		return err
	}
	// The fair comparison: the same baseline, its requests routed by the
	// topic exchange patbus.act as patbus's are.
	topicKey := "cmd:get.id:" + queue[len(queue)-12:] + ".role:baseline"
	if err := sb.Bind(ctx, bus.Binding{Exchange: ActExchange, Queue: queue, Key: topicKey}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = sb.Unbind(context.Background(), bus.Binding{Exchange: ActExchange, Queue: queue, Key: topicKey})
	}()
	baseTopic := func(ctx context.Context) error {
		_, err := cl.Call(ctx, ActExchange, topicKey, benchBody)
		return err
	}
	warmup(b, patbus)
	warmup(b, base)
	warmup(b, baseTopic)
	warmup(b, direct)

	const rounds, seqCalls, parCalls, conc = 8, 300, 6000, 64
	callCtx, cancelCalls := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelCalls()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat := [4][]time.Duration{}
		rate := [4][]float64{}
		for r := 0; r < rounds; r++ {
			for k, call := range []callFunc{patbus, base, baseTopic, direct} {
				for j := 0; j < seqCalls; j++ {
					t0 := time.Now()
					if err := call(callCtx); err != nil {
						b.Fatal(err)
					}
					lat[k] = append(lat[k], time.Since(t0))
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, conc)
				t0 := time.Now()
				for g := 0; g < conc; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= parCalls {
							if err := call(callCtx); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				rate[k] = append(rate[k], parCalls/time.Since(t0).Seconds())
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
		}
		p50 := func(ds []time.Duration) float64 {
			slices.Sort(ds)
			return float64(ds[len(ds)/2]) / float64(time.Microsecond)
		}
		median := func(xs []float64) float64 {
			slices.Sort(xs)
			return xs[len(xs)/2]
		}
		pp, bp := p50(lat[0]), p50(lat[1])
		pr, br := median(rate[0]), median(rate[1])
		b.ReportMetric(pp, "patbus-p50-µs")
		b.ReportMetric(bp, "baseline-p50-µs")
		b.ReportMetric(pp/bp, "p50-ratio")
		b.ReportMetric(pr, "patbus-calls/s")
		b.ReportMetric(br, "baseline-calls/s")
		b.ReportMetric(pr/br, "calls/s-ratio")
		tp, tr := p50(lat[2]), median(rate[2])
		b.ReportMetric(tp, "baseline-topic-p50-µs")
		b.ReportMetric(tr, "baseline-topic-calls/s")
		b.ReportMetric(pp/tp, "p50-ratio-vs-topic")
		b.ReportMetric(pr/tr, "calls/s-ratio-vs-topic")
		dp, dr := p50(lat[3]), median(rate[3])
		b.ReportMetric(dp, "direct-p50-µs")
		b.ReportMetric(dr, "direct-calls/s")
		b.ReportMetric(dp/pp, "direct-vs-queue-p50-ratio")
		b.ReportMetric(dr/pr, "direct-vs-queue-calls/s-ratio")
		b.ReportMetric(dp/bp, "direct-p50-ratio")
		b.ReportMetric(dr/br, "direct-calls/s-ratio")
	}
}
