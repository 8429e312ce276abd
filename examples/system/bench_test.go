package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/store"
)

// BenchmarkLoadUser measures GET /user/:id on RabbitMQ ("rabbitmq") and
// on the in-memory broker ("memory", which tells the cost of the gateway
// and the services runtime from the broker's): HTTP → the
// gateway → the bus → the user service → MongoDB → back, next to a plain
// net/http handler that loads the same user from the same MongoDB
// directly (package store) and answers it as JSON; at 1 and 64 clients on
// keep-alive connections:
//
//	eval "$(scripts/services.sh)"    # RabbitMQ and MongoDB
//	cd examples/system && go test -run '^$' -bench LoadUser/rabbitmq -benchtime 2000x -count 5 .
//
// Each sub-benchmark sends b.N requests to the gateway and b.N to the
// plain handler, in alternating rounds, so that both see the same load on
// a shared machine. It reports the gateway's req/s and p50 and p99
// latency in ms, the plain handler's (plain-…), the ratios gateway/plain
// (x-req/s below 1: the system serves fewer requests; x-p50 above 1: it
// takes longer), and bus-p50-ms, the p50 overhead of the bus hop (the
// gateway's p50 less the plain handler's).
func BenchmarkLoadUser(b *testing.B) {
	for _, kind := range []string{"memory", "rabbitmq"} {
		b.Run(kind, func(b *testing.B) {
			amqp := ""
			if kind == "rabbitmq" {
				amqp = testenv.AMQPURL(b)
			}
			benchmarkLoadUser(b, amqp)
		})
	}
}

func benchmarkLoadUser(b *testing.B, amqp string) {
	s := testSettings(b, amqp)
	sys, base := startTestSystem(b, s, nil)
	u, err := sys.users.Collection().LoadBy(b.Context(), store.Filter{"name": "甲"})
	if err != nil {
		b.Fatal(err)
	}
	plain := httptest.NewServer(plainLoad(sys.users.Collection()))
	defer plain.Close()
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxIdleConns: 2 * clients}}
			defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
			defer c.CloseIdleConnections()
			gwURL, plainURL := base+"/user/"+u.ID, plain.URL+"/user/"+u.ID
			for _, url := range []string{gwURL, plainURL} { // warm up
				if _, err := baseline.HTTPLoad(c, clients, url, 4*clients); err != nil {
					b.Fatal(err)
				}
			}
			var gwLat, plainLat []time.Duration
			var gwTime, plainTime time.Duration
			per := max(100, 8*clients)
			b.ResetTimer()
			for done := 0; done < b.N; done += per {
				n := min(per, b.N-done)
				t0 := time.Now()
				lat, err := baseline.HTTPLoad(c, clients, gwURL, n)
				gwTime += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				gwLat = append(gwLat, lat...)
				t0 = time.Now()
				lat, err = baseline.HTTPLoad(c, clients, plainURL, n)
				plainTime += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				plainLat = append(plainLat, lat...)
			}
			b.StopTimer()
			gwRate, plainRate := float64(b.N)/gwTime.Seconds(), float64(b.N)/plainTime.Seconds()
			gp50, gp99 := baseline.Percentiles(gwLat)
			pp50, pp99 := baseline.Percentiles(plainLat)
			b.ReportMetric(gwRate, "req/s")
			b.ReportMetric(plainRate, "plain-req/s")
			b.ReportMetric(gwRate/plainRate, "x-req/s")
			b.ReportMetric(ms(gp50), "p50-ms")
			b.ReportMetric(ms(pp50), "plain-p50-ms")
			b.ReportMetric(ms(gp50)/ms(pp50), "x-p50")
			b.ReportMetric(ms(gp99), "p99-ms")
			b.ReportMetric(ms(pp99), "plain-p99-ms")
			b.ReportMetric(ms(gp99)/ms(pp99), "x-p99")
			b.ReportMetric(ms(gp50-pp50), "bus-p50-ms")
		})
	}
}

// plainLoad is the plain handler: GET /user/{id} straight from MongoDB.
func plainLoad(users *store.Collection[user.User]) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user/{id}", func(w http.ResponseWriter, r *http.Request) {
		u, err := users.Load(r.Context(), r.PathValue("id"))
		if err != nil {
			http.Error(w, `{"code":"not_found"}`, http.StatusNotFound)
			return
		}
		body, err := json.Marshal(u)
		if err != nil {
			http.Error(w, `{"code":"internal"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return mux
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
