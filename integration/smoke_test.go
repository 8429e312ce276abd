package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/integration/components"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(components.Main(m)) }

// newID returns a random hex string that keeps names of one run apart.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitFor calls cond every 50ms until it reports true or the deadline of
// ctx; then it fails the test with what.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// TestSmokeRabbitMQ publishes a message through package bus on the real
// broker and consumes it back.
func TestSmokeRabbitMQ(t *testing.T) {
	b := testenv.Rabbit(t, bus.WithConnectionName("patbus-integration-smoke"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := newID()
	q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.integration.smoke." + id, AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	testenv.DeleteQueues(t, b, q)
	sub, err := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sub.Cancel(ctx); err != nil {
			t.Errorf("cancel: %v", err)
		}
	}()
	msg := bus.Message{
		MessageID: id,
		Headers:   map[string]any{"smoke": "yes"},
		Mandatory: true,
		Body:      []byte("hello " + id),
	}
	if err := bus.PublishAndWait(ctx, b, "", q, msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case d, ok := <-sub.Deliveries():
		if !ok {
			t.Fatalf("deliveries closed: %v", sub.Err())
		}
		if d.MessageID != id || string(d.Body) != "hello "+id || d.Headers["smoke"] != "yes" {
			t.Errorf("got id %q, body %q, headers %v; want what was published", d.MessageID, d.Body, d.Headers)
		}
		if err := d.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no delivery within 30 seconds")
	}
}

// TestSmokeConsul writes and reads a key and registers an instance with a
// version and a TTL check, as the service runtime does, on the real agent.
func TestSmokeConsul(t *testing.T) {
	c, err := api.NewClient(&api.Config{Address: testenv.ConsulAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	w := (&api.WriteOptions{}).WithContext(ctx)

	leader, err := c.Status().LeaderWithQueryOptions(q)
	if err != nil || leader == "" {
		t.Fatalf("leader %q: %v", leader, err)
	}
	self, err := c.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Consul %v at %s, leader %s", self["Config"]["Version"], testenv.ConsulAddr(t), leader)

	id := newID()
	key := "patbus/integration/smoke/" + id
	if _, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte("v1")}, w); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	t.Cleanup(func() { _, _ = c.KV().Delete(key, nil) })
	pair, _, err := c.KV().Get(key, q)
	if err != nil || pair == nil || string(pair.Value) != "v1" {
		t.Fatalf("kv get: %+v, %v; want v1", pair, err)
	}

	name := "patbus-smoke-" + id
	checkID := name + "-ttl"
	reg := &api.AgentServiceRegistration{
		ID:   name + "-1",
		Name: name,
		Meta: map[string]string{"version": "1.2.3"},
		Check: &api.AgentServiceCheck{
			CheckID:                        checkID,
			TTL:                            "30s",
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	if err := c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		t.Fatalf("register: %v", err)
	}
	t.Cleanup(func() { _ = c.Agent().ServiceDeregister(reg.ID) })
	passing := func() ([]*api.ServiceEntry, error) {
		entries, _, err := c.Health().Service(name, "", true, q)
		return entries, err
	}
	// A TTL check starts critical: the instance is not passing yet.
	if entries, err := passing(); err != nil || len(entries) != 0 {
		t.Fatalf("before the first pass: %d passing instances, %v; want none", len(entries), err)
	}
	if err := c.Agent().UpdateTTLOpts(checkID, "ok", api.HealthPassing, q); err != nil {
		t.Fatalf("pass ttl: %v", err)
	}
	waitFor(ctx, t, "the instance passes", func() (bool, error) {
		entries, err := passing()
		return len(entries) == 1 && entries[0].Service.ID == reg.ID && entries[0].Service.Meta["version"] == "1.2.3", err
	})
	services, _, err := c.Catalog().Services(q)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services[name]; !ok {
		t.Errorf("catalog services %v lack %s", slices.Collect(maps.Keys(services)), name)
	}

	if err := c.Agent().ServiceDeregisterOpts(reg.ID, q); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	waitFor(ctx, t, "the instance is gone", func() (bool, error) {
		entries, _, err := c.Health().Service(name, "", false, q)
		return err == nil && len(entries) == 0, err
	})
}
