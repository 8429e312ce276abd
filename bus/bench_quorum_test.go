package bus_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// Classic against quorum queues (WithQuorumQueues), through patbus, on the
// broker of PATBUS_AMQP_URL: confirmed persistent publishing, consuming
// with manual acks, and declaring (plus deleting) a durable queue. Run
//
//	go test -run '^$' -bench 'RabbitQueueType/(publish|consume)' -benchtime 20000x -count 5 ./bus/
//	go test -run '^$' -bench 'RabbitQueueType/declare' -benchtime 200x -count 5 ./bus/
//
// and compare the medians of each classic line with the quorum line
// next to it.
func BenchmarkRabbitQueueType(b *testing.B) {
	url := testenv.AMQPURL(b)
	body := make([]byte, 256)
	for _, kind := range queueKinds {
		b.Run("publish/"+kind.name, func(b *testing.B) { benchTypedPublish(b, url, body, kind.opts...) })
		b.Run("consume/"+kind.name, func(b *testing.B) { benchTypedConsume(b, url, body, kind.opts...) })
		b.Run("declare/"+kind.name, func(b *testing.B) { benchTypedDeclare(b, url, kind.opts...) })
	}
}

// typedQueue declares a durable queue through br (a quorum queue when br
// has WithQuorumQueues), which drops its oldest messages past 20,000 when
// bounded, and deletes it at the end.
func typedQueue(b *testing.B, br bus.Broker, bounded bool) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var args map[string]any
	if bounded {
		args = map[string]any{"x-max-length": 20000}
	}
	q, err := br.DeclareQueue(ctx, bus.Queue{Name: randName("patbus.bench.type"), Durable: true, Args: args})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = br.DeleteQueue(ctx, q)
	})
	return q
}

// publishWindow publishes n persistent messages to q with benchWindow
// confirmations in flight, waited for oldest first.
func publishWindow(b *testing.B, br bus.Broker, q string, n int, body []byte) {
	ctx := context.Background()
	window := make([]*bus.Confirmation, 0, benchWindow)
	for i := 0; i < n; i++ {
		if len(window) == benchWindow {
			if err := window[0].Wait(ctx); err != nil {
				b.Fatal(err)
			}
			window = window[1:]
		}
		c, err := br.Publish(ctx, "", q, bus.Message{Body: body, Persistent: true})
		if err != nil {
			b.Fatal(err)
		}
		window = append(window, c)
	}
	for _, c := range window {
		if err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTypedPublish(b *testing.B, url string, body []byte, opts ...bus.Option) {
	br := dialRabbit(b, url, opts...)
	q := typedQueue(b, br, true)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	publishWindow(b, br, q, b.N, body)
	b.StopTimer()
	reportRate(b)
}

func benchTypedConsume(b *testing.B, url string, body []byte, opts ...bus.Option) {
	br := dialRabbit(b, url, opts...)
	q := typedQueue(b, br, false)
	publishWindow(b, br, q, b.N, body)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	sub, err := br.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 100})
	if err != nil {
		b.Fatal(err)
	}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for i := 0; i < b.N; i++ {
		select {
		case d := <-sub.Deliveries():
			if err := d.Ack(); err != nil {
				b.Fatal(err)
			}
		case <-timeout.C:
			b.Fatalf("got %d of %d", i, b.N)
		}
	}
	b.StopTimer()
	reportRate(b)
	_ = sub.Cancel(ctx)
}

func benchTypedDeclare(b *testing.B, url string, opts ...bus.Option) {
	br := dialRabbit(b, url, opts...)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q, err := br.DeclareQueue(ctx, bus.Queue{Name: randName("patbus.bench.declare"), Durable: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := br.DeleteQueue(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queues/s")
}

// The same on a three-node cluster of private nodes (a quorum queue's
// members on all three, a classic queue on the node it was declared on),
// through node 1. Each run starts its own cluster:
//
//	go test -run '^$' -bench 'RabbitClusterQueueType' -benchtime 20000x -count 3 ./bus/
func BenchmarkRabbitClusterQueueType(b *testing.B) {
	c := testenv.StartRabbitCluster(b, 3)
	url := c.Nodes[0].URL()
	body := make([]byte, 256)
	for _, kind := range queueKinds {
		b.Run("publish/"+kind.name, func(b *testing.B) { benchTypedPublish(b, url, body, kind.opts...) })
		b.Run("consume/"+kind.name, func(b *testing.B) { benchTypedConsume(b, url, body, kind.opts...) })
	}
}

// What a durable queue costs a node in memory, classic against quorum, on
// a private node and on node 1 of a three-node cluster (where a quorum
// queue has a member on each node). b.N queues are declared, so run
//
//	go test -run '^$' -bench 'RabbitQueueMemory' -benchtime 200x -count 3 ./bus/
func BenchmarkRabbitQueueMemory(b *testing.B) {
	node := testenv.StartRabbitNode(b)
	c := testenv.StartRabbitCluster(b, 3)
	for _, kind := range queueKinds {
		b.Run("node/"+kind.name, func(b *testing.B) { benchTypedMemory(b, node, kind.opts...) })
		b.Run("cluster/"+kind.name, func(b *testing.B) { benchTypedMemory(b, c.Nodes[0], kind.opts...) })
	}
}

// queueKinds are the two queue types the benchmarks compare.
var queueKinds = []struct {
	name string
	opts []bus.Option
}{
	{"classic", nil},
	{"quorum", []bus.Option{bus.WithQuorumQueues()}},
}

// benchTypedMemory declares b.N durable queues on node and reports what
// the node's memory grew by, per queue.
func benchTypedMemory(b *testing.B, node *testenv.RabbitNode, opts ...bus.Option) {
	br := dialRabbit(b, node.URL(), opts...)
	ctx := context.Background()
	memory := func() float64 {
		out := strings.TrimSpace(node.MustCtl("eval", "erlang:garbage_collect(), erlang:memory(total)."))
		v, err := strconv.ParseFloat(out, 64)
		if err != nil {
			b.Fatalf("memory: %q: %v", out, err)
		}
		return v
	}
	before := memory()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q, err := br.DeclareQueue(ctx, bus.Queue{Name: randName("patbus.bench.memory"), Durable: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.DeleteQueue(context.Background(), q) })
	}
	b.StopTimer()
	b.ReportMetric((memory()-before)/float64(b.N), "B/queue")
}
