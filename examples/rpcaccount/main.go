// Command rpcaccount is RabbitMQ's sixth tutorial, RPC, written with
// patbus: an account server answers on the queue "account.rpc" and a caller
// asks it for user 2, then for a user that does not exist.
//
// It runs on the in-memory broker by default, and on RabbitMQ when
// PATBUS_AMQP_URL is set or -amqp is given:
//
//	go run ./examples/rpcaccount
//	go run ./examples/rpcaccount -amqp amqp://guest:guest@127.0.0.1:5672/
//
// A client in any language can ask the same server: publish
// {"uid":2} to the default exchange with routing key "account.rpc", a
// reply-to queue and a correlation id (see WIRE.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/rpc"
)

// Queue is the account server's request queue, consumed through the
// default exchange as in RabbitMQ's RPC tutorial.
const Queue = "account.rpc"

// Reply states of the account service.
const (
	StateOK       = 1000
	StateNotFound = 2000
)

// Account is one user record.
type Account struct {
	UID   int    `json:"uid"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Response is the account server's answer.
type Response struct {
	State int      `json:"state"`
	Msg   string   `json:"msg"`
	Data  *Account `json:"data"`
}

// store is the account server's data, read-only once built.
type store map[int]Account

func newStore() store {
	return store{
		1: {UID: 1, Name: "asd", Email: "asd@example.com"},
		2: {UID: 2, Name: "Ada Lovelace", Email: "ada@example.com"},
		3: {UID: 3, Name: "Alan Turing", Email: "alan@example.com"},
	}
}

// Answer answers {"uid":N} with the reply body.
func (accounts store) Answer(_ context.Context, req *rpc.ServerRequest) ([]byte, error) {
	var in struct {
		UID int `json:"uid"`
	}
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return json.Marshal(Response{State: StateNotFound, Msg: "bad request: " + err.Error()})
	}
	acct, ok := accounts[in.UID]
	if !ok {
		return json.Marshal(Response{State: StateNotFound, Msg: "user not found"})
	}
	return json.Marshal(Response{State: StateOK, Msg: "ok", Data: &acct})
}

// run starts the account server on b, asks it for user 2 and for user 99,
// prints both replies to out, and stops the server.
func run(ctx context.Context, b bus.Broker, out io.Writer) (err error) {
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: Queue}); err != nil {
		return fmt.Errorf("declare %s: %w", Queue, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, b.DeleteQueue(dctx, Queue))
	}()

	server, err := rpc.NewServer(b, Queue, rpc.HandlerFunc(newStore().Answer), rpc.WithService("account", "1.0.0"), rpc.WithPrefetch(4))
	if err != nil {
		return err
	}
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := server.Shutdown(sctx); serr != nil {
			err = errors.Join(err, serr, server.Close())
		}
	}()
	fmt.Fprintf(out, "account server waiting for requests on %s\n", Queue)

	client, err := rpc.NewClient(ctx, b, rpc.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()

	for _, uid := range []int{2, 99} {
		fmt.Fprintf(out, "requesting user %d\n", uid)
		body, _ := json.Marshal(map[string]int{"uid": uid})
		rep, err := client.Call(ctx, rpc.Request{Key: Queue, Target: "account", Body: body})
		if err != nil {
			return err
		}
		var resp Response
		if err := json.Unmarshal(rep.Body, &resp); err != nil {
			return fmt.Errorf("decode reply: %w", err)
		}
		fmt.Fprintf(out, "got %s\n", rep.Body)
	}
	return nil
}

func main() {
	amqpURL := flag.String("amqp", os.Getenv("PATBUS_AMQP_URL"), "RabbitMQ address; empty means the in-memory broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := open(ctx, *amqpURL); err != nil {
		fmt.Fprintln(os.Stderr, "rpcaccount:", err)
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
