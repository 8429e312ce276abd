package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patbus/patbus/bus"
)

// drainTimeout bounds the wait for the outstanding confirms once reading
// stopped (end of input, a bad line, Ctrl-C). What is still unresolved then
// counts as unknown: the broker may or may not have it.
const drainTimeout = 30 * time.Second

// window keeps at most n publishes in flight and counts how they end, in
// publish order, on a goroutine of its own. Only confirmations the broker
// acked count as confirmed.
type window struct {
	pending   chan *bus.Confirmation
	done      chan struct{}
	abort     chan struct{}
	abortOnce sync.Once

	confirmed atomic.Int64
	failed    atomic.Int64
	unknown   atomic.Int64

	mu       sync.Mutex
	firstErr error
}

func newWindow(n int) *window {
	w := &window{
		pending: make(chan *bus.Confirmation, n),
		done:    make(chan struct{}),
		abort:   make(chan struct{}),
	}
	go w.loop()
	return w
}

func (w *window) loop() {
	defer close(w.done)
	for c := range w.pending {
		select {
		case <-c.Done():
		case <-w.abort:
		}
		select {
		case <-c.Done():
			if err := c.Err(); err != nil {
				w.failed.Add(1)
				w.record(err)
			} else {
				w.confirmed.Add(1)
			}
		default:
			w.unknown.Add(1)
		}
	}
}

func (w *window) record(err error) {
	w.mu.Lock()
	if w.firstErr == nil {
		w.firstErr = err
	}
	w.mu.Unlock()
}

// add hands a confirmation to the window; it blocks while n are in
// flight. The confirmation always counts, even when the caller is being
// interrupted: its message is on its way.
func (w *window) add(c *bus.Confirmation) { w.pending <- c }

// close waits for the outstanding confirmations, at most d.
func (w *window) close(d time.Duration) {
	close(w.pending)
	t := time.AfterFunc(d, func() { w.abortOnce.Do(func() { close(w.abort) }) })
	defer t.Stop()
	<-w.done
}

func (w *window) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstErr
}

// publishJob is what emit and enqueue share: lines in, a publish per line,
// a window of confirms, a summary out.
type publishJob struct {
	c      command
	noun   string // "item", "event"
	verb   string // "enqueued", "emitted"
	dest   string // "on queue jobs", "as role:x,evt:y"
	object bool   // lines must be JSON objects
	window int
	// publish sends one body; the confirmation resolves with the broker's
	// answer. An error means the message was not sent.
	publish func(ctx context.Context, body []byte) (*bus.Confirmation, error)
}

