package services_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/services"
)

// The benchmarks' request: a login of about 256 bytes of JSON.
var benchInput = map[string]any{"user": "asd", "password": "123", "note": strings.Repeat("x", 200)}

const benchReply = `{"code":1000}`

func benchService(b *testing.B, name string, opts ...services.Option) *services.Service {
	b.Helper()
	s, err := services.New(name, "1.0.0", append([]services.Option{services.WithExchanges(testAct, testRegistry)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func addBenchLogin(b *testing.B, s *services.Service) {
	err := services.AddFunc(s, "role:bench,cmd:login", func(ctx context.Context, in login) (result, error) {
		if in.User == "asd" && in.Password == "123" {
			return result{Code: 1000}, nil
		}
		return result{Code: 2100}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkActLocal: acts answered in-process, with a typed handler.
// "Call" is services.Call with a small struct (the typed fast path) and
// "Act" is Act with a map (the JSON path), each by default (the handler on
// one of the service's runner goroutines, so that one that ignores its
// context cannot hold its caller past the deadline) and "Inline"
// (WithInlineLocalActs: on the caller's goroutine). The speed goals (a
// million typed acts a second on one core, 300,000 untyped) are measured
// with:
//
//	go test -run '^$' -bench ActLocal -benchmem -cpu 1 -count 5 ./services
func BenchmarkActLocal(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []services.Option
	}{{"", nil}, {"Inline", []services.Option{services.WithInlineLocalActs()}}} {
		s := benchService(b, "bench-local"+strings.ToLower(mode.name), mode.opts...)
		addBenchLogin(b, s)
		ctx := context.Background()
		if err := s.Ready(ctx); err != nil {
			b.Fatal(err)
		}
		b.Run("Call"+mode.name, func(b *testing.B) {
			b.ReportAllocs()
			in := login{User: "asd", Password: "123"}
			for i := 0; i < b.N; i++ {
				if _, err := services.Call[result](ctx, s, "role:bench,cmd:login", in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acts/s")
		})
		b.Run("Act"+mode.name, func(b *testing.B) {
			b.ReportAllocs()
			in := map[string]any{"user": "asd", "password": "123"}
			for i := 0; i < b.N; i++ {
				if _, err := s.Act(ctx, "role:bench,cmd:login", in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acts/s")
		})
	}
}

// BenchmarkActMemoryBroker: an act through the in-memory broker (broker-only).
func BenchmarkActMemoryBroker(b *testing.B) {
	s := benchService(b, "bench-mem", services.WithBrokerOnly())
	addBenchLogin(b, s)
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	ds, cps, err := measure(func(ctx context.Context) error {
		_, err := s.Act(ctx, "role:bench,cmd:login", benchInput)
		return err
	}, 1, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(cps, "calls/s")
}

// BenchmarkRemote compares a remote act over RabbitMQ (caller and service
// on their own connections, the service with the default prefetch, the
// plain servers with the same) with plain
// amqp091-go RPC programs in the same run:
//
//   - "patbus": services' default path, every act a publish on the topic
//     exchange with its pattern's key;
//   - "patbus-direct": services.WithDirectToQueue, straight to the queue;
//   - "topic-app": RabbitMQ's RPC tutorial publishing through a topic
//     exchange to a bound queue, doing the act's application work by hand
//     (the caller encodes its input with the pattern's pairs as JSON, the
//     server decodes the login into a struct, checks it and encodes the
//     answer): the baseline of the default path;
//   - "topic": the same answering a fixed reply, no application work;
//   - "direct-app": the tutorial as it is, to the queue through the default
//     exchange, doing the application work: the baseline of patbus-direct.
//
// Rounds alternate the contenders (a second of sequential calls, then
// three seconds of continuous calls from 64 goroutines, for each in turn),
// so that a machine whose load drifts affects all alike; each iteration is
// a whole comparison of five rounds, twenty seconds per contender. It
// reports p50 and p99 at 1 and at 64 callers and calls/s at 64 for each
// (the median round), and the ratios of patbus to topic-app and of
// patbus-direct to direct-app.
//
//	PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ go test -run '^$' -bench 'Remote$' -benchtime 1x -count 3 ./services
func BenchmarkRemote(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dial := func() bus.Broker { return benchDial(b, url) }
	name := "bench-" + wire.NewID()[:8]
	srv := benchService(b, name, services.WithBroker(dial()))
	addBenchLogin(b, srv)
	if err := srv.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dial().DeleteQueue(context.Background(), testAct+"."+name+"@1.0.0") })
	caller := benchService(b, name+"-caller", services.WithBroker(dial()))
	direct := benchService(b, name+"-direct", services.WithBroker(dial()), services.WithDirectToQueue())
	for _, c := range []*services.Service{caller, direct} {
		if err := c.WaitFor(ctx, "role:bench,cmd:login"); err != nil {
			b.Fatal(err)
		}
	}
	appInput := map[string]any{"role": "bench", "cmd": "login"}
	for k, v := range benchInput {
		appInput[k] = v
	}
	reply := []byte(benchReply)
	// The plain programs: one client, servers on queues of their own.
	const topicEx = "patbus.bench.topic"
	topicKey := "$$target:" + name + ".$$version:1%2E0%2E0.cmd:login.role:bench"
	server := func(exchange, queue string, handle func([]byte) []byte) {
		srv, err := baseline.NewRPCServerOn(url, exchange, topicKey, queue, services.DefaultPrefetch, handle)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = srv.Close() })
	}
	topicAppQ, topicQ, directAppQ := "patbus.baseline.topicapp."+wire.NewID()[:8], "patbus.baseline.topic."+wire.NewID()[:8], "patbus.baseline.app."+wire.NewID()[:8]
	server(topicEx, topicAppQ, appLogin)
	server(topicEx+".fixed", topicQ, func([]byte) []byte { return reply })
	server("", directAppQ, appLogin)
	bc, err := baseline.NewRPCClient(url)
	if err != nil {
		b.Fatal(err)
	}
	defer bc.Close()
	appCall := func(exchange, key string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			in, err := json.Marshal(appInput)
			if err != nil {
				return err
			}
			_, err = bc.Call(ctx, exchange, key, in)
			return err
		}
	}
	body, _ := json.Marshal(appInput)
	contenders := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"patbus", func(ctx context.Context) error {
			_, err := caller.Act(ctx, "role:bench,cmd:login", benchInput)
			return err
		}},
		{"topic-app", appCall(topicEx, topicKey)},
		{"patbus-direct", func(ctx context.Context) error {
			_, err := direct.Act(ctx, "role:bench,cmd:login", benchInput)
			return err
		}},
		{"direct-app", appCall("", directAppQ)},
		{"topic", func(ctx context.Context) error {
			_, err := bc.Call(ctx, topicEx+".fixed", topicKey, body)
			return err
		}},
	}
	for _, c := range contenders {
		measure(c.call, 1, 50) // warm up
	}
	const rounds, seqFor, parFor = 5, time.Second, 3 * time.Second
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat1 := make([][]time.Duration, len(contenders))
		lat64 := make([][]time.Duration, len(contenders))
		rate := make([][]float64, len(contenders))
		for r := 0; r < rounds; r++ {
			for k, c := range contenders {
				ds, _, err := measureFor(c.call, 1, seqFor)
				if err != nil {
					b.Fatal(err)
				}
				lat1[k] = append(lat1[k], ds...)
			}
			for k, c := range contenders {
				ds, cps, err := measureFor(c.call, 64, parFor)
				if err != nil {
					b.Fatal(err)
				}
				lat64[k] = append(lat64[k], ds...)
				rate[k] = append(rate[k], cps)
			}
		}
		p50, p99, p50x, p99x, cps := make([]float64, len(contenders)), make([]float64, len(contenders)),
			make([]float64, len(contenders)), make([]float64, len(contenders)), make([]float64, len(contenders))
		for k, c := range contenders {
			q := func(ds []time.Duration, p float64) float64 {
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				return float64(ds[int(p*float64(len(ds)-1))].Microseconds())
			}
			sort.Float64s(rate[k])
			p50[k], p99[k] = q(lat1[k], 0.50), q(lat1[k], 0.99)
			p50x[k], p99x[k] = q(lat64[k], 0.50), q(lat64[k], 0.99)
			cps[k] = rate[k][len(rate[k])/2]
			b.ReportMetric(p50[k], c.name+"-p50-µs")
			b.ReportMetric(p99[k], c.name+"-p99-µs")
			b.ReportMetric(p50x[k], c.name+"-c64-p50-µs")
			b.ReportMetric(p99x[k], c.name+"-c64-p99-µs")
			b.ReportMetric(cps[k], c.name+"-calls/s")
		}
		for _, pair := range [][3]any{{0, 1, "topic"}, {2, 3, "direct"}} {
			x, y, n := pair[0].(int), pair[1].(int), pair[2].(string)
			b.ReportMetric(cps[x]/cps[y], n+"-calls/s-ratio")
			b.ReportMetric(p50[x]/p50[y], n+"-p50-ratio")
			b.ReportMetric(p99[x]/p99[y], n+"-p99-ratio")
			b.ReportMetric(p50x[x]/p50x[y], n+"-c64-p50-ratio")
			b.ReportMetric(p99x[x]/p99x[y], n+"-c64-p99-ratio")
		}
	}
}

func appLogin(body []byte) []byte {
	var in login
	if err := json.Unmarshal(body, &in); err != nil {
		return []byte(`{"code":400}`)
	}
	out := result{Code: 2100}
	if in.User == "asd" && in.Password == "123" {
		out.Code = 1000
	}
	b, _ := json.Marshal(out)
	return b
}

// measureFor makes calls over conc goroutines without a pause for d and
// returns their round trips and the throughput (calls/s).
func measureFor(call func(ctx context.Context) error, conc int, d time.Duration) ([]time.Duration, float64, error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []time.Duration
		errOnce sync.Once
		first   error
		stop    atomic.Bool
	)
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ls []time.Duration
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := call(ctx)
				ls = append(ls, time.Since(t0))
				cancel()
				if err != nil {
					errOnce.Do(func() { first = err })
					stop.Store(true)
					return
				}
			}
			mu.Lock()
			all = append(all, ls...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, float64(len(all)) / time.Since(start).Seconds(), first
}

// benchDial dials RabbitMQ at url for a benchmark, closed at its end.
func benchDial(b *testing.B, url string) bus.Broker {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	br, err := bus.Dial(ctx, []string{url}, bus.WithConnectionName("patbus-services-bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	return br
}

// measure makes n calls over conc goroutines and returns their round trips
// and the throughput (calls/s).
func measure(call func(ctx context.Context) error, conc, n int) ([]time.Duration, float64, error) {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     = make([]time.Duration, 0, n)
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls := make([]time.Duration, 0, n/conc+1)
			for next.Add(1) <= int64(n) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := call(ctx)
				ls = append(ls, time.Since(t0))
				cancel()
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
			}
			mu.Lock()
			all = append(all, ls...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, float64(n) / time.Since(start).Seconds(), first
}

// BenchmarkRemotePrefetch measures remote acts from 64 callers against
// services that differ only in their prefetch (WithPrefetch: the requests
// one instance takes from the broker and handles at once), the default
// among them, in alternating rounds of three seconds, each server on a
// connection of its own. It reports calls/s and the p50 and p99 round
// trips in µs of each, which is what the default prefetch is chosen by:
//
//	eval "$(scripts/services.sh)"
//	go test -run '^$' -bench RemotePrefetch -benchtime 1x -count 3 ./services
func BenchmarkRemotePrefetch(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dial := func() bus.Broker { return benchDial(b, url) }
	name := "bench-pf-" + wire.NewID()[:8]
	caller := benchService(b, name+"-caller", services.WithBroker(dial()))
	prefetches := []int{8, 16, 32, 64, 128, 256}
	for _, pf := range prefetches {
		srv := benchService(b, fmt.Sprintf("%s-%d", name, pf), services.WithBroker(dial()), services.WithPrefetch(pf))
		pattern := fmt.Sprintf("role:bench,cmd:login,prefetch:%d", pf)
		err := services.AddFunc(srv, pattern, func(ctx context.Context, in login) (result, error) {
			return result{Code: 1000}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Ready(ctx); err != nil {
			b.Fatal(err)
		}
		queue := fmt.Sprintf("%s.%s-%d@1.0.0", testAct, name, pf)
		b.Cleanup(func() { _ = dial().DeleteQueue(context.Background(), queue) })
		if err := caller.WaitFor(ctx, pattern); err != nil {
			b.Fatal(err)
		}
	}
	call := func(pf int) func(ctx context.Context) error {
		pattern := fmt.Sprintf("role:bench,cmd:login,prefetch:%d", pf)
		return func(ctx context.Context) error {
			_, err := caller.Act(ctx, pattern, benchInput)
			return err
		}
	}
	for _, pf := range prefetches {
		measure(call(pf), 64, 640) // warm up
	}
	const rounds, parFor = 5, 3 * time.Second
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat := make([][]time.Duration, len(prefetches))
		rate := make([][]float64, len(prefetches))
		for r := 0; r < rounds; r++ {
			for k, pf := range prefetches {
				ds, cps, err := measureFor(call(pf), 64, parFor)
				if err != nil {
					b.Fatal(err)
				}
				lat[k] = append(lat[k], ds...)
				rate[k] = append(rate[k], cps)
			}
		}
		for k, pf := range prefetches {
			sort.Float64s(rate[k])
			sort.Slice(lat[k], func(i, j int) bool { return lat[k][i] < lat[k][j] })
			q := func(p float64) float64 { return float64(lat[k][int(p*float64(len(lat[k])-1))].Microseconds()) }
			b.ReportMetric(rate[k][len(rate[k])/2], fmt.Sprintf("pf%d-calls/s", pf))
			b.ReportMetric(q(0.50), fmt.Sprintf("pf%d-p50-µs", pf))
			b.ReportMetric(q(0.99), fmt.Sprintf("pf%d-p99-µs", pf))
		}
	}
}
