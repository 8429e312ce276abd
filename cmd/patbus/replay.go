package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
)

// headerReplayKey marks a journal copy with the key of the dead item it
// was made from, so that a later replay can tell which originals it holds
// a copy of. It stays on the replayed item (harmless to workers).
const headerReplayKey = "patbus-replay-key"

// journalName is the replay journal of a dead-letter queue.
func journalName(dead string) string { return dead + ".replay" }

// replayKey identifies a dead item: its message id, or a digest of its
// body and failure time when it has none. Two items with the same key are
// copies of one item; replay counts them, so copies are kept as copies.
func replayKey(d *bus.Delivery) string {
	if d.MessageID != "" {
		return "id:" + d.MessageID
	}
	h := sha256.New()
	h.Write(d.Body)
	h.Write([]byte(fmt.Sprint(d.Headers[headerFailedAt], d.Headers[wire.HeaderError])))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// replayCopy is the item as it goes back to work: same body, id and tx,
// without the failure headers (it starts again at attempt 1), marked with
// its replay key.
func replayCopy(d *bus.Delivery, key string) bus.Message {
	h := make(map[string]any, len(d.Headers)+1)
	for k, v := range d.Headers {
		switch k {
		case wire.HeaderAttempt, wire.HeaderError, headerDeadReason, headerQueue, headerFailedAt, "x-death",
			"x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
			"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason":
			continue
		}
		h[k] = v
	}
	h[headerReplayKey] = key
	ct := d.ContentType
	if ct == "" {
		ct = wire.ContentTypeJSON
	}
	return bus.Message{
		Headers: h, ContentType: ct, MessageID: d.MessageID, CorrelationID: d.CorrelationID,
		Type: d.Type, AppID: d.AppID, Persistent: true, Mandatory: true, Timestamp: d.Timestamp, Body: d.Body,
	}
}

// replayStats is what a replay did.
type replayStats struct {
	Replayed  int    `json:"replayed"`  // moved to the work queue in this run
	Recovered int    `json:"recovered"` // finished from an interrupted run
	InTransit int    `json:"in_transit"`
	Left      int    `json:"left"` // still in the dead-letter queue
	Error     string `json:"error,omitempty"`
}

type pendingCopy struct {
	d    *bus.Delivery
	conf *bus.Confirmation
	key  string
}

func (a *app) dlqReplay(ctx context.Context, c command, b bus.Broker, queue string, window int) int {
	dead := queue + ".dead"
	journal := journalName(dead)
	var st replayStats
	err := a.replay(ctx, b, queue, dead, journal, window, &st)
	// Once the journal has no consumer, what this run still held is back
	// in it and the counts are complete. It is deleted only when this run
	// finished cleanly and it is empty: it may hold the only copy of an
	// item.
	_ = awaitIdle(context.Background(), b, journal, a.opts.timeout)
	if info, ierr := inspect(context.Background(), b, dead, a.opts.timeout); ierr == nil {
		st.Left = info.Messages
	}
	if info, ierr := inspect(context.Background(), b, journal, a.opts.timeout); ierr == nil {
		st.InTransit = info.Messages
		if err == nil && ctx.Err() == nil && info.Messages == 0 && info.Consumers == 0 {
			dctx, cancel := context.WithTimeout(context.Background(), a.opts.timeout)
			_ = b.DeleteQueue(dctx, journal)
			cancel()
		}
	}
	if err != nil {
		st.Error = a.redact(err.Error())
	}
	if a.opts.json {
		a.printJSON(st)
	} else {
		fmt.Fprintf(a.out, "replayed %d items from %s to %s", st.Replayed, dead, queue)
		if st.Recovered > 0 {
			fmt.Fprintf(a.out, ", finished %d from an interrupted replay", st.Recovered)
		}
		fmt.Fprintf(a.out, "; %d left in %s\n", st.Left, dead)
		if st.InTransit > 0 {
			fmt.Fprintf(a.errw, "patbus dlq: %d items are in transit in %s: run \"patbus dlq replay %s\" again to finish\n", st.InTransit, journal, queue)
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return exitInterrupted
	case err != nil:
		return a.fail(c, err)
	case ctx.Err() != nil:
		return exitInterrupted
	}
	return exitOK
}

// replay moves the items of dead back to queue through the journal
// (dlqCommand's usage text describes the design). ctx ending stops the
// intake; what was taken is finished.
func (a *app) replay(ctx context.Context, b bus.Broker, queue, dead, journal string, window int, st *replayStats) error {
	timeout := a.opts.timeout
	if err := checkQueue(ctx, b, queue, timeout); err != nil {
		return err
	}
	// A replay that was killed a moment ago may still hold the queues
	// until the broker notices: its unacknowledged items are back only
	// once it has no consumer left there, and only then are the counts
	// below complete.
	if err := awaitIdle(ctx, b, dead, timeout); err != nil {
		return err
	}
	dinfo, err := inspect(ctx, b, dead, timeout)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = b.DeclareQueue(dctx, bus.Queue{Name: journal, Durable: true, DeadLetterExchange: "", DeadLetterKey: queue})
	cancel()
	if err != nil {
		return fmt.Errorf("declare the replay journal %s: %w", journal, err)
	}
	if err := awaitIdle(ctx, b, journal, timeout); err != nil {
		return err
	}
	jinfo, err := inspect(ctx, b, journal, timeout)
	if err != nil {
		return err
	}
	if jinfo.Messages > 60000 {
		return fmt.Errorf("the replay journal %s holds %d items, more than one replay can take up", journal, jinfo.Messages)
	}
	// Consume the journal first: its leftovers (copies made by an
	// interrupted replay) come first, then the copies this run makes.
	jsub, err := b.Consume(ctx, journal, bus.ConsumeOptions{Prefetch: min(jinfo.Messages+window, 65535), Exclusive: true})
	if err != nil {
		return consumeErr(journal, err)
	}
	defer cancelSub(jsub)
	leftovers := map[string][]*bus.Delivery{}
	for i := 0; i < jinfo.Messages; i++ {
		select {
		case d, ok := <-jsub.Deliveries():
			if !ok {
				return fmt.Errorf("reading the journal: %w", jsub.Err())
			}
			k := wire.String(d.Headers, headerReplayKey)
			leftovers[k] = append(leftovers[k], d)
		case <-time.After(timeout):
			return fmt.Errorf("the journal %s did not deliver its %d items within %s", journal, jinfo.Messages, timeout)
		case <-ctx.Done():
			return nil
		}
	}
	dsub, err := b.Consume(ctx, dead, bus.ConsumeOptions{Prefetch: window, Exclusive: true})
	if err != nil {
		return consumeErr(dead, err)
	}
	defer cancelSub(dsub)

	fault := replayFault(a.getenv)
	pending := make(chan pendingCopy, window)
	acked := make(chan string, window)
	var mu sync.Mutex
	var firstErr error
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}

	// The confirmer: once a copy is in the journal, the original goes.
	confirmed := 0
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(acked)
		for p := range pending {
			// Not bounded by ctx: a copy on its way is waited for (the
			// broker resolves every confirmation; Close ends the rest).
			err := p.conf.Wait(context.Background())
			if err != nil || failed() {
				if err == nil {
					err = errors.New("stopped")
				}
				setErr(fmt.Errorf("copying to the journal %s: %w", journal, err))
				// The original stays; a copy that did arrive is a
				// leftover the next replay matches with it.
				_ = p.d.Nack(true)
				continue
			}
			confirmed++
			if fault > 0 && confirmed == fault {
				fmt.Fprintf(a.errw, "patbus dlq: fault injected: exiting after %d journal copies\n", confirmed)
				os.Exit(9)
			}
			if err := p.d.Ack(); err != nil {
				setErr(fmt.Errorf("removing an item from %s: %w", dead, err))
				continue
			}
			acked <- p.key
		}
	}()
	// The releaser: a journal copy whose original is gone is handed to
	// the broker, which dead-letters it to the work queue. Copies are
	// matched to removed originals by key, not by order: the broker may
	// enqueue copies published on different channels in another order.
	released := 0
	go func() {
		defer wg.Done()
		awaiting := map[string]int{}          // originals removed, copy not yet seen
		early := map[string][]*bus.Delivery{} // copies seen, original not yet removed
		waiting := 0
		ackedCh := acked
		for ackedCh != nil || waiting > 0 {
			select {
			case key, ok := <-ackedCh:
				if !ok {
					ackedCh = nil
					continue
				}
				if l := early[key]; len(l) > 0 {
					early[key] = l[1:]
					if err := l[0].Nack(false); err != nil {
						setErr(fmt.Errorf("releasing from the journal: %w", err))
						return
					}
					released++
					continue
				}
				awaiting[key]++
				waiting++
			case d, ok := <-jsub.Deliveries():
				if !ok {
					setErr(fmt.Errorf("the journal consumer stopped: %w", jsub.Err()))
					return
				}
				key := wire.String(d.Headers, headerReplayKey)
				if awaiting[key] == 0 {
					early[key] = append(early[key], d)
					continue
				}
				awaiting[key]--
				waiting--
				if err := d.Nack(false); err != nil {
					setErr(fmt.Errorf("releasing from the journal: %w", err))
					return
				}
				released++
			case <-time.After(timeout):
				if ackedCh == nil {
					setErr(fmt.Errorf("the journal did not deliver %d copies within %s", waiting, timeout))
					return
				}
			}
		}
	}()

	// The reader: every item that was in the dead-letter queue when the
	// replay started, at most.
	scanned := 0
	var matched []*bus.Delivery
read:
	for scanned < dinfo.Messages && !failed() {
		var d *bus.Delivery
		select {
		case x, ok := <-dsub.Deliveries():
			if !ok {
				setErr(fmt.Errorf("the consumer of %s stopped: %w", dead, dsub.Err()))
				break read
			}
			d = x
		case <-time.After(timeout):
			break read // fewer than counted: someone else took some
		case <-ctx.Done():
			break read
		}
		scanned++
		key := replayKey(d)
		if l := leftovers[key]; len(l) > 0 {
			// An interrupted replay copied this item to the journal but
			// did not remove it: drop the original, keep the copy.
			leftovers[key] = l[1:]
			if err := d.Ack(); err != nil {
				setErr(err)
				break
			}
			matched = append(matched, l[0])
			continue
		}
		pctx, pcancel := context.WithTimeout(context.Background(), timeout)
		conf, err := b.Publish(pctx, "", journal, replayCopy(d, key))
		pcancel()
		if err != nil {
			_ = d.Nack(true)
			setErr(fmt.Errorf("copying to the journal %s: %w", journal, err))
			break
		}
		pending <- pendingCopy{d: d, conf: conf, key: key}
	}
	close(pending)
	wg.Wait()
	// Leftovers whose originals are gone are released too, once the whole
	// dead-letter queue has been seen (an original could be further back).
	release := matched
	if scanned >= dinfo.Messages && !failed() && ctx.Err() == nil {
		for _, l := range leftovers {
			release = append(release, l...)
		}
	}
	for _, l := range release {
		if err := l.Nack(false); err != nil {
			setErr(fmt.Errorf("releasing from the journal: %w", err))
			break
		}
		st.Recovered++
	}
	st.Replayed = released
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

// awaitIdle waits, at most timeout, until queue has no consumer.
func awaitIdle(ctx context.Context, b bus.Broker, queue string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		info, err := inspect(ctx, b, queue, timeout)
		if err != nil || info.Consumers == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has %d consumers (another replay, or a worker?): %w", queue, info.Consumers, bus.ErrPrecondition)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cancelSub releases a consumer at once; what it holds unsettled goes
// back to its queue.
func cancelSub(s bus.Subscription) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Cancel(ctx)
}
