package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
)

// BenchmarkGateway measures GET /user/:id through HTTP, the gateway, the
// bus, the user service's load action and back, against a plain net/http
// handler that does the same work (find the user in a map, answer it as
// JSON), at 1 and 64 clients on keep-alive connections:
//
//	go test -run '^$' -bench Gateway -benchtime 5000x ./gateway/
//
// Each sub-benchmark sends b.N requests to the gateway and b.N to the
// plain handler, in alternating rounds, so that both see the same load on
// a shared machine. It reports the gateway's req/s and p50 and p99 latency
// (µs), the plain handler's (plain-…), and the ratios gateway/plain
// (x-req/s below 1 means the gateway serves fewer requests; x-p50 and
// x-p99 above 1 mean it takes longer).
//
// "inprocess" acts through the user service itself, without the broker
// (the gateway's own cost and the services runtime's); "memory" and
// "rabbitmq" act through a second service, over the in-memory broker and
// RabbitMQ.
func BenchmarkGateway(b *testing.B) {
	for _, kind := range []string{"inprocess", "memory", "rabbitmq"} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", kind, clients), func(b *testing.B) {
				var actor gateway.Actor
				switch kind {
				case "inprocess":
					actor = localActor(b, testenv.Memory(b), nil)
				case "memory":
					m := testenv.Memory(b)
					actor = startStack(b, m, m, nil).actor
				case "rabbitmq":
					r := testenv.Rabbit(b)
					actor = startStack(b, r, r, nil).actor
				}
				gw, err := gateway.New(actor, []gateway.RouteSet{referenceMap()})
				if err != nil {
					b.Fatal(err)
				}
				gws := httptest.NewServer(gw)
				defer gws.Close()
				plain := httptest.NewServer(plainUsers())
				defer plain.Close()
				c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxIdleConns: 2 * clients}}
				defer c.CloseIdleConnections()

				res, err := c.Post(gws.URL+"/user", "application/json", strings.NewReader(`{"id":"7","name":"Ada"}`))
				if err != nil || res.StatusCode != 200 {
					b.Fatalf("create: %v %v", res, err)
				}
				res.Body.Close()
				for _, u := range []string{gws.URL, plain.URL} {
					if _, err := baseline.HTTPLoad(c, clients, u+"/user/7", clients*4); err != nil { // warm up
						b.Fatal(err)
					}
				}

				var gwLat, plainLat []time.Duration
				var gwTime, plainTime time.Duration
				per := max(200, 8*clients)
				b.ResetTimer()
				for done := 0; done < b.N; done += per {
					n := min(per, b.N-done)
					t0 := time.Now()
					lat, err := baseline.HTTPLoad(c, clients, gws.URL+"/user/7", n)
					gwTime += time.Since(t0)
					if err != nil {
						b.Fatal(err)
					}
					gwLat = append(gwLat, lat...)
					t0 = time.Now()
					lat, err = baseline.HTTPLoad(c, clients, plain.URL+"/user/7", n)
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
				b.ReportMetric(us(gp50), "p50-us")
				b.ReportMetric(us(pp50), "plain-p50-us")
				b.ReportMetric(us(gp50)/us(pp50), "x-p50")
				b.ReportMetric(us(gp99), "p99-us")
				b.ReportMetric(us(pp99), "plain-p99-us")
				b.ReportMetric(us(gp99)/us(pp99), "x-p99")
			})
		}
	}
}

// plainUsers is the plain net/http handler: GET /user/{id} from a map.
func plainUsers() http.Handler {
	var mu sync.Mutex
	store := map[string]user{"7": {ID: "7", Name: "Ada"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		u, ok := store[r.PathValue("id")]
		mu.Unlock()
		if !ok {
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

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
