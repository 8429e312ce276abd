package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// Headers of dead work items (WIRE.md section 4). The attempt and error
// headers are wire.HeaderAttempt and wire.HeaderError.
const (
	headerDeadReason = "patbus-dead-reason"
	headerQueue      = "patbus-queue"
	headerFailedAt   = "patbus-failed-at"
)

func dlqCommand() command {
	return command{
		name:    "dlq",
		summary: "inspect, replay or purge a work queue's dead letters",
		run:     runDLQ,
		usage: `Usage: patbus dlq list|show|replay|purge [flags] QUEUE

Works on the dead letters of the work queue QUEUE, which workers keep in
QUEUE.dead (WIRE.md section 4); QUEUE.dead may be named as well.

  list    one line per dead item: its position, message id, the reason
          (max-attempts, poison, decode, ...), the attempts made, when it
          failed, the last error and a preview of the body. It reads the
          items and hands them back in their order; nothing is removed.
  show    everything about one item (its position, 1-based, or its message
          id; the first by default), or every item with --all: properties,
          headers and the whole body.
  replay  moves the items back to QUEUE, each confirmed by the broker and
          each exactly once, even if replay is interrupted or killed: run
          it again and it finishes the move without duplicating anything
          (see "Replay" below). The replayed item keeps its message id and
          tx id and starts again at attempt 1.
  purge   drops the items that are in QUEUE.dead when it starts (asks first
          on a terminal; --yes to skip the question).

Replay: each item is first copied, confirmed, into a journal queue
QUEUE.dead.replay (durable, dead-lettering to QUEUE), then removed from
QUEUE.dead, then released from the journal, which the broker moves to QUEUE
in one step. An item therefore is, at every moment, in QUEUE.dead, in the
journal, or in QUEUE; only between the journal's confirm and the removal
from QUEUE.dead is it in two places, and a replay that finds the journal
not empty drops those originals first. Run replay again after an
interruption; the journal goes away once it is empty. Two replays of one
queue cannot run at once (both queues are consumed exclusively).

Examples:
  patbus dlq list thumbnails
  patbus dlq show thumbnails 3
  patbus dlq show --all --json thumbnails | jq .headers
  patbus dlq replay thumbnails
  patbus dlq purge --yes thumbnails`,
	}
}

