package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

func TestRoundTrip(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		type seen struct {
			req         *ServerRequest
			tx          string
			deadline    time.Time
			hasDeadline bool
		}
		got := make(chan seen, 1)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			dl, ok := ctx.Deadline()
			got <- seen{req: req, tx: wire.Tx(ctx), deadline: dl, hasDeadline: ok}
			return []byte(`{"ok":true,"echo":` + string(req.Body) + `}`), nil
		}, WithService("user", "1.2.3"))
		c := newClient(t, e.b)

		ctx, cancel := context.WithTimeout(wire.WithTx(context.Background(), "0123456789abcdef0123456789abcdef"), testWait)
		defer cancel()
		want, _ := ctx.Deadline()
		rep, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", Target: "user@1.2.3",
			Body: []byte(`{"n":1}`), Headers: map[string]any{"x-extra": "yes"}})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if string(rep.Body) != `{"ok":true,"echo":{"n":1}}` {
			t.Errorf("body = %s", rep.Body)
		}
		if rep.Service != "user" || rep.Version != "1.2.3" {
			t.Errorf("service = %q %q", rep.Service, rep.Version)
		}
		if len(rep.Headers) != 0 {
			t.Errorf("a successful reply carries headers %v, want none", rep.Headers)
		}
		s := recv(t, got, "handler")
		if s.req.Pattern != "cmd:test" || s.req.RoutingKey != key {
			t.Errorf("pattern %q key %q", s.req.Pattern, s.req.RoutingKey)
		}
		if s.tx != "0123456789abcdef0123456789abcdef" || s.req.Tx != s.tx {
			t.Errorf("tx = %q / %q", s.tx, s.req.Tx)
		}
		if !s.hasDeadline || s.deadline.Sub(want).Abs() > time.Millisecond {
			t.Errorf("handler deadline %v (set %v), want %v", s.deadline, s.hasDeadline, want)
		}
		if !s.req.Deadline.Equal(s.deadline) {
			t.Errorf("request deadline %v != ctx deadline %v", s.req.Deadline, s.deadline)
		}
		if wire.String(s.req.Headers, "x-extra") != "yes" {
			t.Errorf("extra header lost: %v", s.req.Headers)
		}
		if tp := wire.String(s.req.Headers, wire.HeaderTraceparent); !strings.Contains(tp, s.tx) {
			t.Errorf("traceparent %q does not carry the tx", tp)
		}
		if _, ok := s.req.Headers[wire.HeaderTx]; ok {
			t.Errorf("a tx id that is a trace id travels in %s too: %v", wire.HeaderTx, s.req.Headers)
		}
		if _, ok := s.req.Headers[wire.HeaderPattern]; ok {
			t.Errorf("a short pattern travels in %s too: %v", wire.HeaderPattern, s.req.Headers)
		}
		if c.pendingCount() != 0 {
			t.Errorf("pending = %d", c.pendingCount())
		}
	})
}

func TestConcurrentCallsDemuxed(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) { checkDemuxed(t, e) })
}

