package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/patbus/patbus"
)

// Run listens on the address of WithAddr and serves, as Serve does, until
// ctx ends or Shutdown or Close is called.
func (g *Gateway) Run(ctx context.Context) error {
	if g.draining.Load() {
		return fmt.Errorf("gateway: run: %w", patbus.ErrClosed)
	}
	ln, err := net.Listen("tcp", g.cfg.addr)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", g.cfg.addr, err)
	}
	return g.Serve(ctx, ln)
}

// Serve serves HTTP on ln, with the gateway's timeouts, until ctx ends or
// Shutdown or Close is called; it closes ln. When ctx ends it shuts down
// as Shutdown does, within WithShutdownTimeout, and returns what Shutdown
// returns: nil once every request in flight has been answered. When
// Shutdown or Close is called elsewhere, Serve returns nil once they have
// finished, so that a program whose main returns after Serve does not cut
// off the drain. A failure to accept connections is returned as it is.
// Serve may run on several listeners at once; called after Shutdown or
// Close, it returns an error wrapping patbus.ErrClosed at once.
//
// The gateway never closes its Actor: whoever made the service closes
// it, after Serve returns.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	if g.draining.Load() {
		_ = ln.Close()
		return fmt.Errorf("gateway: serve: %w", patbus.ErrClosed)
	}
	errc := make(chan error, 1)
	go func() { errc <- g.srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			<-g.stopped
			return nil
		}
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.shutdownTimeout)
		defer cancel()
		err := g.Shutdown(sctx)
		<-errc
		return err
	}
}

// Shutdown stops the gateway gracefully: /readyz answers 503 from now on,
// the listeners close, idle connections close, and it waits until every
// request in flight has been answered (its act included), closing each
// connection as its request ends. If ctx ends first, it closes every
// connection at once (the acts in flight see their context canceled) and
// returns ctx.Err(). It may be called more than once and concurrently.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.draining.Store(true)
	err := g.srv.Shutdown(ctx)
	if err != nil {
		_ = g.srv.Close()
		err = fmt.Errorf("gateway: shutdown: %w", err)
	}
	g.stopOnce.Do(func() { close(g.stopped) })
	return err
}

// Close stops the gateway at once: the listeners and every connection
// close; the requests in flight get no answer and their acts see their
// context canceled. It may be called more than once, and during Shutdown,
// which it cuts short.
func (g *Gateway) Close() error {
	g.draining.Store(true)
	err := g.srv.Close()
	g.stopOnce.Do(func() { close(g.stopped) })
	if err != nil {
		return fmt.Errorf("gateway: close: %w", err)
	}
	return nil
}
