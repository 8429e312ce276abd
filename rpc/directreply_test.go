package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
)

func TestDirectReplyRoundTrip(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			return req.Body, nil
		}, WithService("user", "1.0.0"))
		// A raw look at what the server receives: the broker's rewritten
		// reply-to.
		spyQueue, spyKey := service(t, e.b)
		spy, err := e.b.Consume(testCtx(t), spyQueue, bus.ConsumeOptions{NoAck: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = spy.Cancel(context.Background()) })

		c := newClient(t, e.b, WithDirectReplyTo())
		if c.ReplyQueue() != bus.DirectReplyTo {
			t.Errorf("ReplyQueue = %q", c.ReplyQueue())
		}
		for i := 0; i < 3; i++ {
			body := fmt.Sprintf(`{"i":%d}`, i)
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", Body: []byte(body)})
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if string(rep.Body) != body || rep.Service != "user" {
				t.Errorf("reply %s from %q", rep.Body, rep.Service)
			}
		}
		spied := make(chan string, 1)
		go func() {
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: spyKey, Pattern: "cmd:spy", Body: []byte(`{}`)})
			if err != nil {
				spied <- err.Error()
				return
			}
			spied <- string(rep.Body)
		}()
		d := recv(t, spy.Deliveries(), "spied request")
		if rt := d.ReplyTo; !strings.HasPrefix(rt, bus.DirectReplyTo+".") {
			t.Errorf("request reply-to = %q, want %s.<token>", rt, bus.DirectReplyTo)
		}
		// Answer the spied request as a server does (default exchange,
		// not mandatory): it comes back to the call.
		conf, err := e.b.Publish(testCtx(t), "", d.ReplyTo, bus.Message{CorrelationID: d.CorrelationID, Body: []byte(`"spied"`)})
		if err != nil {
			t.Fatal(err)
		}
		if err := conf.Wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, spied, "spied call"); got != `"spied"` {
			t.Errorf("spied call = %s", got)
		}
	})
}

func TestDirectReplyConcurrentCallsDemuxed(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) { checkDemuxed(t, e, WithDirectReplyTo()) })
}

func TestDirectReplyNoRoute(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		if err := declareActExchange(ctx, e.b); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, e.b, WithDirectReplyTo())
		_, err := c.Call(ctx, Request{Exchange: actExchange, Key: "cmd:nobody." + wire.NewID(), Pattern: "cmd:nobody", Target: "ghost@1.0.0", Body: []byte(`{}`)})
		var ce *CallError
		if !errors.Is(err, ErrNoRoute) || !errors.Is(err, bus.ErrUnroutable) || !errors.As(err, &ce) {
			t.Fatalf("err = %v, want a *CallError wrapping ErrNoRoute", err)
		}
		if errors.Is(err, ErrTimeout) {
			t.Fatalf("no-route error is a timeout: %v", err)
		}
		// The DirectReply survives a return.
		queue, key := service(t, e.b)
		startServer(t, e.b, queue, echo)
		if _, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Body: []byte(`1`)}); err != nil {
			t.Fatalf("call after a return: %v", err)
		}
	})
}

func TestDirectReplyDeadline(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		c := newClient(t, e.b, WithDirectReplyTo(), WithTimeout(300*time.Millisecond))
		_, err := c.Call(context.Background(), Request{Exchange: actExchange, Key: key, Pattern: "cmd:slow", Body: []byte(`{}`)})
		var ce *CallError
		if !errors.As(err, &ce) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a *CallError wrapping ErrTimeout", err)
		}
		// The Client still works.
		queue2, key2 := service(t, e.b)
		startServer(t, e.b, queue2, echo)
		if _, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key2, Body: []byte(`2`)}); err != nil {
			t.Fatalf("call after a timeout: %v", err)
		}
	})
}

func TestDirectReplyClientClose(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		entered := make(chan struct{}, 1)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		c := newClient(t, e.b, WithDirectReplyTo())
		errc := make(chan error, 1)
		go func() {
			_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:x", Body: []byte(`{}`)})
			errc <- err
		}()
		recv(t, entered, "handler")
		if err := c.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := recv(t, errc, "call"); !errors.Is(err, ErrClosed) {
			t.Fatalf("call = %v, want ErrClosed", err)
		}
		if _, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key}); !errors.Is(err, ErrClosed) {
			t.Fatalf("call after close = %v", err)
		}
	})
}

// plainBroker hides the DirectReplier of the broker it wraps.
type plainBroker struct{ bus.Broker }

func TestDirectReplyUnsupported(t *testing.T) {
	m, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = NewClient(context.Background(), plainBroker{m}, WithDirectReplyTo())
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
}

// TestDirectReplyConnectionLoss breaks every connection of a private node
// while a call waits: the call fails at once (its reply can no longer
// come), not at its deadline, and the next call works.
func TestDirectReplyConnectionLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private RabbitMQ node")
	}
	node := testenv.StartRabbitNode(t)
	ctx := testCtx(t)
	b, err := bus.Dial(ctx, []string{node.URL()}, bus.WithConnectionName("patbus-rpc-drloss"),
		bus.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	queue, key := service(t, b)
	var calls atomic.Int32
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	startServer(t, b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return req.Body, nil
	})
	c := newClient(t, b, WithDirectReplyTo())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:lost", Body: []byte(`1`)})
		errc <- err
	}()
	recv(t, entered, "handler")
	start := time.Now()
	node.MustCtl("close_all_connections", "patbus rpc direct reply-to test")
	err = recv(t, errc, "the in-flight call")
	waited := time.Since(start)
	var ce *CallError
	if !errors.As(err, &ce) || !errors.Is(err, bus.ErrDisconnected) {
		t.Fatalf("in-flight call: %v, want a *CallError wrapping bus.ErrDisconnected", err)
	}
	if errors.Is(err, ErrTimeout) {
		t.Fatalf("in-flight call timed out instead of failing at once: %v", err)
	}
	t.Logf("in-flight call failed %v after close_all_connections: %v", waited.Round(time.Millisecond), err)
	// The next call waits for the reconnect and works.
	rep, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:after", Body: []byte(`2`)})
	if err != nil {
		t.Fatalf("call after the reconnect: %v", err)
	}
	if string(rep.Body) != "2" {
		t.Fatalf("reply %s", rep.Body)
	}
	t.Logf("next call answered %v after close_all_connections", time.Since(start).Round(time.Millisecond))
}
