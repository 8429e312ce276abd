package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/patbus/patbus/bus"
)

// app is one run of the command: its standard streams, its environment
// and the options common to every subcommand. Nothing in it is global, so
// that tests could run it in-process as well as through the binary.
type app struct {
	in      io.Reader
	out     io.Writer
	errw    io.Writer
	getenv  func(string) string
	opts    commonOptions
	outTTY  bool // stdout is a terminal: pretty JSON, colour
	errTTY  bool // stderr is a terminal: progress bars
	inTTY   bool // stdin is a terminal
	colorOK bool
	// consulEnv is CONSUL_HTTP_ADDR, for the commands that take --consul.
	consulEnv string
}

// commonOptions are the flags every subcommand that talks to the broker
// takes, with their defaults from the environment.
type commonOptions struct {
	amqp     string
	timeout  time.Duration
	json     bool
	act      string
	registry string
	consul   string
	noColor  bool
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // the synopsis and the examples shown by --help
	run     func(a *app, ctx context.Context, args []string) int
}

func commands() []command {
	return []command{
		actCommand(),
		emitCommand(),
		enqueueCommand(),
		tailCommand(),
		servicesCommand(),
		explainCommand(),
		dlqCommand(),
		replCommand(),
		{name: "version", summary: "print the version of this program", usage: "patbus version", run: runVersion},
	}
}

func newApp(in io.Reader, out, errw io.Writer, getenv func(string) string) *app {
	a := &app{in: in, out: out, errw: errw, getenv: getenv}
	a.outTTY = isTerminal(out)
	a.errTTY = isTerminal(errw)
	a.inTTY = isTerminal(in)
	return a
}

// isTerminal reports whether the stream is a terminal.
func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// run parses the subcommand and runs it; it returns the exit status.
func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.mainUsage(a.errw)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help", "help":
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run(a, ctx, []string{"--help"})
				}
			}
		}
		a.mainUsage(a.out)
		return exitOK
	case "--version", "-version":
		return runVersion(a, ctx, nil)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(a, ctx, args[1:])
		}
	}
	fmt.Fprintf(a.errw, "patbus: unknown command %q\n", name)
	a.mainUsage(a.errw)
	return exitUsage
}

func (a *app) mainUsage(w io.Writer) {
	fmt.Fprint(w, `patbus acts, emits, enqueues and watches a patbus system on RabbitMQ.

Usage:
  patbus COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every command reads the broker's address from --amqp or PATBUS_AMQP_URL
(amqp://user:pass@host:5672/vhost). "patbus COMMAND --help" shows a
command's flags and examples.

Exit status:
  0  success
  1  the act was answered with an error (its code and message on stderr),
     or another failure
  2  usage: unknown flag, missing argument, malformed pattern or JSON
  3  no route: nobody serves the pattern, or the queue does not exist
  4  timeout: no reply before --timeout (or an error reply "timeout")
  5  the broker is unreachable, refused the credentials, or blocks publishers
  6  some messages were not confirmed (nacked, returned or unknown)
  130 interrupted (Ctrl-C) before the work was done
`)
}

// flagSet returns the flag set of a subcommand with the common flags
// registered, and its usage text.
func (a *app) flagSet(c command, broker bool) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if broker {
		// Defaults from the environment are filled in after parsing, so
		// that --help never prints them (the URL holds a password).
		fs.StringVar(&a.opts.amqp, "amqp", "", "RabbitMQ `URL`, several separated by commas (env PATBUS_AMQP_URL)")
		fs.DurationVar(&a.opts.timeout, "timeout", 5*time.Second, "bound on connecting and on each act")
		fs.StringVar(&a.opts.act, "act-exchange", "", "the act `exchange` (env PATBUS_ACT_EXCHANGE; default patbus.act)")
		fs.StringVar(&a.opts.registry, "registry-exchange", "", "the catalog `exchange` (env PATBUS_REGISTRY_EXCHANGE; default patbus.registry)")
	}
	fs.BoolVar(&a.opts.json, "json", false, "print JSON for scripts (one object per line where there are many)")
	fs.BoolVar(&a.opts.noColor, "no-color", false, "never print colour (NO_COLOR in the environment does the same)")
	fs.Usage = func() {}
	return fs
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// parse parses args with fs, allowing flags after the positional
// arguments ("patbus act role:x --timeout 1s"), and returns the positional
// ones. "--" ends the flags. --help prints the command's usage and gives
// exitOK as code; a bad flag prints it to stderr and gives exitUsage.
func (a *app) parse(c command, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			a.commandUsage(a.out, c, fs)
			return nil, exitOK, false
		}
		if err != nil {
			fmt.Fprintf(a.errw, "patbus %s: %v\n", c.name, err)
			fmt.Fprintf(a.errw, "Run 'patbus %s --help' for usage.\n", c.name)
			return nil, exitUsage, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// fs.Parse stops at the first positional argument, or after "--":
		// in the latter case everything left is positional.
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if a.opts.amqp == "" {
		a.opts.amqp = a.getenv("PATBUS_AMQP_URL")
	}
	if a.opts.act == "" {
		a.opts.act = envOr(a.getenv, "PATBUS_ACT_EXCHANGE", "patbus.act")
	}
	if a.opts.registry == "" {
		a.opts.registry = envOr(a.getenv, "PATBUS_REGISTRY_EXCHANGE", "patbus.registry")
	}
	if a.opts.consul == "" {
		a.opts.consul = a.consulEnv
	}
	a.colorOK = a.outTTY && !a.opts.noColor && a.getenv("NO_COLOR") == "" && a.getenv("TERM") != "dumb"
	return pos, 0, true
}

func (a *app) commandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nFlags:\n", strings.TrimSpace(c.usage))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// usageErr reports a usage error of a subcommand and returns exitUsage.
func (a *app) usageErr(c command, format string, args ...any) int {
	fmt.Fprintf(a.errw, "patbus %s: %s\n", c.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(a.errw, "Run 'patbus %s --help' for usage.\n", c.name)
	return exitUsage
}

// fail prints err as one line on stderr, prefixed with the command, and
// returns the exit status that err maps to.
func (a *app) fail(c command, err error) int {
	msg := a.redact(err.Error())
	var ie *inputError
	if !errors.As(err, &ie) {
		// A pattern's syntax error shows where it is on a second line;
		// everything else is one line.
		msg = oneLine(msg)
	}
	fmt.Fprintf(a.errw, "patbus %s: %s\n", c.name, msg)
	return exitCode(err)
}

// redact removes the password of the configured broker address from s,
// however it appears. The bus already redacts its own errors; this is the
// second belt for text that comes from elsewhere.
func (a *app) redact(s string) string { return bus.Redact(a.opts.amqp, s) }

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", " ")
}

func runVersion(a *app, _ context.Context, args []string) int {
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
		fmt.Fprintln(a.out, "Usage: patbus version\n\nPrints the module version this program was built from.")
		return exitOK
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(a.out, "patbus %s\n", v)
	return exitOK
}
