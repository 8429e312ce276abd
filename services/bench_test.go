package services_test

import (
	"context"
	"encoding/json"
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
	"github.com/patbus/patbus/rpc"
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
// a goroutine of its own, so that one that ignores its context cannot
// hold its caller past the deadline) and "Inline" (WithInlineLocalActs:
// on the caller's goroutine). The goal is for one core:
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

// BenchmarkRemote compares a remote act over RabbitMQ (caller and service on
// their own connections) with plain amqp091-go in the same run: the RPC of
// RabbitMQ's tutorial answering a fixed reply ("amqp091"), the same doing
// the act's application work by hand ("amqp091-app": the caller encodes its
// input as JSON, the server decodes the login into a struct, checks it and
// encodes the answer, as the patbus action does), the same keeping patbus's
// wire contract ("contract", see baseline.NewContractClient), and with a bare
// rpc.Client calling the same service ("rpc-only": what the services layer
// adds is the difference). Rounds alternate the contenders (300 calls one
// after another for each, then 6,000 calls from 64 goroutines for each), so
// that a machine whose load drifts affects all alike. Run it with
// -benchtime 1x; it reports p50 and p99 at concurrency 1, calls/s at 64,
// and patbus's ratios to the plain programs ("…-ratio" against "amqp091").
//
//	PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ go test -run '^$' -bench Remote -benchtime 1x -count 3 ./services
func BenchmarkRemote(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dial := func() bus.Broker {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		br, err := bus.Dial(dctx, []string{url}, bus.WithConnectionName("patbus-services-bench"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.Close() })
		return br
	}
	name := "bench-" + wire.NewID()[:8]
	srv := benchService(b, name, services.WithBroker(dial()), services.WithPrefetch(64))
	addBenchLogin(b, srv)
	if err := srv.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	svcQueue := testAct + "." + name + "@1.0.0"
	b.Cleanup(func() {
		br := dial()
		_ = br.DeleteQueue(context.Background(), svcQueue)
	})
	caller := benchService(b, name+"-caller", services.WithBroker(dial()))
	if err := caller.WaitFor(ctx, "role:bench,cmd:login"); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"user":"asd","password":"123","note":"` + strings.Repeat("x", 200) + `"}`)
	reply := []byte(benchReply)

	queue := "patbus.baseline." + wire.NewID()[:8]
	bs, err := baseline.NewRPCServer(url, queue, 64, func([]byte) []byte { return reply })
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	bc, err := baseline.NewRPCClient(url)
	if err != nil {
		b.Fatal(err)
	}
	defer bc.Close()
	// The same tutorial program doing the act's application work by hand:
	// the caller encodes its input with the pattern's pairs, the server
	// decodes the login, checks it and encodes the answer.
	appQueue := "patbus.baseline.app." + wire.NewID()[:8]
	as, err := baseline.NewRPCServer(url, appQueue, 64, appLogin)
	if err != nil {
		b.Fatal(err)
	}
	defer as.Close()
	appInput := map[string]any{"role": "bench", "cmd": "login"}
	for k, v := range benchInput {
		appInput[k] = v
	}
	cqueue := "patbus.contract." + wire.NewID()[:8]
	cs, err := baseline.NewContractServer(url, cqueue, 64, func([]byte) []byte { return reply })
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	cc, err := baseline.NewContractClient(url)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	rc, err := rpc.NewClient(context.Background(), dial())
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	rawReq := rpc.Request{Key: svcQueue, Pattern: "cmd:login,role:bench", Body: body}

	contenders := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"patbus", func(ctx context.Context) error {
			_, err := caller.Act(ctx, "role:bench,cmd:login", benchInput)
			return err
		}},
		{"rpc-only", func(ctx context.Context) error {
			_, err := rc.Call(ctx, rawReq)
			return err
		}},
		{"amqp091", func(ctx context.Context) error {
			_, err := bc.Call(ctx, "", queue, body)
			return err
		}},
		{"amqp091-app", func(ctx context.Context) error {
			in, err := json.Marshal(appInput)
			if err != nil {
				return err
			}
			_, err = bc.Call(ctx, "", appQueue, in)
			return err
		}},
		{"contract", func(ctx context.Context) error {
			_, err := cc.Call(ctx, "", cqueue, "cmd:login,role:bench", body)
			return err
		}},
	}
	for _, c := range contenders {
		measure(c.call, 1, 50) // warm up
	}
	const rounds, seqCalls, parCalls = 6, 300, 6000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat := make([][]time.Duration, len(contenders))
		rate := make([][]float64, len(contenders))
		for r := 0; r < rounds; r++ {
			for k, c := range contenders {
				ds, _, err := measure(c.call, 1, seqCalls)
				if err != nil {
					b.Fatal(err)
				}
				lat[k] = append(lat[k], ds...)
			}
			for k, c := range contenders {
				_, cps, err := measure(c.call, 64, parCalls)
				if err != nil {
					b.Fatal(err)
				}
				rate[k] = append(rate[k], cps)
			}
		}
		p50 := make([]float64, len(contenders))
		cps := make([]float64, len(contenders))
		for k, c := range contenders {
			sort.Slice(lat[k], func(i, j int) bool { return lat[k][i] < lat[k][j] })
			sort.Float64s(rate[k])
			q := func(p float64) float64 { return float64(lat[k][int(p*float64(len(lat[k])-1))].Microseconds()) }
			p50[k], cps[k] = q(0.50), rate[k][len(rate[k])/2]
			b.ReportMetric(p50[k], c.name+"-p50-µs")
			b.ReportMetric(q(0.99), c.name+"-p99-µs")
			b.ReportMetric(cps[k], c.name+"-calls/s")
		}
		b.ReportMetric(p50[0]/p50[2], "p50-ratio")
		b.ReportMetric(cps[0]/cps[2], "calls/s-ratio")
		b.ReportMetric(p50[0]/p50[3], "vs-app-p50-ratio")
		b.ReportMetric(cps[0]/cps[3], "vs-app-calls/s-ratio")
		b.ReportMetric(p50[0]/p50[4], "vs-contract-p50-ratio")
		b.ReportMetric(cps[0]/cps[4], "vs-contract-calls/s-ratio")
	}
}

// appLogin is the login action written by hand for the tutorial's server.
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
