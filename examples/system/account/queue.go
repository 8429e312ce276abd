package account

// This file is the one place in the reference system that uses package
// rpc: the plain RPC queue of RabbitMQ's tutorial.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/rpc"
)

// Server returns an RPC server that answers on queue (usually Queue)
// through package rpc, after declaring the queue (not durable: the
// requests of an RPC are not worth keeping past a broker restart). The
// caller starts it (Start), and stops it with Shutdown or Close.
func (s *Service) Server(ctx context.Context, b bus.Broker, queue string, opts ...rpc.Option) (*rpc.Server, error) {
	if _, err := b.DeclareQueue(ctx, bus.Queue{Name: queue}); err != nil {
		return nil, fmt.Errorf("account: declare the queue %s: %w", queue, err)
	}
	h := rpc.HandlerFunc(func(ctx context.Context, req *rpc.ServerRequest) ([]byte, error) {
		return s.Answer(ctx, req.Body)
	})
	return rpc.NewServer(b, queue, h, append([]rpc.Option{rpc.WithService("account", "1.0.0")}, opts...)...)
}

// Call asks the account service on queue for req, as a client of
// RabbitMQ's RPC tutorial would, on a reply queue of its own that it
// removes before returning. A reply that is not a Response fails with an
// error wrapping patbus.ErrBadReply.
func Call(ctx context.Context, b bus.Broker, queue string, req Request) (Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	c, err := rpc.NewClient(ctx, b)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	rep, err := c.Call(ctx, rpc.Request{Key: queue, Body: body})
	if err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.Unmarshal(rep.Body, &resp); err != nil {
		return Response{}, fmt.Errorf("account: %w: %w", patbus.ErrBadReply, err)
	}
	return resp, nil
}
