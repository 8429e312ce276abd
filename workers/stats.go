package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patbus/patbus/bus"
)

// Stats is a snapshot of a work queue's depth, as Queue.Stats reads it
// from the broker. The counts are of ready items: those handed to a worker
// and not yet settled are not in them.
type Stats struct {
	// Queue is the work queue's name.
	Queue string
	// Ready is the number of items waiting in the work queue.
	Ready int
	// Consumers is the number of workers consuming the work queue, in
	// this process and in others.
	Consumers int
	// Retry holds one entry per retry queue, shortest delay first: the
	// items waiting out their backoff there.
	Retry []RetryStats
	// Retrying is the sum of the Retry entries' Ready.
	Retrying int
	// Dead is the number of items in the dead-letter queue.
	Dead int
}

// RetryStats is the depth of one retry queue.
type RetryStats struct {
	// Queue is the retry queue's name (Q.retry.<delay>).
	Queue string
	// Delay is the backoff step the queue waits out.
	Delay time.Duration
	// Ready is the number of items waiting in it.
	Ready int
}

// Stats reads the depth of the work queue, of each retry queue and of the
// dead-letter queue, and the work queue's consumers, from the broker
// (bus.QueueInspector; both patbus brokers implement it). It changes
// nothing and works whether or not a worker runs, also after Shutdown.
// The queues are read one after the other, not at one instant: an item
// that moves between them meanwhile may be counted twice or not at all.
//
// A broker that does not implement bus.QueueInspector gives an error
// wrapping ErrInvalidConfig and errors.ErrUnsupported; a queue that does
// not exist (deleted under the Queue) one wrapping bus.ErrNotFound.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	in, ok := q.b.(bus.QueueInspector)
	if !ok {
		return Stats{}, fmt.Errorf("workers: stats of %s: %w: the broker %T cannot inspect queues: %w",
			q.name, ErrInvalidConfig, q.b, errors.ErrUnsupported)
	}
	s := Stats{Queue: q.name}
	info, err := in.InspectQueue(ctx, q.name)
	if err != nil {
		return Stats{}, fmt.Errorf("workers: stats of %s: %w", q.name, err)
	}
	s.Ready, s.Consumers = info.Messages, info.Consumers
	seen := make(map[string]bool, len(q.retryQs))
	for _, d := range q.delays {
		name := q.retryQs[d]
		if seen[name] {
			continue
		}
		seen[name] = true
		info, err := in.InspectQueue(ctx, name)
		if err != nil {
			return Stats{}, fmt.Errorf("workers: stats of %s: %w", q.name, err)
		}
		s.Retry = append(s.Retry, RetryStats{Queue: name, Delay: d, Ready: info.Messages})
		s.Retrying += info.Messages
	}
	info, err = in.InspectQueue(ctx, q.dead)
	if err != nil {
		return Stats{}, fmt.Errorf("workers: stats of %s: %w", q.name, err)
	}
	s.Dead = info.Messages
	return s, nil
}
