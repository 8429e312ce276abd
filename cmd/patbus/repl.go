package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode"

	"github.com/chzyer/readline"

	"github.com/patbus/patbus/services"
)

func replCommand() command {
	return command{
		name:    "repl",
		summary: "an interactive prompt that acts and prints the replies",
		run:     runRepl,
		usage: `Usage: patbus repl [flags]

An interactive prompt, as Seneca's and Moleculer's REPLs have: each line is
a pattern, optionally followed by a space and its input (pairs written like
a pattern, or a JSON object); it acts and prints the reply, or the error's
code and message. Tab completes patterns from the live catalog (pair by
pair: "role:us<Tab>"); the arrow keys walk the history, which is kept in
--history. Ctrl-C cancels the act in progress or clears the line; Ctrl-D or
.exit leaves.

Commands: .services lists the catalog, .explain MESSAGE explains a
resolution, .help shows this text.

Examples:
  patbus repl
  patbus> role:user,cmd:login user:asd,pass:123
  {
    "code": 1000
  }
  patbus> role:user,cmd:get {"id":7}
  error not_found from user@1.0.0: user 7 not found`,
	}
}

func defaultHistory(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "patbus", "history")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".patbus_history")
	}
	return ""
}

func runRepl(a *app, ctx context.Context, args []string) int {
	c := replCommand()
	fs := a.flagSet(c, true)
	history := fs.String("history", defaultHistory(a.getenv), "the history `file` (\"\": no history)")
	a.consulFlag(fs)
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageErr(c, "takes no arguments")
	}
	// The REPL owns Ctrl-C: it cancels the act in progress, not the
	// program. Its own context replaces the one canceled by the first
	// signal; SIGTERM still ends it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	base, stop := context.WithCancel(context.Background())
	defer stop()
	cl, closeAll, err := a.session(base, a.dialForever)
	if err != nil {
		return a.fail(c, err)
	}
	defer closeAll()
	if _, err := loadCatalog(base, cl, catalogSettle); err != nil {
		return a.fail(c, err)
	}
	if *history != "" {
		_ = os.MkdirAll(filepath.Dir(*history), 0o700)
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:          a.paint(colCyan, "patbus> "),
		HistoryFile:     *history,
		AutoComplete:    &completer{cl: cl},
		InterruptPrompt: "^C",
		EOFPrompt:       ".exit",
		Stdout:          a.out,
		Stderr:          a.errw,
	})
	if err != nil {
		return a.fail(c, fmt.Errorf("cannot start the prompt: %w", err))
	}
	defer rl.Close()
	n := len(others(cl.Catalog()))
	fmt.Fprintf(rl.Stderr(), "patbus repl: %d service versions in the catalog; Tab completes patterns, .help for help, Ctrl-D leaves\n", n)
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return exitOK
		}
		if err != nil {
			return a.fail(c, err)
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case line == ".exit" || line == ".quit":
			return exitOK
		case line == ".help":
			fmt.Fprintln(a.out, strings.TrimSpace(c.usage))
			continue
		case line == ".services":
			for _, e := range others(cl.Catalog()) {
				fmt.Fprintf(a.out, "%s@%s (%d instances): %s\n", e.Service, e.Version, len(e.Instances), strings.Join(e.Patterns, "  "))
			}
			continue
		case strings.HasPrefix(line, ".explain"):
			raw, err := a.readInput(strings.TrimSpace(strings.TrimPrefix(line, ".explain")))
			if err == nil && raw == nil {
				raw = []byte("{}")
			}
			var msg map[string]any
			if err == nil {
				msg, err = decodeMessage(raw)
			}
			if err != nil {
				fmt.Fprintln(a.errw, err)
				continue
			}
			a.explain(msg, raw, others(cl.Catalog()))
			continue
		case strings.HasPrefix(line, "."):
			fmt.Fprintf(a.errw, "unknown command %s (.help lists them)\n", line)
			continue
		}
		pattern, rest := splitLine(line)
		if _, err := parsePattern("pattern", pattern); err != nil {
			fmt.Fprintln(a.errw, err)
			continue
		}
		input, err := a.readInput(rest)
		if err == nil && rest == "-" {
			err = errors.New("'-' reads stdin, which is the prompt here: give the input on the line")
		}
		if err != nil {
			fmt.Fprintln(a.errw, err)
			continue
		}
		actx, cancel := context.WithCancel(base)
		done := make(chan struct{})
		go func() {
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM {
					stop()
				}
				cancel()
			case <-done:
			}
		}()
		a.act(actx, c, cl, pattern, input, "")
		close(done)
		cancel()
		if base.Err() != nil {
			return exitOK
		}
	}
}

