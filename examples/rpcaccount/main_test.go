package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `account server waiting for requests on account.rpc
requesting user 2
got {"state":1000,"msg":"ok","data":{"uid":2,"name":"Ada Lovelace","email":"ada@example.com"}}
requesting user 99
got {"state":2000,"msg":"user not found","data":null}
`

func check(t *testing.T, b bus.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, b, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestMemory(t *testing.T) {
	b, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check(t, b)
}

func TestRabbitMQ(t *testing.T) {
	url := testenv.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check(t, b)
}
