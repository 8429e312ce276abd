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

const want = `login asd/123: code 1000
login asd/wrong: code 2100
login bob/123: code 2100
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
		for _, q := range []string{"login@1.0.0", "login-client@1.0.0"} {
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
