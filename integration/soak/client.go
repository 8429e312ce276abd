package soak

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patbus/patbus/bus"
)

// BusOptions are the options every client of a run dials with, besides
// its logger: a client notices a dead or silent node within a few
// seconds (a 2 s heartbeat, so three missed beats take 4 to 6 s), reconnects
// quickly, and publishes again what a silent node left unconfirmed for
// 5 s. Queue types are left to the default, which for several addresses
// is quorum.
func BusOptions() []bus.Option {
	return []bus.Option{
		bus.WithHeartbeat(2 * time.Second),
		bus.WithDialTimeout(2 * time.Second),
		bus.WithReconnectBackoff(50*time.Millisecond, time.Second),
		bus.WithConfirmTimeout(5 * time.Second),
	}
}

// Publishing channels and confirm window of a client (the bus defaults):
// the messages one client can have in flight, each of which a fault may
// make it publish again.
const (
	PublishChannels = 4
	ConfirmWindow   = 256
)

// Client is one program's connection to the cluster: a broker dialled
// with every node's address, and the log of what it and the components
// on it said.
type Client struct {
	Name   string
	Broker *bus.Rabbit
	Log    *Log
	// Logger writes to Log; give it to the components on the broker.
	Logger *slog.Logger
}

// Dial dials a client named name with every address in urls. Records at
// or above level go on to next (nil: nowhere).
func Dial(ctx context.Context, name string, urls []string, next slog.Handler, level slog.Level) (*Client, error) {
	l := NewLog(name, next, level)
	logger := slog.New(l).With("client", name)
	opts := append(BusOptions(), bus.WithLogger(logger), bus.WithConnectionName("soak-"+name))
	b, err := bus.Dial(ctx, urls, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{Name: name, Broker: b, Log: l, Logger: logger}, nil
}

// DialOn dials like Dial until both of the client's connections reach the
// node listening on hostport ("127.0.0.1:port"), closing the other tries:
// a dial starts at a random address, and a test that breaks one node
// wants to know who was on it. It gives up after 100 tries.
func DialOn(ctx context.Context, name string, urls []string, hostport string, next slog.Handler, level slog.Level) (*Client, error) {
	for try := 1; try <= 100; try++ {
		c, err := Dial(ctx, name, urls, next, level)
		if err != nil {
			return nil, err
		}
		pub, sub := c.Log.Addrs()
		if strings.Contains(pub, hostport) && strings.Contains(sub, hostport) {
			return c, nil
		}
		_ = c.Close()
	}
	return nil, fmt.Errorf("soak: %s: no dial reached %s in 100 tries", name, hostport)
}

// Nodes returns the nodes the client's publishing and consuming
// connections reached last.
func (c *Client) Nodes() (pub, sub string) { return c.Log.Nodes() }

// Close closes the broker.
func (c *Client) Close() error { return c.Broker.Close() }

// Log is a slog.Handler that keeps what one client logged: the node and
// address each of its connections reached last, how many connections it
// made, and the count of each warning and error message; records at or
// above its level also go on to another handler. It is safe for
// concurrent use.
type Log struct {
	name  string
	next  slog.Handler
	level slog.Level

	mu       sync.Mutex
	node     map[string]string // role → node
	addr     map[string]string // role → address
	connects int
	counts   map[string]int // "WARN message" → n
}

// NewLog returns a Log that passes records at or above level to next
// (nil: to nobody).
func NewLog(name string, next slog.Handler, level slog.Level) *Log {
	return &Log{name: name, next: next, level: level, node: map[string]string{}, addr: map[string]string{}, counts: map[string]int{}}
}

// Enabled implements slog.Handler: every record is kept.
func (l *Log) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (l *Log) Handle(ctx context.Context, r slog.Record) error {
	return l.handle(ctx, r, nil)
}

func (l *Log) handle(ctx context.Context, r slog.Record, with []slog.Attr) error {
	if r.Message == "connected" {
		var role, node, addr string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "role":
				role = a.Value.String()
			case "node":
				node = a.Value.String()
			case "addr":
				addr = a.Value.String()
			}
			return true
		})
		l.mu.Lock()
		l.node[role], l.addr[role] = node, addr
		l.connects++
		l.mu.Unlock()
	}
	if r.Level >= slog.LevelWarn {
		l.mu.Lock()
		l.counts[r.Level.String()+" "+r.Message]++
		l.mu.Unlock()
	}
	if l.next != nil && r.Level >= l.level {
		h := l.next
		if len(with) > 0 {
			h = h.WithAttrs(with)
		}
		return h.Handle(ctx, r)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (l *Log) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logWith{l: l, attrs: attrs}
}

// WithGroup implements slog.Handler (groups are flattened).
func (l *Log) WithGroup(string) slog.Handler { return l }

// logWith is a Log with attributes added by Logger.With.
type logWith struct {
	l     *Log
	attrs []slog.Attr
}

func (w *logWith) Enabled(ctx context.Context, lv slog.Level) bool { return true }
func (w *logWith) Handle(ctx context.Context, r slog.Record) error {
	return w.l.handle(ctx, r, w.attrs)
}
func (w *logWith) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logWith{l: w.l, attrs: append(append([]slog.Attr(nil), w.attrs...), attrs...)}
}
func (w *logWith) WithGroup(string) slog.Handler { return w }

// Nodes returns the node names the publishing and consuming connections
// reached last.
func (l *Log) Nodes() (pub, sub string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.node["pub"], l.node["sub"]
}

// Addrs returns the addresses the publishing and consuming connections
// reached last.
func (l *Log) Addrs() (pub, sub string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr["pub"], l.addr["sub"]
}

// Connects returns how many connections the client made.
func (l *Log) Connects() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connects
}

// Counts returns the warnings and errors logged, by level and message.
func (l *Log) Counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

// MergeCounts adds the counts of several logs.
func MergeCounts(logs ...*Log) map[string]int {
	out := map[string]int{}
	for _, l := range logs {
		for k, v := range l.Counts() {
			out[k] += v
		}
	}
	return out
}

// SortedCounts formats counts one per line, most frequent first.
func SortedCounts(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%6d  %s", m[k], k)
	}
	return out
}
