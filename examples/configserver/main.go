// Command configserver is a config server on patbus: a
// "config-server" service answers every act pinned to it with
// $$target:config-server with its configuration, and a caller uses default$
// for a pattern nobody serves.
//
//	go run ./examples/configserver          # in-memory broker
//	go run ./examples/configserver -amqp amqp://guest:guest@127.0.0.1:5672/
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

// Config is what the config server hands out.
type Config struct {
	Database string `json:"database"`
	Port     int    `json:"port"`
}

func run(ctx context.Context, b bus.Broker, out io.Writer) error {
	server, err := services.New("config-server", "1.0.0", services.WithBroker(b))
	if err != nil {
		return err
	}
	defer server.Close()
	config := Config{Database: "mongodb://127.0.0.1:27017/app", Port: 8080}
	// The pattern names only the target: every act pinned to the config
	// server lands here, whatever else it says.
	err = server.Add("$$target:config-server", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
		return config, nil
	}))
	if err != nil {
		return err
	}
	if err := server.Ready(ctx); err != nil {
		return err
	}

	app, err := services.New("app", "1.0.0", services.WithBroker(b))
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.WaitFor(ctx, "$$target:config-server"); err != nil {
		return err
	}
	got, err := services.Call[Config](ctx, app, "$$target:config-server", map[string]any{"cmd": "get"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "config: database %s, port %d\n", got.Database, got.Port)

	// Nobody serves role:feature,cmd:flags: default$ answers instead of an error.
	flags, err := app.Act(ctx, "role:feature,cmd:flags", map[string]any{"default$": map[string]any{"beta": false}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "feature flags (default$): %s\n", flags.Body)
	_, err = app.Act(ctx, "role:feature,cmd:flags", nil)
	fmt.Fprintf(out, "without default$: %v\n", err)
	return nil
}

func main() {
	amqpURL := flag.String("amqp", os.Getenv("PATBUS_AMQP_URL"), "RabbitMQ address; empty means the in-memory broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := open(ctx, *amqpURL); err != nil {
		fmt.Fprintln(os.Stderr, "configserver:", err)
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