// checkDemuxed makes 200 concurrent calls through one client made with
// opts and checks each gets its own answer and nothing stays pending.
func checkDemuxed(t *testing.T, e *env, opts ...Option) {
	t.Helper()
	queue, key := service(t, e.b)
	startServer(t, e.b, queue, echo, WithPrefetch(8))
	c := newClient(t, e.b, opts...)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"i":%d}`, i)
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", Body: []byte(body)})
			if err != nil {
				errs <- err
				return
			}
			if string(rep.Body) != body {
				errs <- fmt.Errorf("call %d got %s", i, rep.Body)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.pendingCount() != 0 {
		t.Errorf("pending = %d", c.pendingCount())
	}
}

func TestNoRouteFailsFast(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		if err := declareActExchange(ctx, e.b); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, e.b)
		// The deadline is far away: only a no-route error can end the call
		// before the test's own bound.
		_, err := c.Call(ctx, Request{Exchange: actExchange, Key: "cmd:nobody." + wire.NewID(), Pattern: "cmd:nobody", Target: "ghost@1.0.0", Body: []byte(`{}`)})
		if !errors.Is(err, ErrNoRoute) {
			t.Fatalf("err = %v, want ErrNoRoute", err)
		}
		if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no-route error is a timeout: %v", err)
		}
		var ce *CallError
		if !errors.As(err, &ce) || ce.Pattern != "cmd:nobody" || ce.Target != "ghost@1.0.0" {
			t.Fatalf("err = %#v", err)
		}
		if !errors.Is(err, bus.ErrUnroutable) {
			t.Errorf("err does not wrap bus.ErrUnroutable: %v", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "no service for pattern cmd:nobody (target ghost@1.0.0) after ") {
			t.Errorf("message = %q", msg)
		}
	})
}

func TestDeadlineEndToEnd(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		type seen struct {
			deadline time.Time
			err      error
		}
		got := make(chan seen, 1)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			dl, _ := ctx.Deadline()
			select {
			case <-ctx.Done():
			case <-time.After(testWait):
			}
			got <- seen{deadline: dl, err: ctx.Err()}
			return nil, ctx.Err()
		})
		c := newClient(t, e.b, WithTimeout(300*time.Millisecond))
		start := time.Now()
		_, err := c.Call(context.Background(), Request{Exchange: actExchange, Key: key, Pattern: "cmd:slow", Target: "slow@2.0.0", Body: []byte(`{}`)})
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		var ce *CallError
		if !errors.As(err, &ce) {
			t.Fatalf("err is %T, want *CallError", err)
		}
		if ce.Pattern != "cmd:slow" || ce.Target != "slow@2.0.0" || ce.Waited <= 0 {
			t.Errorf("call error = %+v", ce)
		}
		if msg := err.Error(); !strings.Contains(msg, "cmd:slow") || !strings.Contains(msg, "slow@2.0.0") || !strings.Contains(msg, "after ") {
			t.Errorf("message = %q", msg)
		}
		s := recv(t, got, "handler")
		if !errors.Is(s.err, context.DeadlineExceeded) {
			t.Errorf("handler ctx ended with %v", s.err)
		}
		// The handler's deadline is the caller's (start + 300ms, to the ms).
		if d := s.deadline.Sub(start.Add(300 * time.Millisecond)); d < -2*time.Millisecond || d > 2*time.Millisecond {
			t.Errorf("handler deadline off by %v", d)
		}
	})
}

func TestRemoteError(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			switch string(req.Body) {
			case `"typed"`:
				return nil, NewError("not_found", "user 7 not found").WithDetails(map[string]any{"uid": 7})
			case `"wrapped"`:
				return nil, fmt.Errorf("lookup: %w", NewError("invalid", "bad uid"))
			default:
				return nil, errors.New("disk on fire")
			}
		}, WithService("user", "1.0.0"))
		c := newClient(t, e.b)
		ctx := wire.WithTx(testCtx(t), "feedfacefeedfacefeedfacefeedface")

		_, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:get", Body: []byte(`"typed"`)})
		var re *Error
		if !errors.As(err, &re) {
			t.Fatalf("err = %v (%T), want *Error", err, err)
		}
		if re.Code != "not_found" || re.Message != "user 7 not found" || re.Details["uid"] != float64(7) {
			t.Errorf("error = %+v", re)
		}
		if re.Service != "user" || re.Version != "1.0.0" || re.Pattern != "cmd:get" || re.Tx != "feedfacefeedfacefeedfacefeedface" {
			t.Errorf("error metadata = %+v", re)
		}
		if !errors.Is(err, NewError("not_found", "")) || errors.Is(err, NewError("other", "")) {
			t.Errorf("errors.Is by code is wrong")
		}
		if !strings.Contains(err.Error(), `"not_found" from user@1.0.0 for pattern cmd:get: user 7 not found`) {
			t.Errorf("message = %q", err.Error())
		}

		_, err = c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:get", Body: []byte(`"wrapped"`)})
		if !errors.As(err, &re) || re.Code != "invalid" || re.Message != "bad uid" {
			t.Errorf("wrapped: %v", err)
		}
		_, err = c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:get", Body: []byte(`"plain"`)})
		if !errors.As(err, &re) || re.Code != CodeInternal || re.Message != "disk on fire" {
			t.Errorf("plain: %v", err)
		}
	})
}

func TestPanicBecomesError(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		logs := newLogCapture()
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			if string(req.Body) == `"boom"` {
				panic("kaboom")
			}
			return req.Body, nil
		}, WithPrefetch(1), WithLogger(logs.logger()))
		c := newClient(t, e.b)
		for i := 0; i < 3; i++ {
			_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:boom", Body: []byte(`"boom"`)})
			var re *Error
			if !errors.As(err, &re) || re.Code != CodePanic || !strings.Contains(re.Message, "kaboom") {
				t.Fatalf("err = %v", err)
			}
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:ok", Body: []byte(`"fine"`)})
			if err != nil || string(rep.Body) != `"fine"` {
				t.Fatalf("after panic: %v %v", rep, err)
			}
		}
		recv(t, logs.seen("handler panicked"), "panic log")
	})
}

func TestLateReplyDropped(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		release := make(chan struct{})
		entered := make(chan struct{}, 1)
		replied := make(chan struct{}, 1)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			if string(req.Body) == `"late"` {
				entered <- struct{}{}
				<-release
				defer func() { replied <- struct{}{} }()
			}
			return req.Body, nil
		}, WithPrefetch(2))
		logs := newLogCapture()
		c := newClient(t, e.b, WithLogger(logs.logger()))
		dropped := logs.seen("dropped reply")

		ctx, cancel := context.WithCancel(testCtx(t))
		errc := make(chan error, 1)
		go func() {
			_, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:late", Body: []byte(`"late"`)})
			errc <- err
		}()
		recv(t, entered, "handler")
		cancel() // the caller gives up
		err := recv(t, errc, "call")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		close(release) // now the handler replies; nobody waits
		recv(t, replied, "late reply")
		// Later calls read the late reply and drop it.
		until := time.Now().Add(testWait)
		for {
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:next", Body: []byte(`"next"`)})
			if err != nil || string(rep.Body) != `"next"` {
				t.Fatalf("next call: %v %v", rep, err)
			}
			select {
			case <-dropped:
			default:
				if time.Now().Before(until) {
					continue
				}
				t.Fatal("late reply never dropped")
			}
			break
		}
		if n := c.pendingCount(); n != 0 {
			t.Errorf("pending = %d", n)
		}
	})
}

func TestPrefetchBoundsConcurrency(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		const prefetch, calls = 3, 12
		var active, maxActive atomic.Int32
		entered := make(chan struct{}, calls)
		release := make(chan struct{})
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			entered <- struct{}{}
			<-release
			active.Add(-1)
			return req.Body, nil
		}, WithPrefetch(prefetch))
		c := newClient(t, e.b)
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		for i := 0; i < calls; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:slow", Body: []byte(`{}`)})
				errs <- err
			}()
		}
		for i := 0; i < prefetch; i++ {
			recv(t, entered, "handlers to start")
		}
		if n := active.Load(); n != prefetch {
			t.Errorf("active = %d, want %d", n, prefetch)
		}
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if m := maxActive.Load(); m != prefetch {
			t.Errorf("max concurrent handlers = %d, want %d", m, prefetch)
		}
	})
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		s := startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			entered <- struct{}{}
			<-release
			return []byte(`"done"`), nil
		})
		c := newClient(t, e.b)
		type result struct {
			rep *Reply
			err error
		}
		callDone := make(chan result, 1)
		go func() {
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:work", Body: []byte(`{}`)})
			callDone <- result{rep, err}
		}()
		recv(t, entered, "handler")
		shutDone := make(chan error, 1)
		go func() { shutDone <- s.Shutdown(testCtx(t)) }()
		select {
		case err := <-shutDone:
			t.Fatalf("shutdown returned %v while a handler runs", err)
		default:
		}
		close(release)
		if err := recv(t, shutDone, "shutdown"); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		r := recv(t, callDone, "call")
		if r.err != nil || string(r.rep.Body) != `"done"` {
			t.Fatalf("call: %v %v", r.rep, r.err)
		}
		if err := s.Start(testCtx(t)); !errors.Is(err, ErrClosed) {
			t.Errorf("start after shutdown: %v", err)
		}
	})
}

func TestShutdownTimesOut(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		entered := make(chan struct{}, 1)
		s := startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		c := newClient(t, e.b)
		callDone := make(chan error, 1)
		go func() {
			_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:work", Body: []byte(`{}`)})
			callDone <- err
		}()
		recv(t, entered, "handler")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("shutdown = %v, want deadline exceeded", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		_ = c.Close()
		if err := recv(t, callDone, "call"); !errors.Is(err, ErrClosed) {
			t.Fatalf("call = %v, want ErrClosed", err)
		}
	})
}

// TestRedeliveredToAnotherInstance: the instance serving a request loses
// its broker connection (RabbitMQ) or is closed (in-memory broker) before
// it replies; the request goes to another instance and the caller gets
// that instance's answer.
func TestRedeliveredToAnotherInstance(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		b1, b2 := e.b, e.b
		if e.dial != nil {
			b1, b2 = e.dial(t), e.dial(t)
		}
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		defer close(release)
		s1 := startServer(t, b1, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return []byte(`"first"`), nil
		}, WithService("acct", "1"))
		c := newClient(t, e.b)
		type result struct {
			rep *Reply
			err error
		}
		callDone := make(chan result, 1)
		go func() {
			rep, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:get", Body: []byte(`{}`)})
			callDone <- result{rep, err}
		}()
		recv(t, entered, "first instance")
		redelivered := make(chan bool, 1)
		startServer(t, b2, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			redelivered <- req.Redelivered
			return []byte(`"second"`), nil
		}, WithService("acct", "2"))
		if e.dial != nil {
			if err := b1.Close(); err != nil {
				t.Fatalf("close first instance's broker: %v", err)
			}
		} else if err := s1.Close(); err != nil {
			t.Fatalf("close first instance: %v", err)
		}
		r := recv(t, callDone, "call")
		if r.err != nil {
			t.Fatalf("call: %v", r.err)
		}
		if string(r.rep.Body) != `"second"` || r.rep.Version != "2" {
			t.Fatalf("reply %s from version %q, want the second instance's", r.rep.Body, r.rep.Version)
		}
		if !recv(t, redelivered, "second instance") {
			t.Errorf("request not marked redelivered")
		}
	})
}

func TestExpiredRequestNotRun(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		var runs atomic.Int32
		logs := newLogCapture()
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			runs.Add(1)
			return req.Body, nil
		}, WithLogger(logs.logger()))
		late := logs.seen("after its deadline")
		// A producer without expiration whose deadline has passed.
		err := bus.PublishAndWait(testCtx(t), e.b, actExchange, key, bus.Message{
			Headers:     map[string]any{wire.HeaderDeadline: time.Now().Add(-time.Second).UnixMilli()},
			ContentType: wire.ContentTypeJSON, ReplyTo: "nowhere", CorrelationID: "x", Body: []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		recv(t, late, "late request log")
		// The server still serves, and the late one never ran.
		c := newClient(t, e.b)
		if _, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("handler ran %d times, want 1", n)
		}
	})
}

func TestClientClose(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		entered := make(chan struct{}, 1)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		c := newClient(t, e.b)
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
		if err := c.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}

func TestTooLarge(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			return []byte(`"` + strings.Repeat("x", 64) + `"`), nil
		}, WithMaxMessageSize(32))
		c := newClient(t, e.b, WithMaxMessageSize(16))
		_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:big", Body: []byte(`"` + strings.Repeat("y", 20) + `"`)})
		var ce *CallError
		if !errors.Is(err, bus.ErrTooLarge) || !errors.As(err, &ce) {
			t.Fatalf("err = %v", err)
		}
		_, err = c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:big", Body: []byte(`{}`)})
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeTooLarge {
			t.Fatalf("big reply: %v", err)
		}
	})
}

func TestDefaultExchange(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		queue := "patbus.test.rpc.direct." + wire.NewID()[:12]
		if _, err := e.b.DeclareQueue(ctx, bus.Queue{Name: queue, AutoDelete: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.b.DeleteQueue(context.Background(), queue) })
		startServer(t, e.b, queue, echo)
		c := newClient(t, e.b)
		rep, err := c.Call(ctx, Request{Key: queue, Body: []byte(`{"a":1}`)})
		if err != nil || string(rep.Body) != `{"a":1}` {
			t.Fatalf("%v %v", rep, err)
		}
	})
}

func TestBadReply(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		// A hand-written server that answers with a malformed error reply.
		sub, err := e.b.Consume(testCtx(t), queue, bus.ConsumeOptions{Prefetch: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Cancel(context.Background()) }()
		served := make(chan error, 1)
		go func() {
			d, ok := <-sub.Deliveries()
			if !ok {
				served <- errors.New("no delivery")
				return
			}
			_, err := e.b.Publish(context.Background(), "", d.ReplyTo, bus.Message{
				CorrelationID: d.CorrelationID,
				Headers:       map[string]any{wire.HeaderStatus: wire.StatusError},
				Body:          []byte(`not json`),
			})
			_ = d.Ack()
			served <- err
		}()
		c := newClient(t, e.b)
		_, err = c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:bad", Body: []byte(`{}`)})
		if !errors.Is(err, ErrBadReply) {
			t.Fatalf("err = %v", err)
		}
		if err := recv(t, served, "hand-written server"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestInvalidConfig(t *testing.T) {
	m, err := bus.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cases := []struct {
		name string
		err  func() error
	}{
		{"nil broker client", func() error { _, err := NewClient(context.Background(), nil); return err }},
		{"zero timeout", func() error { _, err := NewClient(context.Background(), m, WithTimeout(0)); return err }},
		{"nil broker server", func() error { _, err := NewServer(nil, "q", HandlerFunc(echo)); return err }},
		{"empty queue", func() error { _, err := NewServer(m, "", HandlerFunc(echo)); return err }},
		{"nil handler", func() error { _, err := NewServer(m, "q", nil); return err }},
		{"zero prefetch", func() error { _, err := NewServer(m, "q", HandlerFunc(echo), WithPrefetch(0)); return err }},
		{"negative size", func() error { _, err := NewServer(m, "q", HandlerFunc(echo), WithMaxMessageSize(-1)); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.err(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestErrorWireForm(t *testing.T) {
	e := NewError("not_found", "no such user").WithDetails(map[string]any{"uid": 2})
	e.Service, e.Version, e.Tx, e.Pattern = "user", "1.0.0", "abc", "cmd:get"
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"not_found","message":"no such user","details":{"uid":2},"service":"user","version":"1.0.0","tx":"abc","pattern":"cmd:get"}`
	if string(b) != want {
		t.Errorf("json = %s", b)
	}
	if !errors.Is(&Error{Code: CodeTimeout}, ErrTimeout) || !errors.Is(&Error{Code: CodeTimeout}, context.DeadlineExceeded) {
		t.Error("timeout code does not match ErrTimeout")
	}
	if !errors.Is(&Error{Code: CodeCanceled}, context.Canceled) || errors.Is(&Error{Code: "x"}, ErrTimeout) {
		t.Error("code mapping wrong")
	}
	if got := patbus.AsError(fmt.Errorf("wrap: %w", context.DeadlineExceeded)); got.Code != CodeTimeout {
		t.Errorf("deadline error code = %q", got.Code)
	}
}

