// Command system runs the parts of the reference system: the services of
// the user, account and config modules, the HTTP gateway, and the
// MongoDB-compatible server they keep their data in. Each part is a
// subcommand:
//
//	system mongodb [-addr 127.0.0.1:0] [-dir DIR] [-v]
//	system ping [-uri URI] [-timeout 2s]
//
// mongodb serves an embedded FerretDB (see internal/embedmongo) until
// SIGINT or SIGTERM and prints its connection string, such as
// mongodb://127.0.0.1:27017/, on a line of its own to stdout. ping checks
// that the MongoDB server at -uri (default $MONGODB_URI) answers, and
// exits with status 1 when it does not. scripts/mongodb.sh builds this
// command, starts mongodb in the background and waits with ping.
//
// The command lives in its own module (github.com/patbus/patbus/examples/system),
// so that FerretDB and its dependencies never enter the library's module
// graph.
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
		"mongodb": {"serve an embedded MongoDB-compatible server (FerretDB) until interrupted", runMongoDB},
		"ping":    {"check that a MongoDB server answers", runPing},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the subcommand args[0] with the rest of args and returns the
// exit status: 0 on success, 1 when the subcommand fails, 2 for a usage
// error (no or an unknown subcommand, a bad flag).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "system: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		fmt.Fprintf(stderr, "system %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: system <command> [flags]")
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}

// usageError is a bad command line, already reported by the flag set.
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
