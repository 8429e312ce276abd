package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/pubsub"
)

func emitCommand() command {
	return command{
		name:    "emit",
		summary: "emit events by pattern",
		run:     runEmit,
		usage: `Usage: patbus emit [flags] PATTERN [JSON | -]

Emits an event of PATTERN on the events exchange (patbus.events), as
pubsub's Emit does: the body is the JSON object with the pattern's pairs
added, persistent, confirmed by the broker. INPUT may also be pairs written
like a pattern (id:5,name:x). With "-" it reads one JSON object per line
from stdin and emits each, with up to --window events in flight; the count
and the rate are printed at the end. Ctrl-C stops reading and waits for the
confirms outstanding. An event nobody subscribes to is dropped by the
broker, as RabbitMQ does; that is not an error.

Examples:
  patbus emit role:user,evt:login '{"id":5}'
  patbus emit role:user,evt:login id:5
  patbus emit role:order,evt:created - < orders.jsonl
  patbus emit --tx 4bf92f3577b34da6a3ce929d0e0e4736 role:user,evt:logout id:5`,
	}
}

func runEmit(a *app, ctx context.Context, args []string) int {
	c := emitCommand()
	fs := a.flagSet(c, true)
	window := fs.Int("window", 256, "events in flight (published, not yet confirmed) at most")
	tx := fs.String("tx", "", "the tx `id` every event carries (default: a fresh one per event)")
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return a.usageErr(c, "want PATTERN and at most one JSON object or -, got %d arguments", len(pos))
	}
	if *window < 1 {
		return a.usageErr(c, "--window must be at least 1")
	}
	p, err := parsePattern("pattern", pos[0])
	if err != nil {
		return a.fail(c, err)
	}
	if p.HasGlob() {
		return a.fail(c, inputErrorf("an event's pattern cannot hold globs: %s", p))
	}
	fromStdin := len(pos) == 2 && strings.TrimSpace(pos[1]) == "-"
	var one []byte
	if !fromStdin {
		arg := ""
		if len(pos) == 2 {
			arg = pos[1]
		}
		if one, err = a.readInput(arg); err != nil {
			return a.fail(c, err)
		}
		if one == nil {
			one = []byte("{}")
		}
	}
	b, err := a.dial(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	defer b.Close()
	ps, err := pubsub.New(ctx, b)
	if err != nil {
		return a.fail(c, err)
	}
	defer ps.Close()
	if *tx != "" {
		ctx = patbus.WithTx(ctx, *tx)
	}
	pattern := p.String()
	job := publishJob{
		c: c, noun: "event", verb: "emitted", dest: "as " + pattern, object: true, window: *window,
		publish: func(ctx context.Context, body []byte) (*bus.Confirmation, error) {
			return ps.EmitAsync(ctx, pattern, json.RawMessage(body))
		},
	}
	if !fromStdin {
		return a.publishOne(ctx, job, one)
	}
	return a.publishLines(ctx, job)
}
