package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/store"
)

// allExamples are the examples of the whole system's usage.
const allExamples = `  system                      # the whole system on 127.0.0.1:8080, until Ctrl-C
  system --demo               # the walkthrough against a system of its own, then exit
  PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ system -addr 127.0.0.1:9090
  curl -s http://127.0.0.1:8080/user`

// runAll runs the whole system in one process (no subcommand).
func runAll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("system", "system [flags]",
		"Runs the whole reference system in one process: the user, account and config services and the HTTP gateway, on the in-memory broker and an embedded FerretDB unless the environment names RabbitMQ and MongoDB. With --demo it plays a walkthrough against itself over HTTP and exits.\n\nCommands that run one part each: system help.",
		allExamples)
	var s settings
	s.addFlags(fs, true)
	var g gatewayFlags
	g.addFlags(fs)
	demo := fs.Bool("demo", false, "play the walkthrough against the system over HTTP, print each request and response, and exit (0 when every answer was the expected one)")
	cost := fs.Int("bcrypt-cost", bcrypt.DefaultCost, "bcrypt `cost` of new password hashes")
	configFile := fs.String("config-file", "", "JSON `file` of the configuration the config service hands out (default: the system's)")
	samples := samplesFlag(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	s.fromEnv(fs)
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var cleanup func(context.Context) error
	if *demo {
		// The demo keeps out of the way of anything else: a free port, and
		// on shared servers names of its own, removed at the end.
		if !given["addr"] {
			g.addr = "127.0.0.1:0"
		}
		if !given["log-level"] {
			s.logLevel = "warn"
		}
		tag := randomTag()
		if s.amqp != "" && !given["namespace"] {
			s.namespace = "patbus-demo-" + tag
			cleanup = joinCleanup(cleanup, func(ctx context.Context) error { return removeTopologyAt(ctx, &s) })
		}
		if s.mongoURI != "" && !given["database"] {
			s.database = "patbus_demo_" + tag
			cleanup = joinCleanup(cleanup, func(ctx context.Context) error { return dropDatabase(ctx, &s) })
		}
	}
	if err := s.check(stderr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	addr := ln.Addr().String()
	sys, err := startSystem(ctx, &s, &g, addr, *configFile, user.WithBcryptCost(*cost), samples())
	if err != nil {
		_ = ln.Close()
		return err
	}
	base := "http://" + addr
	fmt.Fprintf(stdout, "patbus reference system: user, account and config services on %s, users in %s (database %s)\n", s.brokerName(), sys.where, s.database)
	fmt.Fprintf(stdout, "gateway listening on %s\n", base)
	if !*demo {
		fmt.Fprintf(stdout, "try:\n%s\nCtrl-C stops it.\n", tryLines(base))
		err := sys.gw.Serve(ctx, ln)
		return errors.Join(err, sys.shutdown())
	}

	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- sys.gw.Serve(sctx, ln) }()
	err = walkthrough(ctx, stdout, base, sys)
	stop()
	err = errors.Join(err, <-served, sys.shutdown())
	if cleanup != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if cerr := cleanup(cctx); cerr != nil {
			s.log.Warn("system: demo cleanup", "err", cerr)
		}
	}
	return err
}

// tryLines are the requests the banner suggests.
func tryLines(base string) string {
	lines := []string{
		"  curl -s " + base + "/user",
		"  curl -s -X POST -H 'Content-Type: application/json' -d '{\"name\":\"丁\",\"password\":\"s3cret\"}' " + base + "/user",
		"  curl -s " + base + "/user/ID",
		"  curl -s -X PUT -H 'Content-Type: application/json' -d '{\"name\":\"戊\"}' " + base + "/user/ID",
		"  curl -s -X DELETE " + base + "/user/ID",
		"  curl -s -X POST -H 'Content-Type: application/json' -d '{\"user\":\"asd\",\"password\":\"123\"}' " + base + "/login",
		"  curl -s " + base + "/config",
	}
	return strings.Join(lines, "\n")
}

// randomTag returns 8 random hexadecimal digits.
func randomTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// joinCleanup returns a cleanup that runs a, then b.
func joinCleanup(a, b func(context.Context) error) func(context.Context) error {
	if a == nil {
		return b
	}
	return func(ctx context.Context) error { return errors.Join(a(ctx), b(ctx)) }
}

// removeTopologyAt removes the namespace's exchanges and queues from the
// broker of s, on a connection of its own.
func removeTopologyAt(ctx context.Context, s *settings) error {
	b, err := s.openBroker(ctx, "cleanup")
	if err != nil {
		return err
	}
	defer b.Close()
	return s.removeTopology(ctx, b)
}

// dropDatabase drops the database of s from its MongoDB server.
func dropDatabase(ctx context.Context, s *settings) error {
	db, err := store.Open(ctx, s.mongoURI, s.database)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	return db.Drop(ctx)
}
