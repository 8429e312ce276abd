package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/services"
)

func actCommand() command {
	return command{
		name:    "act",
		summary: "act on a pattern and print the reply",
		run:     runAct,
		usage: `Usage: patbus act [flags] PATTERN [INPUT | -]

Acts on PATTERN, as a service's Act does, and prints the reply: indented
JSON on a terminal, one compact line otherwise. INPUT is a JSON object, or
pairs written like a pattern (user:asd,pass:123); "-" reads one JSON
document from stdin. The pattern's pairs win over the input's.

The act is resolved against the catalog on the bus (the newest healthy
version of the winning pattern answers), published on the act exchange
with publisher confirms, and bounded by --timeout. An answer with an error
prints its code and message on stderr and exits 1; nobody serving the
pattern exits 3 at once; no reply in time exits 4.

Examples:
  patbus act role:user,cmd:login user:asd,pass:123
  patbus act 'role:user,cmd:login' '{"user":"asd","pass":"123"}'
  echo '{"user":"asd","pass":"123"}' | patbus act role:user,cmd:login -
  patbus act --target config-server --timeout 2s cmd:get,key:port
  patbus act --json role:math,cmd:sum,left:1,right:2 | jq .result`,
	}
}

// consulFlag registers --consul, for the commands that read health.
func (a *app) consulFlag(fs *flag.FlagSet) {
	a.consulEnv = a.getenv("CONSUL_HTTP_ADDR")
	fs.StringVar(&a.opts.consul, "consul", "", "Consul `host:port` for health and versions (env CONSUL_HTTP_ADDR; none: the catalog's heartbeats decide)")
}

func runAct(a *app, ctx context.Context, args []string) int {
	c := actCommand()
	fs := a.flagSet(c, true)
	target := fs.String("target", "", "pin the `service` that answers ($$target)")
	version := fs.String("version", "", "pin the service `version` that answers ($$version)")
	tx := fs.String("tx", "", "the tx `id` of the act (default: a fresh one)")
	a.consulFlag(fs)
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return a.usageErr(c, "want PATTERN and at most one INPUT, got %d arguments", len(pos))
	}
	if _, err := parsePattern("pattern", pos[0]); err != nil {
		return a.fail(c, err)
	}
	inArg := ""
	if len(pos) == 2 {
		inArg = pos[1]
	}
	input, err := a.readInput(inArg)
	if err == nil {
		input, err = pin(input, *target, *version)
	}
	if err != nil {
		return a.fail(c, err)
	}
	cl, closeAll, err := a.session(ctx, a.dial)
	if err != nil {
		return a.fail(c, err)
	}
	defer closeAll()
	return a.act(ctx, c, cl, pos[0], input, *tx)
}

// pin adds $$target and $$version to the input object.
func pin(input []byte, target, version string) ([]byte, error) {
	if target == "" && version == "" {
		return input, nil
	}
	m := map[string]json.RawMessage{}
	if len(input) > 0 {
		if err := json.Unmarshal(input, &m); err != nil {
			return nil, inputErrorf("input: not a JSON object: %v", err)
		}
	}
	if target != "" {
		m["$$target"], _ = json.Marshal(target)
	}
	if version != "" {
		m["$$version"], _ = json.Marshal(version)
	}
	return json.Marshal(m)
}

// actResult is the --json output of an act.
type actResult struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *patbus.Error   `json:"error,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Service string          `json:"service,omitempty"`
	Version string          `json:"version,omitempty"`
	Tx      string          `json:"tx,omitempty"`
	MS      float64         `json:"ms"`
}

// act runs one act with the client and prints its outcome (the act
// command and the REPL share it). It returns the exit status.
func (a *app) act(ctx context.Context, c command, cl *services.Service, pattern string, input []byte, tx string) int {
	timeout := a.opts.timeout
	if timeout <= 0 {
		timeout = services.DefaultTimeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if tx == "" {
		tx = patbus.NewTx()
	}
	actx = patbus.WithTx(actx, tx)
	var in any
	if len(input) > 0 {
		in = json.RawMessage(input)
	}
	start := time.Now()
	reply, err := cl.Act(actx, pattern, in)
	took := time.Since(start)
	ms := float64(took.Microseconds()) / 1000
	if err == nil {
		if a.opts.json {
			body := reply.Body
			if len(body) == 0 {
				body = []byte("null")
			}
			a.printJSON(actResult{Result: body, Service: reply.Service, Version: reply.Version, Tx: reply.Tx, MS: ms})
		} else {
			a.writeJSONValue(a.out, reply.Body)
		}
		return exitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintf(a.errw, "patbus %s: interrupted\n", c.name)
		return exitInterrupted
	}
	code := exitCode(err)
	var pe *patbus.Error
	if errors.As(err, &pe) {
		if a.opts.json {
			a.printJSON(actResult{Error: pe, Tx: tx, MS: ms})
		}
		from := ""
		if pe.Service != "" {
			from = " from " + pe.Service
			if pe.Version != "" {
				from += "@" + pe.Version
			}
		}
		fmt.Fprintf(a.errw, "%s%s: %s\n", a.paint(colRed, "error "+pe.Code), from, oneLine(pe.Message))
		if len(pe.Details) > 0 {
			d, _ := json.Marshal(pe.Details)
			fmt.Fprintf(a.errw, "details: %s\n", d)
		}
		return code
	}
	var msg string
	switch code {
	case exitNoRoute:
		msg = fmt.Sprintf("no route: nobody serves %s", pattern)
	case exitTimeout:
		msg = fmt.Sprintf("timeout: no reply within %s for %s", timeout, pattern)
	default:
		msg = a.redact(err.Error())
	}
	if a.opts.json {
		a.printJSON(actResult{Code: patbus.Code(err), Message: oneLine(msg), Tx: tx, MS: ms})
	}
	fmt.Fprintf(a.errw, "patbus %s: %s (tx %s)\n", c.name, oneLine(msg), tx)
	return code
}
