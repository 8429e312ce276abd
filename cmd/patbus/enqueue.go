package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

func enqueueCommand() command {
	return command{
		name:    "enqueue",
		summary: "put work items on a work queue",
		run:     runEnqueue,
		usage: `Usage: patbus enqueue [flags] QUEUE [JSON | -]

Puts work items on the durable work queue QUEUE, as workers' Enqueue does
(WIRE.md section 4): each a persistent, mandatory publish to the default
exchange, with a UUID message id and a tx id, confirmed by the broker. With
"-" it reads one JSON value per line from stdin (blank lines are skipped)
and keeps up to --window items in flight.

An item is reported as enqueued only once the broker confirmed it. A
progress bar shows on a terminal; the count and the rate are printed at the
end. Ctrl-C stops reading, waits for the confirms still outstanding and
says how many were confirmed (exit 130). A malformed line stops the run
and names its line number (exit 2). The queue must exist (a worker
declares it): a missing queue exits 3.

--bare sends the items as RabbitMQ's work-queue tutorial does: persistent
and confirmed, but with no message id, time or tx, and not mandatory.
RabbitMQ takes them faster (see the README's benchmarks), but a worker
cannot deduplicate them by id (a publish sent again after a lost
connection may arrive twice), and an item for a queue deleted during the
run is dropped by the broker instead of reported.

Examples:
  patbus enqueue thumbnails '{"image":"cat.png","width":128}'
  patbus enqueue thumbnails - < jobs.jsonl
  jq -c '.[]' jobs.json | patbus enqueue --window 512 thumbnails -
  patbus enqueue --json thumbnails - < jobs.jsonl | jq .confirmed
  patbus enqueue --bare thumbnails - < jobs.jsonl`,
	}
}

func runEnqueue(a *app, ctx context.Context, args []string) int {
	c := enqueueCommand()
	fs := a.flagSet(c, true)
	window := fs.Int("window", 256, "items in flight (published, not yet confirmed) at most")
	tx := fs.String("tx", "", "the tx `id` every item carries (default: a fresh one per item)")
	bare := fs.Bool("bare", false, "send items without message id, time or tx, not mandatory (faster; no dedup key)")
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return a.usageErr(c, "want QUEUE and at most one JSON value or -, got %d arguments", len(pos))
	}
	if *window < 1 {
		return a.usageErr(c, "--window must be at least 1")
	}
	if *bare && *tx != "" {
		return a.usageErr(c, "--bare items carry no tx: drop --tx or --bare")
	}
	queue := pos[0]
	if queue == "" || len(queue) > bus.MaxNameLen {
		return a.usageErr(c, "the queue name must have 1 to %d bytes", bus.MaxNameLen)
	}
	var one []byte
	fromStdin := len(pos) == 1 || strings.TrimSpace(pos[1]) == "-"
	if !fromStdin {
		one = []byte(pos[1])
		if err := checkJSON("input", one, false); err != nil {
			return a.fail(c, err)
		}
	}
	b, err := a.dial(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	defer b.Close()
	if err := checkQueue(ctx, b, queue, a.opts.timeout); err != nil {
		return a.fail(c, err)
	}
	job := publishJob{
		c: c, noun: "item", verb: "enqueued", dest: "on " + queue, window: *window,
		publish: func(ctx context.Context, body []byte) (*bus.Confirmation, error) {
			if *bare {
				return b.Publish(ctx, "", queue, bareItem(body))
			}
			return b.Publish(ctx, "", queue, workItem(body, *tx))
		},
	}
	if !fromStdin {
		return a.publishOne(ctx, job, one)
	}
	return a.publishLines(ctx, job)
}

// workItem is the message of one work item, as WIRE.md section 4 has it:
// persistent, mandatory, a UUID message id, the time, and the tx id of
// --tx, when given, in traceparent (and patbus-tx when it is no trace id).
func workItem(body []byte, tx string) bus.Message {
	return bus.Message{
		Headers:     wire.ChainHeaders(tx),
		ContentType: wire.ContentTypeJSON,
		MessageID:   uuid.NewString(),
		Persistent:  true,
		Mandatory:   true,
		Timestamp:   time.Now(),
		Body:        body,
	}
}

// bareItem is the message of one work item with --bare: what the
// tutorial's producer sends, persistent JSON and nothing else.
func bareItem(body []byte) bus.Message {
	return bus.Message{ContentType: wire.ContentTypeJSON, Persistent: true, Body: body}
}

// errNoQueue is a queue that does not exist.
type errNoQueue struct {
	queue string
	err   error
}

func (e *errNoQueue) Error() string {
	return fmt.Sprintf("queue %q does not exist (a worker declares it; check the name and the vhost)", e.queue)
}

func (e *errNoQueue) Unwrap() error { return e.err }

// checkQueue fails with errNoQueue when the broker knows no such queue.
// It never declares it.
func checkQueue(ctx context.Context, b bus.Broker, queue string, timeout time.Duration) error {
	_, err := inspect(ctx, b, queue, timeout)
	return err
}

// inspect reads a queue's depth (bus.QueueInspector), bounded by timeout.
func inspect(ctx context.Context, b bus.Broker, queue string, timeout time.Duration) (bus.QueueInfo, error) {
	qi, ok := b.(bus.QueueInspector)
	if !ok {
		return bus.QueueInfo{}, errors.New("this broker cannot inspect queues")
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := qi.InspectQueue(ictx, queue)
	if errors.Is(err, bus.ErrNotFound) {
		return info, &errNoQueue{queue: queue, err: err}
	}
	return info, err
}