// splitLine splits a REPL line into its pattern and its input at the first
// space that is outside quotes and braces and not next to a ':' or ','
// (so "role: user, cmd: login" stays one pattern).
func splitLine(line string) (pattern, rest string) {
	depth := 0
	var quote rune
	rs := []rune(line)
	for i, r := range rs {
		switch {
		case quote != 0:
			if r == quote && (i == 0 || rs[i-1] != '\\') {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '{' || r == '[':
			depth++
		case r == '}' || r == ']':
			depth--
		case unicode.IsSpace(r) && depth == 0:
			prev := strings.TrimRightFunc(string(rs[:i]), unicode.IsSpace)
			next := strings.TrimLeftFunc(string(rs[i:]), unicode.IsSpace)
			if strings.HasSuffix(prev, ":") || strings.HasSuffix(prev, ",") || strings.HasPrefix(next, ":") || strings.HasPrefix(next, ",") {
				continue
			}
			return strings.TrimSpace(prev), strings.TrimSpace(next)
		}
	}
	return strings.TrimSpace(line), ""
}

// completer completes patterns from the live catalog, pair by pair: the
// word under the cursor is split at commas; the pairs typed so far must
// all belong to a pattern for its other pairs to be offered.
type completer struct{ cl *services.Service }

func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	head := string(line[:pos])
	if strings.HasPrefix(head, ".") && !strings.ContainsAny(head, " \t") {
		return complete([]string{".exit", ".explain ", ".help", ".services"}, head)
	}
	pat, rest := splitLine(head)
	trimmed := strings.TrimRightFunc(head, unicode.IsSpace)
	if rest != "" || (trimmed != head && !strings.HasSuffix(trimmed, ",") && !strings.HasSuffix(trimmed, ":")) {
		// Past the pattern: the input has no completion.
		return nil, 0
	}
	word := strings.Join(strings.Fields(pat), "")
	parts := strings.Split(word, ",")
	typed, partial := parts[:len(parts)-1], parts[len(parts)-1]
	if head == "" {
		partial = ""
	}
	seen := map[string]bool{}
	var out [][]rune
	for _, e := range c.cl.Catalog() {
		for _, ps := range e.Patterns {
			pairs := strings.Split(ps, ",")
			have := map[string]bool{}
			for _, p := range pairs {
				have[p] = true
			}
			ok := true
			for _, t := range typed {
				if !have[strings.TrimSpace(t)] {
					ok = false
				}
			}
			if !ok {
				continue
			}
			left := len(pairs) - len(typed)
			for _, p := range pairs {
				if !strings.HasPrefix(p, partial) || contains(typed, p) {
					continue
				}
				suffix := p[len(partial):]
				if left > 1 {
					suffix += ","
				} else {
					suffix += " "
				}
				if !seen[suffix] {
					seen[suffix] = true
					out = append(out, []rune(suffix))
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i]) < string(out[j]) })
	return out, len([]rune(partial))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

func complete(words []string, prefix string) ([][]rune, int) {
	var out [][]rune
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, []rune(w[len(prefix):]))
		}
	}
	return out, len([]rune(prefix))
}
