package rpc

import (
	"context"
	"os"
	"slices"
	"strconv"
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
// patbus publishes to the service's queue through the default exchange, as
// services.WithDirectToQueue does (the caller knows the queue from its
// catalog), and so does the baseline, as the tutorial does. BENCH_TOPIC=1
// makes patbus publish on the topic exchange patbus.act instead, as
// services do by default, which shows what topic routing costs RabbitMQ; BenchmarkInterleaved measures
// both. BENCH_PUBCHANS=n sets patbus's publishing channels per connection
// (bus.WithPublishChannels) and BENCH_PLAINWRITES=1 turns off its write
// coalescing (bus.WithWriteCoalescing(false)), to compare.

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
// RabbitMQ, the plain amqp091-go baseline on RabbitMQ and the plain program
// keeping patbus's contract.
func eachBenchTarget(b *testing.B, f func(b *testing.B, call callFunc)) {
	b.Run("patbus-memory", func(b *testing.B) {
		m, err := bus.NewMemory()
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		call, _ := patbusCaller(b, m, m)
		f(b, call)
	})
	b.Run("patbus-rabbitmq", func(b *testing.B) {
		cb, sb := dialBenchPair(b, testenv.AMQPURL(b))
		call, _ := patbusCaller(b, cb, sb)
		f(b, call)
	})
	b.Run("baseline-rabbitmq", func(b *testing.B) {
		cl, queue := tutorialEcho(b, testenv.AMQPURL(b))
		f(b, func(ctx context.Context) error {
			_, err := cl.Call(ctx, "", queue, benchBody)
			return err
		})
	})
	b.Run("contract-rabbitmq", func(b *testing.B) {
		cl, queue := contractEcho(b, testenv.AMQPURL(b))
		f(b, func(ctx context.Context) error {
			_, err := cl.Call(ctx, "", queue, "cmd:get,role:account", benchBody)
			return err
		})
	})
}

// tutorialEcho starts the tutorial's echo server on a fresh queue and a
// client for it; both stop when the benchmark ends.
func tutorialEcho(b *testing.B, url string) (*baseline.RPCClient, string) {
	queue := "patbus.bench.baseline." + wire.NewID()[:12]
	return baseline.StartRPC(b, url, queue, benchPrefetch, func(body []byte) []byte { return body }), queue
}

// contractEcho is tutorialEcho keeping patbus's wire contract
// (baseline.NewContractClient).
func contractEcho(b *testing.B, url string) (*baseline.ContractClient, string) {
	queue := "patbus.bench.contract." + wire.NewID()[:12]
	srv, err := baseline.NewContractServer(url, queue, benchPrefetch, func(body []byte) []byte { return body })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	cl, err := baseline.NewContractClient(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Close() })
	return cl, queue
}

