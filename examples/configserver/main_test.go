package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `config: database mongodb://127.0.0.1:27017/app, port 8080
feature flags (default$): {"beta":false}
without default$: services: no service for pattern cmd:flags,role:feature: rpc: no route
`

func TestRunMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check(t, ctx, b)
}

func TestRunRabbitMQ(t *testing.T) {
	url := testenv.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Dial(ctx, []string{url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	defer func() {
		// The act queues are durable, shared by instances: remove them.
		for _, q := range []string{"config-server@1.0.0", "app@1.0.0"} {
			_ = b.DeleteQueue(ctx, services.DefaultActExchange+"."+q)
		}
	}()
	check(t, ctx, b)
}

func check(t *testing.T, ctx context.Context, b bus.Broker) {
	t.Helper()
	var out bytes.Buffer
	if err := run(ctx, b, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("output\n%s\nwant\n%s", out.String(), want)
	}
}
