// Command system runs the reference system of patbus: the user, account
// and config services, the HTTP gateway in front of them, and the
// MongoDB-compatible server they keep their users in.
//
//	system [flags]                  the whole system in one process
//	system --demo                   the same, plus a walkthrough over HTTP, then exit
//	system user|account|config|gateway [flags]   one part, as a process of its own
//	system mongodb [-addr 127.0.0.1:0] [-dir DIR] [-v]
//	system ping [-uri URI] [-timeout 2s]
//	system probe [-timeout 2s] URL
//
// # The whole system
//
// Without a subcommand the command runs everything in one process on the
// embedded defaults: the in-memory broker (unless PATBUS_AMQP_URL names
// RabbitMQ), an embedded FerretDB (unless MONGODB_URI names a MongoDB
// server), no Consul (unless CONSUL_HTTP_ADDR names an agent). It starts
// the user, account and config services and the gateway on
// 127.0.0.1:8080 (-addr), prints where to send requests, and serves
// until SIGINT or SIGTERM; then the gateway drains the requests in
// flight, and the services theirs. With --demo it listens on a free port
// instead (unless -addr is given), plays a walkthrough against itself
// over real HTTP (create, list, load, edit, login, delete, a 404, a 400,
// a 409, the configuration, the account RPC), printing each request and
// response, and exits 0 when every answer was the expected one. On
// RabbitMQ the demo runs under a namespace of its own, and on a MongoDB
// server in a database of its own, and removes both at the end.
//
// # One part per process
//
// The subcommands user, account, config and gateway run one part each,
// so that a process manager (docker-compose.yml at the repository's top
// level) can run, scale and restart them apart. They read
// PATBUS_AMQP_URL, MONGODB_URI and CONSUL_HTTP_ADDR (the flags -amqp,
// -mongodb and -consul override them); a part that needs MongoDB and has
// no MONGODB_URI starts an embedded FerretDB of its own, whose data no
// other process sees. -health serves /healthz and /readyz for a
// service's health checks; probe is such a check (exit 0 on a 2xx
// answer), for images without curl.
//
// mongodb serves an embedded FerretDB (see internal/embedmongo) until
// SIGINT or SIGTERM and prints its connection string on a line of its own
// to stdout; ping checks that a MongoDB server answers. scripts/mongodb.sh
// uses both.
//
// Every subcommand takes -h. Logs go to stderr through log/slog.
//
// The command lives in its own module
// (github.com/patbus/patbus/examples/system), so that FerretDB and its
// dependencies never enter the library's module graph.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand: run parses args (the arguments after the
// subcommand's name) and works until ctx is cancelled or it is done.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands by name.
func commands() map[string]command {
	return map[string]command{
		"user":    {"run the user service", runUser},
		"account": {"run the account service (getUserById on account.rpc)", runAccount},
		"config":  {"run the config service (config-server)", runConfig},
		"gateway": {"run the HTTP gateway", runGateway},
		"mongodb": {"serve an embedded MongoDB-compatible server (FerretDB) until interrupted", runMongoDB},
		"ping":    {"check that a MongoDB server answers", runPing},
		"probe":   {"check that an HTTP endpoint answers 2xx (a health check)", runProbe},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status: 0 on
// success, 1 when the command fails, 2 for a usage error (an unknown
// subcommand, a bad flag). Without a subcommand (no arguments, or flags
// only) it runs the whole system.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	name, cmd := "system", command{run: runAll}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if args[0] == "help" {
			usage(stdout, cmds)
			return 0
		}
		c, ok := cmds[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "system: unknown command %q\n", args[0])
			usage(stderr, cmds)
			return 2
		}
		name, cmd, args = "system "+args[0], c, args[1:]
	}
	if err := cmd.run(ctx, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// usage prints the synopsis and the subcommands.
func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: system [flags]            the whole reference system in one process (system -h: its flags)")
	fmt.Fprintln(w, "       system <command> [flags]  one part (system <command> -h: its flags)")
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}

// usageError is a bad command line, already reported.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses args into fs, which reports errors to stderr; a bad
// flag becomes a usageError.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}
