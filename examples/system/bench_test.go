package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
// directly (package store) and answers it as JSON ("plain-"), and on
// RabbitMQ next to a plain handler that makes the same hop as RabbitMQ's
// RPC tutorial writes it in plain amqp091-go ("amqp-": the id to a queue,
// the tutorial's server loads the user) and one that makes it keeping
// patbus's wire contract in plain amqp091-go ("contract-", through a
// topic exchange); at 1 and 64 clients on keep-alive connections:
//
//	eval "$(scripts/services.sh)"    # RabbitMQ and MongoDB
//	cd examples/system && go test -run '^$' -bench LoadUser/rabbitmq -benchtime 3000x -count 5 .
//
// Each sub-benchmark sends b.N requests to each contender, in alternating
// rounds, so that all see the same load on a shared machine. It reports
// each one's req/s and p50 and p99 latency in ms, the gateway's ratios to
// each plain handler (x-req/s-plain below 1: the system serves fewer
// requests; x-p50-plain above 1: it takes longer), bus-p50-ms, the p50
// overhead of the bus hop (the gateway's p50 less the plain handler's),
// and amqp-hop-p50-ms and contract-hop-p50-ms, the same for the plain
// amqp091-go hops.
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
	type contender struct{ name, url string }
	contenders := []contender{{"", base + "/user/" + u.ID}, {"plain-", plain.URL + "/user/" + u.ID}}
	if amqp != "" {
		hop := httptest.NewServer(amqpLoad(b, amqp, sys.users.Collection()))
		defer hop.Close()
		contract := httptest.NewServer(contractLoad(b, amqp, sys.users.Collection()))
		defer contract.Close()
		contenders = append(contenders,
			contender{"amqp-", hop.URL + "/user/" + u.ID},
			contender{"contract-", contract.URL + "/user/" + u.ID})
	}
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxIdleConns: 2 * clients}}
			defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
			for _, k := range contenders { // warm up
				if _, err := baseline.HTTPLoad(c, clients, k.url, 4*clients); err != nil {
					b.Fatal(err)
				}
			}
			lats := make([][]time.Duration, len(contenders))
			took := make([]time.Duration, len(contenders))
			per := max(100, 8*clients)
			b.ResetTimer()
			for done := 0; done < b.N; done += per {
				n := min(per, b.N-done)
				for i, k := range contenders {
					t0 := time.Now()
					lat, err := baseline.HTTPLoad(c, clients, k.url, n)
					took[i] += time.Since(t0)
					if err != nil {
						b.Fatal(err)
					}
					lats[i] = append(lats[i], lat...)
				}
			}
			b.StopTimer()
			p50s := make([]time.Duration, len(contenders))
			gp50, gp99 := baseline.Percentiles(lats[0])
			for i, k := range contenders {
				p50, p99 := baseline.Percentiles(lats[i])
				p50s[i] = p50
				b.ReportMetric(float64(b.N)/took[i].Seconds(), k.name+"req/s")
				b.ReportMetric(ms(p50), k.name+"p50-ms")
				b.ReportMetric(ms(p99), k.name+"p99-ms")
				if i > 0 {
					b.ReportMetric(took[i].Seconds()/took[0].Seconds(), "x-req/s-"+strings.TrimSuffix(k.name, "-"))
					b.ReportMetric(ms(gp50)/ms(p50), "x-p50-"+strings.TrimSuffix(k.name, "-"))
					b.ReportMetric(ms(gp99)/ms(p99), "x-p99-"+strings.TrimSuffix(k.name, "-"))
				}
			}
			b.ReportMetric(ms(p50s[0]-p50s[1]), "bus-p50-ms")
			if len(contenders) > 3 {
				b.ReportMetric(ms(p50s[2]-p50s[1]), "amqp-hop-p50-ms")
				b.ReportMetric(ms(p50s[3]-p50s[1]), "contract-hop-p50-ms")
			}
		})
	}
}

// amqpLoad is the plain handler with a hop over RabbitMQ as its tutorial
// writes RPC in plain amqp091-go: the handler sends the id to a queue and
// answers the reply, and the tutorial's server on that queue loads the
// user from MongoDB. It tells RabbitMQ's own share of the bus hop.
func amqpLoad(b *testing.B, url string, users *store.Collection[user.User]) http.Handler {
	queue := "patbus.bench.loaduser." + randomTag()
	cl := baseline.StartRPC(b, url, queue, 64, loadByID(users))
	return hopHandler(func(ctx context.Context, id []byte) ([]byte, error) { return cl.Call(ctx, "", queue, id) })
}

// contractLoad is amqpLoad keeping patbus's wire contract in plain
// amqp091-go (baseline.StartContract: confirms, mandatory, expiration,
// patbus's properties and headers, the handler on a pool), through a topic
// exchange as acts go by default. Its hop is what the contract costs on
// RabbitMQ without the framework: the bus hop less it is patbus's own.
func contractLoad(b *testing.B, url string, users *store.Collection[user.User]) http.Handler {
	tag := randomTag()
	exchange, key := "patbus.bench.loaduser."+tag, "if:load.module:user"
	cl := baseline.StartContract(b, url, exchange, key, "patbus.bench.loaduser.contract."+tag, 64, loadByID(users))
	return hopHandler(func(ctx context.Context, id []byte) ([]byte, error) {
		return cl.Call(ctx, exchange, key, "if:load,module:user", id)
	})
}

// loadByID is the server side of a plain hop: the user with the id in
// the request's body, as JSON, or nothing.
func loadByID(users *store.Collection[user.User]) func(id []byte) []byte {
	return func(id []byte) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u, err := users.Load(ctx, string(id))
		if err != nil {
			return nil
		}
		body, _ := json.Marshal(u)
		return body
	}
}

// hopHandler serves GET /user/{id} with the reply of call for the id.
func hopHandler(call func(ctx context.Context, id []byte) ([]byte, error)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, err := call(r.Context(), []byte(r.PathValue("id")))
		if err != nil || len(body) == 0 {
			http.Error(w, `{"code":"not_found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return mux
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