// patbusCaller starts an echo Server on sb and returns calls from a Client
// on cb made with clientOpts, sent to the server's queue through the
// default exchange and through the topic exchange; everything is stopped at
// the end of the benchmark.
func patbusCaller(b *testing.B, cb, sb bus.Broker, clientOpts ...Option) (viaQueue, viaTopic callFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := declareActExchange(ctx, sb); err != nil {
		b.Fatal(err)
	}
	id := wire.NewID()[:12]
	queue, key := "patbus.bench.rpc."+id, "cmd:get.id:"+id+".role:account"
	if _, err := sb.DeclareQueue(ctx, bus.Queue{Name: queue, Durable: true}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sb.DeleteQueue(context.Background(), queue) })
	if err := sb.Bind(ctx, bus.Binding{Exchange: actExchange, Queue: queue, Key: key}); err != nil {
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
	c, err := NewClient(ctx, cb, clientOpts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	req := Request{Key: queue, Pattern: "cmd:get,role:account", Target: "account@1.0.0", Body: benchBody}
	topic := req
	topic.Exchange, topic.Key = actExchange, key
	if os.Getenv("BENCH_TOPIC") != "" {
		req = topic
	}
	viaQueue = func(ctx context.Context) error {
		_, err := c.Call(ctx, req)
		return err
	}
	viaTopic = func(ctx context.Context) error {
		_, err := c.Call(ctx, topic)
		return err
	}
	return viaQueue, viaTopic
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
// alternating rounds (300 sequential calls for each contender in turn, then
// 6,000 calls from 64 goroutines for each in turn), so that a machine whose
// load drifts during the run (other processes, RabbitMQ's own work) affects
// all alike. Run it with -benchtime 1x (each iteration is a full comparison).
// Contenders: patbus as services call (to the service's queue through the
// default exchange), the tutorial baseline (the same), patbus through the
// topic exchange patbus.act (as services do by default) and the baseline
// through it too, patbus with WithDirectReplyTo, and "contract": plain
// amqp091-go keeping patbus's wire contract (baseline.NewContractClient:
// request confirms, mandatory, expiration, the same properties and headers,
// separate client connections, a pool of handlers). It reports each p50 and calls/s, and the
// ratios the issue asks for: patbus against the baseline ("p50-ratio",
// "calls/s-ratio"), topic against topic ("topic-…-ratio"), direct reply-to
// against the baseline ("direct-…"), patbus against the same contract in
// plain amqp091-go ("vs-contract-…": the framework's own cost) and that
// against the tutorial ("contract-…": what the contract costs).
func BenchmarkInterleaved(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	cb, sb := dialBenchPair(b, url)
	patbus, patbusTopic := patbusCaller(b, cb, sb)
	direct, _ := patbusCaller(b, cb, sb, WithDirectReplyTo())

	cl, queue := tutorialEcho(b, url)
	base := func(ctx context.Context) error {
		_, err := cl.Call(ctx, "", queue, benchBody)
		return err
	}
	topicKey := "cmd:get.id:" + queue[len(queue)-12:] + ".role:baseline"
	if err := sb.Bind(ctx, bus.Binding{Exchange: actExchange, Queue: queue, Key: topicKey}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = sb.Unbind(context.Background(), bus.Binding{Exchange: actExchange, Queue: queue, Key: topicKey})
	}()
	baseTopic := func(ctx context.Context) error {
		_, err := cl.Call(ctx, actExchange, topicKey, benchBody)
		return err
	}
	ccl, cqueue := contractEcho(b, url)
	contract := func(ctx context.Context) error {
		_, err := ccl.Call(ctx, "", cqueue, "cmd:get,role:account", benchBody)
		return err
	}
	contenders := []struct {
		name string
		call callFunc
	}{{"patbus", patbus}, {"baseline", base}, {"patbus-topic", patbusTopic}, {"baseline-topic", baseTopic},
		{"direct", direct}, {"contract", contract}}
	for _, c := range contenders {
		warmup(b, c.call)
	}

	const rounds, seqCalls, parCalls, conc = 8, 300, 6000, 64
	callCtx, cancelCalls := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelCalls()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat := make([][]time.Duration, len(contenders))
		rate := make([][]float64, len(contenders))
		for r := 0; r < rounds; r++ {
			// All sequential phases first: one right after a parallel
			// phase would pay for that phase's tail of acks and confirms.
			for k, c := range contenders {
				for j := 0; j < seqCalls; j++ {
					t0 := time.Now()
					if err := c.call(callCtx); err != nil {
						b.Fatal(err)
					}
					lat[k] = append(lat[k], time.Since(t0))
				}
			}
			for k, c := range contenders {
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, conc)
				t0 := time.Now()
				for g := 0; g < conc; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= parCalls {
							if err := c.call(callCtx); err != nil {
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
		p50 := make([]float64, len(contenders))
		cps := make([]float64, len(contenders))
		for k, c := range contenders {
			slices.Sort(lat[k])
			slices.Sort(rate[k])
			p50[k] = float64(lat[k][len(lat[k])/2]) / float64(time.Microsecond)
			cps[k] = rate[k][len(rate[k])/2]
			b.ReportMetric(p50[k], c.name+"-p50-µs")
			b.ReportMetric(cps[k], c.name+"-calls/s")
		}
		b.ReportMetric(p50[0]/p50[1], "p50-ratio")
		b.ReportMetric(cps[0]/cps[1], "calls/s-ratio")
		b.ReportMetric(p50[2]/p50[3], "topic-p50-ratio")
		b.ReportMetric(cps[2]/cps[3], "topic-calls/s-ratio")
		b.ReportMetric(p50[4]/p50[1], "direct-p50-ratio")
		b.ReportMetric(cps[4]/cps[1], "direct-calls/s-ratio")
		b.ReportMetric(p50[0]/p50[5], "vs-contract-p50-ratio")
		b.ReportMetric(cps[0]/cps[5], "vs-contract-calls/s-ratio")
		b.ReportMetric(p50[5]/p50[1], "contract-p50-ratio")
		b.ReportMetric(cps[5]/cps[1], "contract-calls/s-ratio")
	}
}

// dialBenchPair dials a client and a server broker on their own
// connections, as two processes would; both close when the benchmark ends.
func dialBenchPair(b *testing.B, url string) (client, server bus.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	for _, side := range []struct {
		name string
		b    *bus.Broker
	}{{"patbus-bench-client", &client}, {"patbus-bench-server", &server}} {
		br, err := bus.Dial(ctx, []string{url}, benchBusOpts(side.name)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.Close() })
		*side.b = br
	}
	return client, server
}

func benchBusOpts(name string) []bus.Option {
	opts := []bus.Option{bus.WithConnectionName(name)}
	if n, err := strconv.Atoi(os.Getenv("BENCH_PUBCHANS")); err == nil {
		opts = append(opts, bus.WithPublishChannels(n))
	}
	if os.Getenv("BENCH_PLAINWRITES") != "" {
		opts = append(opts, bus.WithWriteCoalescing(false))
	}
	return opts
}
