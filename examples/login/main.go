// Command login is a login action on patbus: a "login" service answers
// cmd:login with {code:1000} for the user asd with the password 123 and
// {code:2100} otherwise, and a client acts on it through the broker.
//
//	go run ./examples/login                 # in-memory broker
//	go run ./examples/login -amqp amqp://guest:guest@127.0.0.1:5672/
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

// Credentials is the input of cmd:login.
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Result is the reply of cmd:login.
type Result struct {
	Code int `json:"code"`
}

// Login is the action.
func Login(ctx context.Context, in Credentials) (Result, error) {
	if in.User == "asd" && in.Password == "123" {
		return Result{Code: 1000}, nil
	}
	return Result{Code: 2100}, nil
}

func run(ctx context.Context, b bus.Broker, out io.Writer) error {
	login, err := services.New("login", "1.0.0", services.WithBroker(b))
	if err != nil {
		return err
	}
	defer login.Close()
	if err := services.AddFunc(login, "cmd:login", Login); err != nil {
		return err
	}
	if err := login.Ready(ctx); err != nil {
		return err
	}

	// A program that only acts needs no name of its own; it learns from
	// the catalog on the bus who serves cmd:login.
	client, err := services.NewClient(services.WithBroker(b))
	if err != nil {
		return err
	}
	defer client.Close()
	for _, c := range []Credentials{{"asd", "123"}, {"asd", "wrong"}, {"bob", "123"}} {
		res, err := services.Call[Result](ctx, client, "cmd:login", c)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "login %s/%s: code %d\n", c.User, c.Password, res.Code)
	}
	return nil
}

func main() {
	amqpURL := flag.String("amqp", os.Getenv("PATBUS_AMQP_URL"), "RabbitMQ address; empty means the in-memory broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := open(ctx, *amqpURL); err != nil {
		fmt.Fprintln(os.Stderr, "login:", err)
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