// deadItem is one dead letter as list and show report it.
type deadItem struct {
	Position    int            `json:"position"`
	ID          string         `json:"id,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	Attempts    int            `json:"attempts"`
	Error       string         `json:"error,omitempty"`
	Queue       string         `json:"queue,omitempty"`
	FailedAt    *time.Time     `json:"failed_at,omitempty"`
	EnqueuedAt  *time.Time     `json:"enqueued_at,omitempty"`
	Tx          string         `json:"tx,omitempty"`
	Redelivered bool           `json:"redelivered,omitempty"`
	Headers     map[string]any `json:"headers,omitempty"`
	Body        any            `json:"body"`
}

func runDLQ(a *app, ctx context.Context, args []string) int {
	c := dlqCommand()
	if len(args) == 0 {
		return a.usageErr(c, "want list, show, replay or purge")
	}
	sub := args[0]
	fs := a.flagSet(c, true)
	limit := fs.Int("limit", 1000, "list: read at most this many items")
	all := fs.Bool("all", false, "show: every item")
	yes := fs.Bool("yes", false, "purge: do not ask")
	window := fs.Int("window", 256, "replay: items in flight at most")
	switch sub {
	case "list", "show", "replay", "purge":
		args = args[1:]
	case "-h", "--help", "-help":
	default:
		return a.usageErr(c, "unknown subcommand %q: want list, show, replay or purge", sub)
	}
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	want := 1
	if sub == "show" {
		want = 2
	}
	if len(pos) < 1 || len(pos) > want {
		return a.usageErr(c, "dlq %s wants QUEUE%s", sub, map[bool]string{true: " [POSITION | ID]", false: ""}[sub == "show"])
	}
	if *limit < 1 || *window < 1 {
		return a.usageErr(c, "--limit and --window must be at least 1")
	}
	queue := strings.TrimSuffix(pos[0], ".dead")
	dead := queue + ".dead"
	b, err := a.dial(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	defer b.Close()
	switch sub {
	case "list":
		return a.dlqList(ctx, c, b, queue, dead, *limit)
	case "show":
		sel := ""
		if len(pos) == 2 {
			sel = pos[1]
		}
		return a.dlqShow(ctx, c, b, dead, sel, *all)
	case "replay":
		return a.dlqReplay(ctx, c, b, queue, *window)
	default:
		return a.dlqPurge(ctx, c, b, dead, *yes)
	}
}

// browse reads up to limit items of queue and hands them all back (in
// their order: the consumer is released without acking them). It consumes
// exclusively, so it fails while another consumer (a replay) holds the
// queue.
func (a *app) browse(ctx context.Context, b bus.Broker, queue string, limit int) ([]*bus.Delivery, int, error) {
	info, err := inspect(ctx, b, queue, a.opts.timeout)
	if err != nil {
		return nil, 0, err
	}
	n := min(info.Messages, limit)
	if n == 0 {
		return nil, info.Messages, nil
	}
	sub, err := b.Consume(ctx, queue, bus.ConsumeOptions{Prefetch: min(n, 65535), Exclusive: true})
	if err != nil {
		return nil, 0, consumeErr(queue, err)
	}
	defer func() {
		// Released without acks: every item goes back where it was.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = sub.Cancel(done)
	}()
	out := make([]*bus.Delivery, 0, n)
	idle := time.NewTimer(a.opts.timeout)
	defer idle.Stop()
	for len(out) < n {
		select {
		case d, ok := <-sub.Deliveries():
			if !ok {
				return out, info.Messages, sub.Err()
			}
			out = append(out, d)
		case <-idle.C:
			return out, info.Messages, nil
		case <-ctx.Done():
			return out, info.Messages, ctx.Err()
		}
	}
	return out, info.Messages, nil
}

// consumeErr words a refused exclusive consumer.
func consumeErr(queue string, err error) error {
	if errors.Is(err, bus.ErrPrecondition) {
		return fmt.Errorf("%s is being consumed by someone else (a replay or a worker?): %w", queue, err)
	}
	return err
}

func toDeadItem(i int, d *bus.Delivery, full bool) deadItem {
	f := wire.Read(d.Headers)
	it := deadItem{
		Position: i, ID: d.MessageID, Attempts: f.Attempt, Error: f.Error, Tx: f.Tx,
		Reason: wire.String(d.Headers, headerDeadReason), Queue: wire.String(d.Headers, headerQueue),
		Redelivered: d.Redelivered,
	}
	if ms, ok := wire.ParseDeadline(d.Headers[headerFailedAt]); ok {
		it.FailedAt = &ms
	}
	if !d.Timestamp.IsZero() {
		ts := d.Timestamp
		it.EnqueuedAt = &ts
	}
	if full {
		it.Headers = d.Headers
		it.Body = rawOrString(d.Body)
	} else {
		it.Body = preview(d.Body, 60)
	}
	return it
}

func (a *app) dlqList(ctx context.Context, c command, b bus.Broker, queue, dead string, limit int) int {
	items, total, err := a.browse(ctx, b, dead, limit)
	if err != nil {
		return a.fail(c, err)
	}
	inTransit := 0
	if info, err := inspect(ctx, b, journalName(dead), a.opts.timeout); err == nil {
		inTransit = info.Messages
	}
	if a.opts.json {
		for i, d := range items {
			it := toDeadItem(i+1, d, false)
			it.Body = rawOrString(d.Body)
			a.printJSON(it)
		}
		return exitOK
	}
	if total == 0 {
		fmt.Fprintf(a.out, "%s is empty\n", dead)
	} else {
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tID\tREASON\tATTEMPTS\tFAILED\tERROR\tBODY")
		for i, d := range items {
			it := toDeadItem(i+1, d, false)
			failed := "-"
			if it.FailedAt != nil {
				failed = it.FailedAt.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", it.Position, dash(it.ID), dash(it.Reason),
				it.Attempts, failed, preview([]byte(strconv.Quote(it.Error)), 40), it.Body)
		}
		_ = tw.Flush()
		if len(items) < total {
			fmt.Fprintf(a.out, "(%d of %d shown; --limit reads more)\n", len(items), total)
		}
	}
	if inTransit > 0 {
		fmt.Fprintf(a.errw, "patbus dlq: %d items are in transit in %s from an interrupted replay: run \"patbus dlq replay %s\" to finish it\n", inTransit, journalName(dead), queue)
	}
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) dlqShow(ctx context.Context, c command, b bus.Broker, dead, sel string, all bool) int {
	limit := 65535
	pos := 0
	if !all {
		if sel == "" {
			sel = "1"
		}
		if n, err := strconv.Atoi(sel); err == nil {
			if n < 1 {
				return a.usageErr(c, "positions start at 1")
			}
			pos, limit = n, n
		}
	}
	items, total, err := a.browse(ctx, b, dead, limit)
	if err != nil {
		return a.fail(c, err)
	}
	found := false
	for i, d := range items {
		if !all && ((pos > 0 && i+1 != pos) || (pos == 0 && d.MessageID != sel)) {
			continue
		}
		found = true
		it := toDeadItem(i+1, d, true)
		if a.opts.json {
			a.printJSON(it)
			continue
		}
		fmt.Fprintf(a.out, "%s %d of %d in %s\n", a.paint(colBold, "item"), it.Position, total, dead)
		fmt.Fprintf(a.out, "  id           %s\n", dash(it.ID))
		fmt.Fprintf(a.out, "  reason       %s\n", a.paint(colYellow, dash(it.Reason)))
		fmt.Fprintf(a.out, "  attempts     %d\n", it.Attempts)
		fmt.Fprintf(a.out, "  error        %s\n", dash(it.Error))
		if it.FailedAt != nil {
			fmt.Fprintf(a.out, "  failed at    %s\n", it.FailedAt.Local().Format(time.RFC3339Nano))
		}
		if it.EnqueuedAt != nil {
			fmt.Fprintf(a.out, "  enqueued at  %s\n", it.EnqueuedAt.Local().Format(time.RFC3339))
		}
		fmt.Fprintf(a.out, "  tx           %s\n", dash(it.Tx))
		h, _ := json.Marshal(d.Headers)
		fmt.Fprintf(a.out, "  headers      %s\n  body\n", h)
		a.writeJSONValue(a.out, d.Body)
	}
	if !found {
		if total == 0 {
			return a.fail(c, fmt.Errorf("%s is empty", dead))
		}
		return a.fail(c, &errNoItem{sel: sel, queue: dead})
	}
	return exitOK
}

// errNoItem is a position or id that the dead-letter queue does not hold.
type errNoItem struct{ sel, queue string }

func (e *errNoItem) Error() string { return fmt.Sprintf("no item %s in %s", e.sel, e.queue) }
func (e *errNoItem) Unwrap() error { return bus.ErrNotFound }

func (a *app) dlqPurge(ctx context.Context, c command, b bus.Broker, dead string, yes bool) int {
	info, err := inspect(ctx, b, dead, a.opts.timeout)
	if err != nil {
		return a.fail(c, err)
	}
	if info.Messages == 0 {
		fmt.Fprintf(a.out, "%s is empty\n", dead)
		return exitOK
	}
	if !yes {
		if !a.inTTY {
			return a.usageErr(c, "purge drops %d items: pass --yes to confirm", info.Messages)
		}
		fmt.Fprintf(a.errw, "Drop the %d items of %s? [y/N] ", info.Messages, dead)
		line, _ := bufio.NewReader(a.in).ReadString('\n')
		if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
			fmt.Fprintln(a.errw, "nothing dropped")
			return exitOK
		}
	}
	sub, err := b.Consume(ctx, dead, bus.ConsumeOptions{Prefetch: 256, Exclusive: true})
	if err != nil {
		return a.fail(c, consumeErr(dead, err))
	}
	dropped := 0
	idle := time.NewTimer(a.opts.timeout)
	defer idle.Stop()
loop:
	for dropped < info.Messages {
		select {
		case d, ok := <-sub.Deliveries():
			if !ok {
				break loop
			}
			if d.Ack() == nil {
				dropped++
			}
			idle.Reset(a.opts.timeout)
		case <-idle.C:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), a.opts.timeout)
	_ = sub.Cancel(cctx)
	cancel()
	if a.opts.json {
		a.printJSON(map[string]any{"queue": dead, "dropped": dropped})
	} else {
		fmt.Fprintf(a.out, "dropped %d items from %s\n", dropped, dead)
	}
	if ctx.Err() != nil {
		return exitInterrupted
	}
	return exitOK
}
