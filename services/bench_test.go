package services_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
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

// BenchmarkActLocal: an act answered in-process, through the whole Act path
// (merge, resolve, typed handler, encode, decode).
func BenchmarkActLocal(b *testing.B) {
	s := benchService(b, "bench-local")
	addBenchLogin(b, s)
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("Act", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := s.Act(ctx, "role:bench,cmd:login", benchInput); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Call", func(b *testing.B) {
		b.ReportAllocs()
		in := login{User: "asd", Password: "123"}
		for i := 0; i < b.N; i++ {
			if _, err := services.Call[result](ctx, s, "role:bench,cmd:login", in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Act(ctx, "role:bench,cmd:login", benchInput); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
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
	measure(b, 1, func(ctx context.Context) error {
		_, err := s.Act(ctx, "role:bench,cmd:login", benchInput)
		return err
	})
}

// BenchmarkRemote compares a remote act over RabbitMQ (caller and service on
// their own connections) with the plain amqp091-go RPC of RabbitMQ's
// tutorial (internal/baseline), in the same run, at concurrency 1 and 64.
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
	b.Cleanup(func() {
		br := dial()
		_ = br.DeleteQueue(context.Background(), testAct+"."+name+"@1.0.0")
	})
	caller := benchService(b, name+"-caller", services.WithBroker(dial()))
	if err := caller.WaitFor(ctx, "role:bench,cmd:login"); err != nil {
		b.Fatal(err)
	}

	queue := "patbus.baseline." + wire.NewID()[:8]
	reply := []byte(benchReply)
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
	body := []byte(`{"user":"asd","password":"123","note":"` + strings.Repeat("x", 200) + `"}`)

	// The rpc layer alone, from a bare rpc.Client to the same service: what
	// the services layer adds is the difference to patbus/c=N.
	rc, err := rpc.NewClient(dial())
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	key, err := patterns.Key(patterns.MustParse("role:bench,cmd:login,$$target:" + name + ",$$version:1.0.0"))
	if err != nil {
		b.Fatal(err)
	}
	rawReq := rpc.Request{Exchange: testAct, Key: key, Pattern: "cmd:login,role:bench", Body: body}

	for _, c := range []int{1, 64} {
		b.Run(fmt.Sprintf("rpc-only/c=%d", c), func(b *testing.B) {
			measure(b, c, func(ctx context.Context) error {
				_, err := rc.Call(ctx, rawReq)
				return err
			})
		})
		b.Run(fmt.Sprintf("patbus/c=%d", c), func(b *testing.B) {
			measure(b, c, func(ctx context.Context) error {
				_, err := caller.Act(ctx, "role:bench,cmd:login", benchInput)
				return err
			})
		})
		b.Run(fmt.Sprintf("amqp091/c=%d", c), func(b *testing.B) {
			measure(b, c, func(ctx context.Context) error {
				_, err := bc.Call(ctx, "", queue, body)
				return err
			})
		})
	}
}

// measure runs b.N calls over conc goroutines and reports the round-trip
// p50 and p99 (µs) and the throughput (calls/s).
func measure(b *testing.B, conc int, call func(ctx context.Context) error) {
	b.Helper()
	for i := 0; i < 50; i++ { // warm up
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := call(ctx)
		cancel()
		if err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	per := b.N / conc
	extra := b.N % conc
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < conc; g++ {
		n := per
		if g < extra {
			n++
		}
		wg.Add(1)
		go func(g, n int) {
			defer wg.Done()
			ls := make([]time.Duration, 0, n)
			for i := 0; i < n; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := call(ctx)
				ls = append(ls, time.Since(t0))
				cancel()
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
			lat[g] = ls
		}(g, n)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	var all []time.Duration
	for _, ls := range lat {
		all = append(all, ls...)
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Microseconds())
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
}