func TestParseDeadline(t *testing.T) {
	ms := int64(1700000000123)
	for _, v := range []any{ms, int32(1700000), int(ms), float64(ms), "1700000000123", uint64(ms)} {
		if _, ok := wire.ParseDeadline(v); !ok {
			t.Errorf("%T %v not accepted", v, v)
		}
	}
	for _, v := range []any{nil, "soon", int64(0), -5, float64(-1), true} {
		if _, ok := wire.ParseDeadline(v); ok {
			t.Errorf("%T %v accepted", v, v)
		}
	}
	if got, _ := wire.ParseDeadline(ms); got.UnixMilli() != ms {
		t.Errorf("round trip %v", got)
	}
}

// A call whose context carries no tx starts a chain named by its id: the
// request carries no tx header at all, and the server hands the handler
// the correlation id as the tx. A request id already in flight is refused.
func TestRootCallCarriesNoTxHeader(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		got := make(chan *ServerRequest, 2)
		release := make(chan struct{})
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			if wire.Tx(ctx) != req.Tx {
				t.Errorf("ctx tx %q, request tx %q", wire.Tx(ctx), req.Tx)
			}
			got <- req
			if string(req.Body) == `{"hold":true}` {
				<-release
			}
			return []byte(`{}`), nil
		}, WithService("user", "1.2.3"))
		c := newClient(t, e.b)

		if _, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		req := recv(t, got, "handler")
		if req.Tx == "" || req.Tx != req.CorrelationID {
			t.Errorf("root call: tx %q, correlation id %q; want the tx to be the id", req.Tx, req.CorrelationID)
		}
		for _, h := range []string{wire.HeaderTraceparent, wire.HeaderTx} {
			if _, ok := req.Headers[h]; ok {
				t.Errorf("a root call carries %s: %v", h, req.Headers)
			}
		}

		id := wire.NewID()
		done := make(chan error, 1)
		go func() {
			_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", ID: id, Body: []byte(`{"hold":true}`)})
			done <- err
		}()
		if req := recv(t, got, "handler"); req.Tx != id {
			t.Errorf("call with ID %s: tx %q", id, req.Tx)
		}
		_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", ID: id, Body: []byte(`{}`)})
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("second call with an id in flight: %v, want ErrInvalidConfig", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Errorf("the held call: %v", err)
		}
	})
}

