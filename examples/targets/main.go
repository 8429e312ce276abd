// Command targets shows $$target and $$version: two services, "alpha" and
// "beta", serve the same pattern, and a caller picks one by target, or lets
// the newest version win.
//
//	go run ./examples/targets               # in-memory broker
//	go run ./examples/targets -amqp amqp://guest:guest@127.0.0.1:5672/
//
// PATBUS_AMQP_URL is the default of -amqp.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/services"
)

// Hello is the reply of cmd:hello.
type Hello struct {
	From string `json:"from"`
}

func run(ctx context.Context, b bus.Broker, out io.Writer) error {
	for _, v := range [][2]string{{"alpha", "1.0.0"}, {"beta", "2.0.0"}} {
		svc, err := services.New(v[0], v[1], services.WithBroker(b))
		if err != nil {
			return err
		}
		defer svc.Close()
		from := v[0] + "@" + v[1]
		err = services.AddFunc(svc, "cmd:hello", func(ctx context.Context, _ struct{}) (Hello, error) {
			return Hello{From: from}, nil
		})
		if err != nil {
			return err
		}
		if err := svc.Ready(ctx); err != nil {
			return err
		}
	}

	caller, err := services.New("targets-caller", "1.0.0", services.WithBroker(b))
	if err != nil {
		return err
	}
	defer caller.Close()
	for _, p := range []string{"cmd:hello,$$target:alpha", "cmd:hello,$$target:beta"} {
		if err := caller.WaitFor(ctx, p); err != nil {
			return err
		}
	}
	for _, input := range []map[string]any{
		{"$$target": "alpha"},
		{"$$target": "beta"},
		{"$$version": "1.0.0"},
		nil, // no pin: the newest version among the providers wins
	} {
		res, err := services.Call[Hello](ctx, caller, "cmd:hello", input)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "cmd:hello %v -> %s\n", pins(input), res.From)
	}
	return nil
}

func pins(m map[string]any) string {
	switch {
	case m["$$target"] != nil:
		return fmt.Sprintf("$$target:%v", m["$$target"])
	case m["$$version"] != nil:
		return fmt.Sprintf("$$version:%v", m["$$version"])
	}
	return "(no pin)"
}

func main() {
	amqpURL := flag.String("amqp", os.Getenv("PATBUS_AMQP_URL"), "RabbitMQ address; empty means the in-memory broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := open(ctx, *amqpURL); err != nil {
		fmt.Fprintln(os.Stderr, "targets:", err)
		os.Exit(1)
	}
}

// open connects to the broker (bus.Open: the in-memory broker for "") and
// runs the example on it.
func open(ctx context.Context, addr string) error {
	b, err := bus.Open(ctx, addr)
	if err != nil {
		return err
	}
	defer b.Close()
	return run(ctx, b, os.Stdout)
}
