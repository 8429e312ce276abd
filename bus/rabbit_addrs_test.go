package bus_test

import (
	"context"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
)

// TestRabbitDialStartsAtRandomAddress: with several addresses that all
// answer, connections do not all go to the first one: each dial starts at
// a random address, so that clients spread over a cluster's nodes.
func TestRabbitDialStartsAtRandomAddress(t *testing.T) {
	target, base := brokerHostPort(t)
	a, b := newNodeProxy(t, target), newNodeProxy(t, target)
	addrs := []string{a.url(base), b.url(base)}
	events := &eventLog{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const dials = 12
	for i := 0; i < dials; i++ {
		r, err := bus.Dial(ctx, addrs, bus.WithLogger(slog.New(events)))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		_ = r.Close()
	}
	if a.count() == 0 || b.count() == 0 {
		t.Errorf("%d dials (two connections each): %d connections to the first address, %d to the second; want both used",
			dials, a.count(), b.count())
	}
	// One line per connection names the address and the cluster.
	connected := events.all("connected", time.Time{})
	if len(connected) != 2*dials {
		t.Errorf("%d \"connected\" lines for %d connections", len(connected), 2*dials)
	}
	for _, e := range connected {
		if e.kv["addr"] != shownURL(a.addr(), base) && e.kv["addr"] != shownURL(b.addr(), base) {
			t.Errorf("connected line names addr %q", e.kv["addr"])
		}
		if e.kv["cluster"] == "" {
			t.Errorf("connected line without the cluster name: %s", e.attrs)
		}
	}
}

// shownURL is how the log shows the test broker's URL (base) through a
// proxy at hostport: the password replaced.
func shownURL(hostport string, base *url.URL) string {
	u := *base
	u.Host = hostport
	return u.Redacted()
}

// TestRabbitFailoverToLiveAddress: when the address a client is connected
// to dies, the client reconnects to another one, its consumers resume and
// publishing goes on; the log names the new address once per connection.
func TestRabbitFailoverToLiveAddress(t *testing.T) {
	target, base := brokerHostPort(t)
	a, b := newNodeProxy(t, target), newNodeProxy(t, target)
	events := &eventLog{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := bus.Dial(ctx, []string{a.url(base), b.url(base)}, bus.WithLogger(slog.New(events)),
		bus.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	q, err := r.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.Consume(ctx, q, bus.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip := func(body string) {
		t.Helper()
		if err := bus.PublishAndWait(ctx, r, "", q, bus.Message{Body: []byte(body), Mandatory: true}); err != nil {
			t.Fatalf("publish %s: %v", body, err)
		}
		if d := recvWithin(t, sub, 10*time.Second); string(d.Body) != body {
			t.Fatalf("got %q, want %q", d.Body, body)
		} else {
			_ = d.Ack()
		}
	}
	roundTrip("before")
	// Take down whichever address holds connections; the other one stays.
	dead, live := a, b
	if a.count() == 0 {
		dead, live = b, a
	}
	moved := dead.count()
	downAt := time.Now()
	dead.setDown(true)
	got := events.awaitN("connected", downAt, moved, 20*time.Second)
	if len(got) != moved {
		t.Fatalf("%d connections reconnected, want %d", len(got), moved)
	}
	for _, e := range got {
		if e.kv["addr"] != shownURL(live.addr(), base) {
			t.Errorf("reconnected to %q, want the live address %q", e.kv["addr"], shownURL(live.addr(), base))
		}
	}
	roundTrip("after")
	if err := sub.Err(); err != nil {
		t.Errorf("subscription ended: %v", err)
	}
	_ = sub.Cancel(ctx)
}