// The compact request form (pattern as the message type, tx inside
// traceparent) falls back to headers where it cannot carry the value, and a
// server still reads requests that name everything in headers, as clients
// before it did.
func TestWireFallbacks(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		got := make(chan *ServerRequest, 3)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			if wire.Tx(ctx) != req.Tx {
				t.Errorf("ctx tx %q, request tx %q", wire.Tx(ctx), req.Tx)
			}
			got <- req
			return []byte(`{}`), nil
		}, WithService("user", "1.2.3"))
		c := newClient(t, e.b)

		long := "cmd:x,name:" + strings.Repeat("n", 300)
		ctx, cancel := context.WithTimeout(wire.WithTx(context.Background(), "order-42"), testWait)
		defer cancel()
		if _, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: long, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		req := recv(t, got, "handler")
		if req.Pattern != long || req.Tx != "order-42" {
			t.Errorf("pattern %.20q… tx %q, want the long pattern and order-42", req.Pattern, req.Tx)
		}
		if wire.String(req.Headers, wire.HeaderTx) != "order-42" {
			t.Errorf("a tx id that is no trace id must travel in %s: %v", wire.HeaderTx, req.Headers)
		}

		// An older client: everything in headers, no type.
		tx := wire.NewID()
		ctx2, cancel2 := context.WithTimeout(context.Background(), testWait)
		defer cancel2()
		if _, err := e.b.DeclareQueue(ctx2, bus.Queue{Name: "patbus.test.rpc.old." + tx[:8], AutoDelete: true}); err != nil {
			t.Fatal(err)
		}
		replyQ := "patbus.test.rpc.old." + tx[:8]
		sub, err := e.b.Consume(ctx2, replyQ, bus.ConsumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel(context.Background())
		if err := bus.PublishAndWait(ctx2, e.b, actExchange, key, bus.Message{
			CorrelationID: "c1", ReplyTo: replyQ, ContentType: wire.ContentTypeJSON, Body: []byte(`{}`),
			Headers: map[string]any{wire.HeaderPattern: "cmd:old", wire.HeaderTx: tx,
				wire.HeaderDeadline: wire.DeadlineValue(time.Now().Add(testWait))},
		}); err != nil {
			t.Fatal(err)
		}
		req = recv(t, got, "handler")
		if req.Pattern != "cmd:old" || req.Tx != tx || req.Deadline.IsZero() {
			t.Errorf("older request: pattern %q tx %q deadline %v", req.Pattern, req.Tx, req.Deadline)
		}
		select {
		case d := <-sub.Deliveries():
			_ = d.Ack()
			if d.CorrelationID != "c1" || d.AppID != "user@1.2.3" {
				t.Errorf("reply: correlation id %q app id %q", d.CorrelationID, d.AppID)
			}
		case <-ctx2.Done():
			t.Fatal("no reply")
		}
	})
}

