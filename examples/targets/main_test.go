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

const want = `cmd:hello $$target:alpha -> alpha@1.0.0
cmd:hello $$target:beta -> beta@2.0.0
cmd:hello $$version:1.0.0 -> alpha@1.0.0
cmd:hello (no pin) -> beta@2.0.0
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
		for _, q := range []string{"alpha@1.0.0", "beta@2.0.0", "targets-caller@1.0.0"} {
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
