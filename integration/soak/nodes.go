package soak

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// AwaitNode waits until the node at url takes an AMQP connection (a node
// that was paused or restarted, or paused itself in a partition), trying
// every half second until ctx ends.
func AwaitNode(ctx context.Context, url string) error {
	var last error
	for {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		b, err := bus.Dial(dctx, []string{url}, bus.WithMaxReconnects(1), bus.WithDialTimeout(2*time.Second), bus.WithClassicQueues())
		cancel()
		if err == nil {
			_ = b.Close()
			return nil
		}
		last = err
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("soak: node %s does not take connections: %w (last error: %v)", url, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// WaitUntil calls cond every 50 ms until it reports true (it returns
// true) or d has passed (it returns cond's last answer).
func WaitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// partitionState asks node n (rabbitmqctl eval) which nodes it is
// partitioned from and how many nodes it sees running.
func partitionState(n *testenv.RabbitNode) (partitioned bool, running int, err error) {
	out, err := n.Ctl("eval", "{length(rabbit_node_monitor:partitions()), length(rabbit_nodes:all_running())}.")
	if err != nil {
		return false, 0, fmt.Errorf("soak: %s: rabbitmqctl eval: %v: %s", n.Name, err, strings.TrimSpace(out))
	}
	var parts int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "{%d,%d}", &parts, &running); err != nil {
		return false, 0, fmt.Errorf("soak: %s: unexpected answer %q", n.Name, out)
	}
	return parts > 0, running, nil
}

// Heal mends the cluster after node n resumed from a pause long enough
// for the others to take it for down (a partition). RabbitMQ's
// pause_minority heals a real partition because the minority pauses
// itself while it is cut off; a node that was frozen (SIGSTOP) could not,
// and after SIGCONT it runs on alone, with a view of the cluster's
// metadata (queues, bindings) of its own: a split brain that lasts until
// it is restarted. Heal does what an operator does: it waits until n
// takes connections, and if n reports a partition, restarts its
// application (stop_app, start_app), then waits until every node sees
// every other and none reports a partition. It reports whether it
// restarted n. Each check costs a rabbitmqctl run (about a second of
// CPU).
func Heal(ctx context.Context, c *testenv.RabbitCluster, n *testenv.RabbitNode) (restarted bool, err error) {
	if err := AwaitNode(ctx, n.URL()); err != nil {
		return false, err
	}
	// A resumed node finds its partition at once (the others have
	// already taken it for down), pauses itself for a moment and comes
	// back, still partitioned; a node paused for less than the
	// net_ticktime finds none.
	for i := 0; i < 3; i++ {
		parted, running, err := partitionState(n)
		if err != nil {
			// The node pauses its application while it finds out where it
			// stands (pause_minority): rabbitmqctl eval then fails with
			// noproc. Ask again, for as long as ctx allows.
			i--
			if !sleepCtx(ctx, time.Second) {
				return false, fmt.Errorf("%w (last answer: %v)", ctx.Err(), err)
			}
			continue
		}
		if parted {
			for _, args := range [][]string{{"stop_app"}, {"start_app"}} {
				if out, err := n.Ctl(args...); err != nil {
					return false, fmt.Errorf("soak: %s: rabbitmqctl %s: %v: %s", n.Name, args[0], err, strings.TrimSpace(out))
				}
			}
			restarted = true
			break
		}
		if running == len(c.Nodes) {
			break
		}
		if !sleepCtx(ctx, time.Second) {
			return false, ctx.Err()
		}
	}
	if err := AwaitNode(ctx, n.URL()); err != nil {
		return restarted, err
	}
	for {
		healed := true
		for _, m := range c.Nodes {
			parted, running, err := partitionState(m)
			if err != nil || parted || running != len(c.Nodes) {
				healed = false
				break
			}
		}
		if healed {
			return restarted, nil
		}
		if !sleepCtx(ctx, time.Second) {
			return restarted, fmt.Errorf("soak: the cluster does not heal after %s resumed: %w", n.Name, ctx.Err())
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
