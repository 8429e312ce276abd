package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RabbitCluster is a RabbitMQ cluster of private nodes that one test
// starts, breaks and tears down: every node on 127.0.0.1 with its own node
// name, AMQP and distribution ports (no management plugin), data and log
// directories, and one Erlang cookie for all of them (written to each
// node's HOME), joined with rabbitmqctl join_cluster. No Docker is
// involved. Its nodes are RabbitNodes: Kill9, Restart, Pause and Resume
// break and mend one of them. A node paused for longer than clusterTick
// is cut off from the others as by a network partition.
type RabbitCluster struct {
	t     testing.TB
	Nodes []*RabbitNode
	// StartedIn is how long StartRabbitCluster took.
	StartedIn time.Duration
}

// clusterTick is the net_ticktime of a cluster's nodes: a node silent for
// between 0.75 and 1.25 times this long (paused, say) is taken for down by
// the others, whose quorum queues then elect new leaders, and a network
// partition begins; it ends when the node answers again, the partitioned
// node pausing itself until it sees the majority (pause_minority). The
// default of 60 s would make such tests take minutes.
const clusterTick = 10 * time.Second

// StartRabbitCluster starts a cluster of size nodes (at least 2) and
// registers its end, and the removal of its files, with t.Cleanup: the
// nodes are killed, since their data goes anyway. Without rabbitmq-server
// installed it skips the test, or fails it where Required() is true.
//
// To be quick on a small machine, the nodes boot at the same time; then
// every node but the first leaves its fresh single-node cluster and joins
// the first (stop_app, join_cluster, start_app), all joining nodes at
// once. Each rabbitmqctl run starts an Erlang VM of its own, about a
// second of CPU, so the harness runs no more of them than that and waits
// for a node by connecting to its AMQP port instead.
func StartRabbitCluster(t testing.TB, size int) *RabbitCluster {
	t.Helper()
	if size < 2 {
		t.Fatalf("testenv: a cluster needs at least 2 nodes, not %d", size)
	}
	start := time.Now()
	cookie := strings.ToUpper(randomHex(10))
	c := &RabbitCluster{t: t}
	for i := 0; i < size; i++ {
		c.Nodes = append(c.Nodes, newRabbitNode(t, fmt.Sprintf("cluster%d", i+1), cookie, clusterTick))
	}
	if err := c.parallel(c.Nodes, func(n *RabbitNode) error { return n.bootAfresh() }); err != nil {
		t.Fatal(err)
	}
	booted := time.Since(start)
	first := c.Nodes[0]
	if err := c.parallel(c.Nodes[1:], func(n *RabbitNode) error {
		return n.join(first)
	}); err != nil {
		t.Fatal(err)
	}
	c.StartedIn = time.Since(start)
	t.Logf("testenv: RabbitMQ cluster of %d nodes up in %v (nodes booted in %v, joined in %v): %s",
		size, c.StartedIn.Round(time.Millisecond), booted.Round(time.Millisecond),
		(c.StartedIn - booted).Round(time.Millisecond), strings.Join(c.names(), ", "))
	return c
}

// joinAttempts bounds the attempts of a node to join the cluster. A
// fresh node's start_app has been seen to fail after its join_cluster
// (mnesia, badmatch) while its peers joined at the same moment, and to
// leave the node unable to start again (has_no_disc); started afresh, it
// joins.
const joinAttempts = 3