// With WithConfirmedReplies, a reply the broker surely did not take (here:
// nacked by a full reply queue) gives the request back while its caller
// still waits, so that an instance can answer it; once the deadline has
// passed it is dropped.
func TestFailedReplyGivesRequestBack(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		ctx := testCtx(t)
		full := "patbus.test.rpc.full." + wire.NewID()[:12]
		if _, err := e.b.DeclareQueue(ctx, bus.Queue{Name: full, MaxLength: 1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.b.DeleteQueue(context.Background(), full) })
		if err := bus.PublishAndWait(ctx, e.b, "", full, bus.Message{Body: []byte("filler")}); err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int32
		again := make(chan struct{})
		logs := newLogCapture()
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			if runs.Add(1) == 2 {
				close(again)
			}
			return []byte(`{}`), nil
		}, WithLogger(logs.logger()), WithConfirmedReplies())
		given := logs.seen("reply failed, request given back")
		// Past the deadline the request ends: dropped on arrival, or
		// acked when the deadline passes while it is answered.
		dropped := logs.seen("after its deadline")
		acked := logs.seen("before the caller's deadline")
		err := bus.PublishAndWait(ctx, e.b, actExchange, key, bus.Message{
			Headers:     map[string]any{wire.HeaderDeadline: time.Now().Add(time.Second).UnixMilli()},
			ContentType: wire.ContentTypeJSON, ReplyTo: full, CorrelationID: "x", Body: []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		recv(t, given, "given-back log")
		recv(t, again, "second run of the handler")
		select {
		case <-dropped:
		case <-acked:
		case <-time.After(testWait):
			t.Fatal("the request still comes round after its deadline")
		}
	})
}