// publishSummary is the --json output of emit and enqueue.
type publishSummary struct {
	Read        int64   `json:"read"`
	Sent        int64   `json:"sent"`
	Confirmed   int64   `json:"confirmed"`
	Failed      int64   `json:"failed"`
	Unknown     int64   `json:"unknown"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"rate"`
	Interrupted bool    `json:"interrupted,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// publishOne publishes one body and waits for its confirm.
func (a *app) publishOne(ctx context.Context, job publishJob, body []byte) int {
	timeout := a.opts.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	s := publishSummary{Read: 1}
	conf, err := job.publish(pctx, body)
	if err == nil {
		s.Sent = 1
		err = conf.Wait(pctx)
		if err == nil {
			s.Confirmed = 1
		} else if errors.Is(err, bus.ErrUnconfirmed) {
			s.Unknown = 1
		} else {
			s.Failed = 1
		}
	}
	s.Seconds = time.Since(start).Seconds()
	if err != nil {
		if a.opts.json {
			s.Error = a.redact(err.Error())
			a.printJSON(s)
		}
		return a.fail(job.c, a.explainPublishErr(job, err))
	}
	if a.opts.json {
		a.printJSON(s)
	} else {
		fmt.Fprintf(a.out, "%s 1 %s %s: confirmed\n", job.verb, job.noun, job.dest)
	}
	return exitOK
}

// explainPublishErr words the usual publish failures for a user.
func (a *app) explainPublishErr(job publishJob, err error) error {
	var re *bus.ReturnError
	if errors.As(err, &re) {
		return fmt.Errorf("%w: the broker returned the %s %s: no queue is bound for it", err, job.noun, job.dest)
	}
	return err
}

// publishLines reads JSON lines from stdin and publishes each with a window
// of confirms; it prints the count and rate at the end. Ctrl-C stops the
// reading; the confirms outstanding are waited for and counted.
func (a *app) publishLines(ctx context.Context, job publishJob) int {
	publishTimeout := a.opts.timeout
	if publishTimeout <= 0 {
		publishTimeout = 5 * time.Second
	}
	var read atomic.Int64
	batches := readLines(a.in, &read)
	w := newWindow(job.window)
	var sent, lines atomic.Int64
	prog := a.newProgress(ctx, job.noun, inputSize(a.in), &read, &w.confirmed)
	start := time.Now()
	var stopErr error
	interrupted := false
loop:
	for {
		select {
		case <-ctx.Done():
			interrupted = true
			break loop
		case b, ok := <-batches:
			if !ok {
				break loop
			}
			for i, line := range b.lines {
				if ctx.Err() != nil {
					interrupted = true
					break loop
				}
				lines.Add(1)
				if err := checkJSON(fmt.Sprintf("stdin line %d", b.nums[i]), line, job.object); err != nil {
					stopErr = err
					break loop
				}
				// A publish waits while the broker blocks publishers or is
				// away, at most --timeout.
				pctx, cancel := context.WithTimeout(ctx, publishTimeout)
				conf, err := job.publish(pctx, line)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						interrupted = true
					} else {
						stopErr = fmt.Errorf("stdin line %d: %w", b.nums[i], err)
					}
					break loop
				}
				sent.Add(1)
				w.add(conf)
			}
			if b.err != nil {
				stopErr = b.err
				break loop
			}
		}
	}
	if interrupted && prog == nil {
		fmt.Fprintf(a.errw, "patbus %s: interrupted: waiting for %d outstanding confirms\n", job.c.name, sent.Load()-w.confirmed.Load()-w.failed.Load())
	}
	w.close(drainTimeout)
	elapsed := time.Since(start)
	prog.finish()
	s := publishSummary{
		Read: lines.Load(), Sent: sent.Load(),
		Confirmed: w.confirmed.Load(), Failed: w.failed.Load(), Unknown: w.unknown.Load(),
		Seconds: elapsed.Seconds(), Interrupted: interrupted,
	}
	if elapsed > 0 {
		s.Rate = float64(s.Confirmed) / elapsed.Seconds()
	}
	failErr := w.err()
	if stopErr != nil {
		s.Error = a.redact(stopErr.Error())
	} else if failErr != nil {
		s.Error = a.redact(a.explainPublishErr(job, failErr).Error())
	}
	if a.opts.json {
		a.printJSON(s)
	} else {
		verb := job.verb
		if interrupted {
			verb = "interrupted: " + verb
		}
		fmt.Fprintf(a.out, "%s %d %ss %s: %d confirmed", verb, s.Sent, job.noun, job.dest, s.Confirmed)
		if s.Failed > 0 {
			fmt.Fprintf(a.out, ", %s", a.paint(colRed, fmt.Sprintf("%d failed", s.Failed)))
		}
		if s.Unknown > 0 {
			fmt.Fprintf(a.out, ", %s", a.paint(colYellow, fmt.Sprintf("%d unconfirmed (may or may not have arrived)", s.Unknown)))
		}
		fmt.Fprintf(a.out, " in %s (%.0f/s)\n", elapsed.Round(time.Millisecond), s.Rate)
	}
	switch {
	case stopErr != nil:
		return a.fail(job.c, stopErr)
	case interrupted:
		return exitInterrupted
	case failErr != nil:
		code := a.fail(job.c, a.explainPublishErr(job, failErr))
		if code == exitNoRoute && s.Confirmed > 0 {
			code = exitPartial
		}
		return code
	case s.Unknown > 0:
		fmt.Fprintf(a.errw, "patbus %s: %d %ss not confirmed within %s\n", job.c.name, s.Unknown, job.noun, drainTimeout)
		return exitPartial
	}
	return exitOK
}

// inputSize is the number of bytes left to read from r when it is a
// regular file (stdin redirected from a file), else -1.
func inputSize(r any) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return -1
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return -1
	}
	off, err := f.Seek(0, 1)
	if err != nil {
		return -1
	}
	return st.Size() - off
}
