package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/patbus/patbus/examples/system/internal/embedmongo"
)

// runMongoDB is the mongodb subcommand: it starts an embedded FerretDB,
// prints its URI to stdout and serves until ctx is cancelled.
func runMongoDB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mongodb", flag.ContinueOnError)
	addr := fs.String("addr", embedmongo.DefaultAddr, "loopback `host:port` to listen on (port 0: a free port)")
	dir := fs.String("dir", "", "`directory` for the data (default: a temporary directory, removed on exit)")
	verbose := fs.Bool("v", false, "log FerretDB's messages to stderr")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	srv, err := embedmongo.Start(ctx, embedmongo.Config{Addr: *addr, Dir: *dir, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, srv.URI())
	select {
	case <-ctx.Done():
		return srv.Stop()
	case <-srv.Done():
		_ = srv.Stop()
		return fmt.Errorf("the server stopped by itself")
	}
}