// Headers a handler forwards from the request it serves do not name that
// request's pattern or tx for the new one, and a service name with "@"
// comes back whole.
func TestForwardedHeadersAndOddNames(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, key := service(t, e.b)
		got := make(chan *ServerRequest, 1)
		startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			got <- req
			return []byte(`{}`), nil
		}, WithService("team@acme", "2.0.0"))
		c := newClient(t, e.b)
		tx := wire.NewID()
		ctx, cancel := context.WithTimeout(wire.WithTx(context.Background(), tx), testWait)
		defer cancel()
		rep, err := c.Call(ctx, Request{Exchange: actExchange, Key: key, Pattern: "cmd:new", Body: []byte(`{}`),
			Headers: map[string]any{wire.HeaderPattern: "cmd:old", wire.HeaderTx: "upstream", "x-keep": "yes"}})
		if err != nil {
			t.Fatal(err)
		}
		req := recv(t, got, "handler")
		if req.Pattern != "cmd:new" || req.Tx != tx || wire.String(req.Headers, "x-keep") != "yes" {
			t.Errorf("pattern %q tx %q headers %v, want cmd:new, %s and x-keep", req.Pattern, req.Tx, req.Headers, tx)
		}
		if rep.Service != "team@acme" || rep.Version != "2.0.0" {
			t.Errorf("reply from %q %q, want team@acme 2.0.0", rep.Service, rep.Version)
		}
	})
}

// Done closes when the consumer ends by itself, and Err says why; after
// Close, Err is nil.
func TestServerDoneWhenQueueDeleted(t *testing.T) {
	eachBroker(t, func(t *testing.T, e *env) {
		queue, _ := service(t, e.b)
		s := startServer(t, e.b, queue, func(ctx context.Context, req *ServerRequest) ([]byte, error) {
			return []byte(`{}`), nil
		})
		select {
		case <-s.Done():
			t.Fatal("Done closed while serving")
		default:
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err while serving: %v", err)
		}
		if err := e.b.DeleteQueue(testCtx(t), queue); err != nil {
			t.Fatal(err)
		}
		recv(t, s.Done(), "Done")
		if err := s.Err(); !errors.Is(err, bus.ErrNotFound) {
			t.Errorf("Err after the queue went: %v, want bus.ErrNotFound", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Err(); err != nil {
			t.Errorf("Err after Close: %v", err)
		}
	})
}
