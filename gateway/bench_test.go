package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
)

// The gateway's benchmarks: GET /user/:id through HTTP, the gateway, the
// bus, the user service's load action and back, against a plain net/http
// handler that does the same work (find the user in a map, answer it as
// JSON), at 1 and 64 clients on keep-alive connections. Each reports
// req/s and the p50 and p99 latency in microseconds; compare the
// sub-benchmarks for the ratios:
//
//	go test -run '^$' -bench 'Gateway|Plain' -benchtime 5000x ./gateway/
//
// "inprocess" acts through the user service itself, without the broker
// (the gateway's own cost); "memory" and "rabbitmq" act through a second
// service, over the in-memory broker and RabbitMQ.

var benchClients = []int{1, 64}

func BenchmarkGateway(b *testing.B) {
	for _, kind := range []string{"inprocess", "memory", "rabbitmq"} {
		for _, clients := range benchClients {
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
				gw, err := gateway.New(actor, []gateway.RouteSet{seedMap()})
				if err != nil {
					b.Fatal(err)
				}
				srv := httptest.NewServer(gw)
				defer srv.Close()
				c := benchClient(clients)
				defer c.Transport.(*http.Transport).CloseIdleConnections()
				req, _ := http.NewRequest("POST", srv.URL+"/user", strings.NewReader(`{"id":"7","name":"Ada"}`))
				req.Header.Set("Content-Type", "application/json")
				if res, err := c.Do(req); err != nil || res.StatusCode != 200 {
					b.Fatalf("create: %v %v", res, err)
				} else {
					res.Body.Close()
				}
				runClients(b, c, clients, srv.URL+"/user/7")
			})
		}
	}
}

func BenchmarkPlain(b *testing.B) {
	for _, clients := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var mu sync.Mutex
			store := map[string]user{"7": {ID: "7", Name: "Ada"}}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /user/{id}", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				u, ok := store[r.PathValue("id")]
				mu.Unlock()
				if !ok {
					http.Error(w, `{"code":"not_found"}`, 404)
					return
				}
				body, _ := json.Marshal(u)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			c := benchClient(clients)
			defer c.Transport.(*http.Transport).CloseIdleConnections()
			runClients(b, c, clients, srv.URL+"/user/7")
		})
	}
}

func benchClient(clients int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxIdleConns: clients}}
}

// runClients sends b.N GETs to url from clients goroutines and reports
// req/s, p50 and p99.
func runClients(b *testing.B, c *http.Client, clients int, url string) {
	get := func() error {
		res, err := c.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	for i := 0; i < clients*4; i++ { // warm the connections up
		if err := get(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := get(); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}
