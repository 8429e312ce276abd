package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/patbus/patbus/store"
)

// runPing is the ping subcommand: it asks the MongoDB server at -uri
// whether it is there and fails when no answer comes within -timeout.
func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	uri := fs.String("uri", getenv(envMongoDBURI), "MongoDB connection `string` (default $MONGODB_URI)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *uri == "" {
		fmt.Fprintln(stderr, "ping: -uri is empty and MONGODB_URI is not set")
		return usageError{fmt.Errorf("no uri")}
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "ping: -timeout must be positive")
		return usageError{fmt.Errorf("bad timeout")}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	db, err := store.Open(ctx, *uri, "admin", store.WithDialTimeout(*timeout))
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	fmt.Fprintln(stdout, "ok")
	return nil
}
