package exampleapp

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/patbus/patbus/bus"
)

// Main runs an example command called name. It defines the -amqp flag on
// flag.CommandLine, with $PATBUS_AMQP_URL as its default, and parses the
// command line: flags the caller defined before are parsed too, and a bad
// flag exits with status 2, -h with 0, as the flag package does. It then
// opens the broker with bus.Open (the in-memory broker when the address is
// empty, RabbitMQ otherwise) and calls run with a context that SIGINT or
// SIGTERM cancels, the broker and os.Stdout; the broker is closed when run
// returns. Main returns when run succeeds; when opening the broker or run
// fails, it prints "<name>: <error>" to stderr and exits with status 1.
func Main(name string, run func(ctx context.Context, b bus.Broker, out io.Writer) error) {
	if err := start(flag.CommandLine, os.Args[1:], os.Getenv("PATBUS_AMQP_URL"), os.Stdout, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// start is Main without the process: it defines -amqp (default addr) on fs,
// parses args, opens the broker and calls run with it and out.
func start(fs *flag.FlagSet, args []string, addr string, out io.Writer, run func(ctx context.Context, b bus.Broker, out io.Writer) error) error {
	amqpURL := fs.String("amqp", addr, "RabbitMQ address; empty means the in-memory broker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := bus.Open(ctx, *amqpURL)
	if err != nil {
		return err
	}
	defer b.Close()
	return run(ctx, b, out)
}
