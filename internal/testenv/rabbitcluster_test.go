package testenv_test

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/patbus/patbus/internal/testenv"
)

// TestRabbitCluster checks the cluster harness: three nodes that know
// each other, a quorum queue whose leader can be found and moves when its
// node is killed, a killed node that comes back into the cluster, and a
// paused node that answers again once resumed.
func TestRabbitCluster(t *testing.T) {
	c := testenv.StartRabbitCluster(t, 3)
	status := c.Nodes[0].MustCtl("cluster_status", "--formatter", "json")
	for _, n := range c.Nodes {
		if strings.Count(status, n.Name) < 2 { // a disc node and a running node
			t.Fatalf("cluster_status does not list %s as a running member:\n%s", n.Name, status)
		}
	}
	// Every node takes AMQP connections and says which node it is.
	for _, n := range c.Nodes {
		conn, err := amqp.Dial(n.URL())
		if err != nil {
			t.Fatalf("dial %s: %v", n.Name, err)
		}
		if got, _ := conn.Properties["node"].(string); got != n.Name {
			t.Errorf("node %s announces itself as %q", n.Name, got)
		}
		_ = conn.Close()
	}
	conn, err := amqp.Dial(c.Nodes[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const q = "patbus.testenv.cluster"
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	leader, err := c.AwaitQueueLeader(q, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var others []*testenv.RabbitNode
	for _, n := range c.Nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	killedAt := time.Now()
	leader.Kill9()
	var next *testenv.RabbitNode
	deadline := time.Now().Add(60 * time.Second)
	for next == nil || next == leader {
		if time.Now().After(deadline) {
			t.Fatalf("no new leader for %s after its leader %s was killed", q, leader.Name)
		}
		next, err = c.AwaitQueueLeader(q, time.Until(deadline), others...)
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("leader %s killed; %s leads %v later", leader.Name, next.Name, time.Since(killedAt).Round(time.Millisecond))
	restartAt := time.Now()
	leader.Restart()
	t.Logf("%s restarted in %v", leader.Name, time.Since(restartAt).Round(time.Millisecond))
	if out := leader.MustCtl("cluster_status", "--formatter", "json"); strings.Count(out, others[0].Name) < 2 {
		t.Errorf("the restarted node is not back in the cluster:\n%s", out)
	}

	// A paused node takes a TCP connection but never answers; resumed, it
	// does again.
	p := others[0]
	p.Pause()
	if conn, err := amqp.DialConfig(p.URL(), amqp.Config{Dial: amqp.DefaultDial(time.Second)}); err == nil {
		_ = conn.Close()
		t.Errorf("dial %s while paused succeeded", p.Name)
	}
	p.Resume()
	if conn, err := amqp.Dial(p.URL()); err != nil {
		t.Errorf("dial %s after Resume: %v", p.Name, err)
	} else {
		_ = conn.Close()
	}
}
