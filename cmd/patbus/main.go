package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx: each command then stops
	// reading, finishes what it holds and says what it did. A second one
	// ends the process at once (signal.NotifyContext lets it through once
	// stop has been called).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	a := newApp(os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	os.Exit(a.run(ctx, os.Args[1:]))
}
