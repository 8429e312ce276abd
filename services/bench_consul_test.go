package services_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/services"
)

// passing waits until caller's catalog says that name is passing in Consul.
func passing(b *testing.B, caller *services.Service, name string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, e := range caller.Catalog() {
			if e.Service == name && e.Health == services.HealthPassing {
				return
			}
		}
		if time.Now().After(deadline) {
			for _, e := range caller.Catalog() {
				b.Logf("%s %s %s", e.Service, e.Version, e.Health)
			}
			b.Fatalf("%s not passing in the caller's catalog after 30s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkConsulWatching compares remote acts from a caller that routes
// by Consul's health (WithConsul: one blocking query on the health of
// every patbus instance, versions filtered when the catalog is rebuilt)
// with a caller that does not, to the same service on RabbitMQ, in
// alternating rounds of the same run (a second of sequential acts, then
// three seconds of acts from 64 goroutines, five rounds, the first of
// each pair changing from round to round). It reports calls/s at 64 and
// p50 at 1 for each, and their ratios (watching/plain).
//
//	PATBUS_AMQP_URL=... CONSUL_HTTP_ADDR=127.0.0.1:8500 go test -run '^$' -bench ConsulWatching -benchtime 1x -count 3 ./services
func BenchmarkConsulWatching(b *testing.B) {
	url, consul := testenv.AMQPURL(b), testenv.ConsulAddr(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dial := func() bus.Broker { return benchDial(b, url) }
	name := "bench-consul-" + wire.NewID()[:8]
	srv := benchService(b, name, services.WithBroker(dial()), services.WithPrefetch(64), services.WithConsul(consul))
	addBenchLogin(b, srv)
	if err := srv.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dial().DeleteQueue(context.Background(), testAct+"."+name+"@1.0.0") })
	plain := benchService(b, name+"-plain", services.WithBroker(dial()))
	watching := benchService(b, name+"-watching", services.WithBroker(dial()), services.WithConsul(consul))
	for _, c := range []*services.Service{plain, watching} {
		if err := c.WaitFor(ctx, "role:bench,cmd:login"); err != nil {
			b.Fatal(err)
		}
	}
	// The watcher starts with the first act on the service's pattern.
	if _, err := watching.Act(ctx, "role:bench,cmd:login", benchInput); err != nil {
		b.Fatal(err)
	}
	passing(b, watching, name)
	contenders := []struct {
		name string
		s    *services.Service
	}{{"plain", plain}, {"watching", watching}}
	act := func(s *services.Service) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := s.Act(ctx, "role:bench,cmd:login", benchInput)
			return err
		}
	}
	for _, c := range contenders {
		measure(act(c.s), 1, 50) // warm up
	}
	const rounds, seqFor, parFor = 5, time.Second, 3 * time.Second
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat1 := make([][]time.Duration, len(contenders))
		rate := make([][]float64, len(contenders))
		for r := 0; r < rounds; r++ {
			// Who goes first changes from round to round, so that neither
			// always follows the other's load.
			order := []int{r % 2, 1 - r%2}
			for _, k := range order {
				ds, _, err := measureFor(act(contenders[k].s), 1, seqFor)
				if err != nil {
					b.Fatal(err)
				}
				lat1[k] = append(lat1[k], ds...)
			}
			for _, k := range order {
				_, cps, err := measureFor(act(contenders[k].s), 64, parFor)
				if err != nil {
					b.Fatal(err)
				}
				rate[k] = append(rate[k], cps)
			}
		}
		p50, cps := make([]float64, len(contenders)), make([]float64, len(contenders))
		for k, c := range contenders {
			sort.Slice(lat1[k], func(i, j int) bool { return lat1[k][i] < lat1[k][j] })
			sort.Float64s(rate[k])
			p50[k] = float64(lat1[k][len(lat1[k])/2].Microseconds())
			cps[k] = rate[k][len(rate[k])/2]
			b.ReportMetric(p50[k], c.name+"-p50-µs")
			b.ReportMetric(cps[k], c.name+"-calls/s")
		}
		b.ReportMetric(cps[1]/cps[0], "watching-calls/s-ratio")
		b.ReportMetric(p50[1]/p50[0], "watching-p50-ratio")
	}
}

// BenchmarkResolve is the cost of resolving an act (Patrun's match, then
// the newest version the act may go to) in a catalog of 32 services, each
// serving its own pattern: "plain" by a caller without Consul, "consul" by
// one that routes by Consul's health, whose filtering happens when the
// catalog changes and so should cost nothing here.
//
//	CONSUL_HTTP_ADDR=127.0.0.1:8500 go test -run '^$' -bench Resolve ./services
func BenchmarkResolve(b *testing.B) {
	consul := testenv.ConsulAddr(b)
	mem, err := bus.NewMemory()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mem.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tag := wire.NewID()[:8]
	const n = 32
	for i := 0; i < n; i++ {
		s := benchService(b, fmt.Sprintf("bench-resolve-%s-%d", tag, i), services.WithBroker(mem), services.WithConsul(consul))
		if err := services.AddFunc(s, fmt.Sprintf("role:r%d,cmd:get", i), func(context.Context, login) (result, error) {
			return result{}, nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := s.Ready(ctx); err != nil {
			b.Fatal(err)
		}
	}
	msg := map[string]any{"role": fmt.Sprintf("r%d", n/2), "cmd": "get", "user": "asd"}
	for _, mode := range []struct {
		name string
		opts []services.Option
	}{{"plain", nil}, {"consul", []services.Option{services.WithConsul(consul)}}} {
		b.Run(mode.name, func(b *testing.B) {
			c := benchService(b, "bench-resolve-caller-"+mode.name+"-"+tag, append([]services.Option{services.WithBroker(mem)}, mode.opts...)...)
			for i := 0; i < n; i++ {
				if err := c.WaitFor(ctx, fmt.Sprintf("role:r%d,cmd:get", i)); err != nil {
					b.Fatal(err)
				}
			}
			if mode.name == "consul" {
				if _, err := c.Act(ctx, "role:r16,cmd:get", nil); err != nil {
					b.Fatal(err)
				}
				passing(b, c, fmt.Sprintf("bench-resolve-%s-%d", tag, n/2))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !c.Resolve(msg) {
					b.Fatal("no route")
				}
			}
		})
	}
}
