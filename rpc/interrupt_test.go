package rpc

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// A call in flight when its reply queue's connection is lost fails at once
// with ErrInterrupted, instead of waiting for its deadline; the client goes
// on once the connection is back.
func TestCallFailsAtOnceWhenItsRepliesAreInterrupted(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "reply-queue", true: "direct-reply-to"}[direct], func(t *testing.T) {
			url0 := testenv.AMQPURL(t)
			u, err := url.Parse(url0)
			if err != nil {
				t.Fatal(err)
			}
			proxy := testenv.StartProxy(t, u.Host)
			u.Host = proxy.Addr()
			sb := testenv.Rabbit(t)
			queue, key := service(t, sb)
			started, release := make(chan struct{}, 1), make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			startServer(t, sb, queue, func(_ context.Context, req *ServerRequest) ([]byte, error) {
				if first.CompareAndSwap(true, false) {
					started <- struct{}{}
					<-release // answers after its caller lost the connection
				}
				return req.Body, nil
			})
			defer close(release)
			cb := testenv.RabbitAt(t, u.String(), bus.WithReconnectBackoff(20*time.Millisecond, 100*time.Millisecond))
			var opts []Option
			if direct {
				opts = append(opts, WithDirectReplyTo())
			}
			c := newClient(t, cb, opts...)
			done := make(chan error, 1)
			go func() {
				_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", Body: []byte(`{}`)})
				done <- err
			}()
			recv(t, started, "the request")
			cut := time.Now()
			proxy.Cut()
			select {
			case err := <-done:
				if !errors.Is(err, ErrInterrupted) || patbus.Code(err) != patbus.CodeInterrupted {
					t.Fatalf("the call in flight: %v, want ErrInterrupted", err)
				}
				t.Logf("failed %v after the cut", time.Since(cut).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("the call in flight waited on after its replies were lost")
			}
			proxy.Restore()
			// The client goes on.
			deadline := time.Now().Add(testWait)
			for {
				_, err := c.Call(testCtx(t), Request{Exchange: actExchange, Key: key, Pattern: "cmd:test", Body: []byte(`{}`)})
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no call succeeded after the connection came back: %v", err)
				}
			}
		})
	}
}