// join makes n, booted, leave its own single-node cluster and join
// first's. When a step fails, n is killed, its data wiped and booted again,
// first forgets it, and the join starts over, joinAttempts times at most.
func (n *RabbitNode) join(first *RabbitNode) error {
	var errs []string
	for attempt := 1; ; attempt++ {
		err := func() error {
			for _, args := range [][]string{{"stop_app"}, {"join_cluster", first.Name}, {"start_app"}} {
				if out, err := n.Ctl(args...); err != nil {
					return fmt.Errorf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			return n.awaitAMQP(nodeBootTimeout)
		}()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Sprintf("attempt %d: %v", attempt, err))
		if attempt == joinAttempts {
			return fmt.Errorf("testenv: %s: joining %s: %s", n.Name, first.Name, strings.Join(errs, "\n"))
		}
		if err := n.wipe(); err != nil {
			return err
		}
		_, _ = first.Ctl("forget_cluster_node", n.Name) // it may not know n yet
		if err := n.bootAfresh(); err != nil {
			return err
		}
	}
}

// wipe kills n and deletes its data, so that it boots as a new node.
func (n *RabbitNode) wipe() error {
	n.kill()
	mnesia := filepath.Join(n.dir, "mnesia")
	if err := os.RemoveAll(mnesia); err != nil {
		return err
	}
	return os.MkdirAll(mnesia, 0o700)
}

// bootAfresh launches n and waits for it, up to joinAttempts times: a
// node can die while starting when another process takes one of the free
// ports it was given before it listens; it then boots again on new ports,
// with its data wiped.
func (n *RabbitNode) bootAfresh() error {
	var errs []string
	for attempt := 1; ; attempt++ {
		err := n.launch()
		if err == nil {
			err = n.awaitAMQP(nodeBootTimeout)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Sprintf("attempt %d: %v", attempt, err))
		if attempt == joinAttempts {
			return fmt.Errorf("testenv: %s: %s", n.Name, strings.Join(errs, "\n"))
		}
		if err := n.wipe(); err != nil {
			return err
		}
		port, err := pickPort()
		if err != nil {
			return err
		}
		dist, err := pickPort()
		if err != nil {
			return err
		}
		n.setPorts(port, dist)
	}
}

// parallel runs f on every node at once and returns the errors joined.
func (c *RabbitCluster) parallel(nodes []*RabbitNode, f func(n *RabbitNode) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(n)
		}()
	}
	wg.Wait()
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	return nil
}

func (c *RabbitCluster) names() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Name
	}
	return out
}

// URLs returns the AMQP addresses of the nodes, in node order, with the
// default guest user and the vhost "/".
func (c *RabbitCluster) URLs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.URL()
	}
	return out
}

// Node returns the node with the Erlang node name name, or nil.
func (c *RabbitCluster) Node(name string) *RabbitNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeOn returns the node whose AMQP port is in addr (a URL or
// host:port), or nil.
func (c *RabbitCluster) NodeOn(addr string) *RabbitNode {
	for _, n := range c.Nodes {
		if strings.Contains(addr, fmt.Sprintf("127.0.0.1:%d", n.Port)) {
			return n
		}
	}
	return nil
}

// QueueLeader returns the node that hosts the leader of the quorum queue
// in the vhost "/", asking ask (any running node) with rabbitmqctl
// list_queues name leader. It is an error when the queue is not listed or
// has no leader (an election is under way).
func (c *RabbitCluster) QueueLeader(ask *RabbitNode, queue string) (*RabbitNode, error) {
	out, err := ask.Ctl("list_queues", "-q", "--no-table-headers", "name", "leader")
	if err != nil {
		return nil, fmt.Errorf("testenv: list_queues on %s: %v\n%s", ask.Name, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) == 2 && f[0] == queue {
			if n := c.Node(f[1]); n != nil {
				return n, nil
			}
			return nil, fmt.Errorf("testenv: queue %s has leader %q, not a node of the cluster", queue, f[1])
		}
	}
	return nil, fmt.Errorf("testenv: queue %s not listed by %s:\n%s", queue, ask.Name, out)
}

// AwaitQueueLeader asks the running nodes in turn until one names the
// leader of queue, for up to d, and returns it.
func (c *RabbitCluster) AwaitQueueLeader(queue string, d time.Duration, running ...*RabbitNode) (*RabbitNode, error) {
	if len(running) == 0 {
		running = c.Nodes
	}
	deadline := time.Now().Add(d)
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		leader, err := c.QueueLeader(running[i%len(running)], queue)
		if err == nil {
			return leader, nil
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("testenv: no leader for %s within %v: %v", queue, d, last)
}
