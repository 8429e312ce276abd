package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/pubsub"
)

func tailCommand() command {
	return command{
		name:    "tail",
		summary: "watch acts and events as they travel",
		run:     runTail,
		usage: `Usage: patbus tail [flags] [PATTERN]

Watches the bus: a tap queue of its own (exclusive, auto-delete: it goes
away with the command, Ctrl-C or not) bound on the act exchange and the
events exchange with PATTERN's binding key (every message by default).
Each message prints as one line: time, kind (act or event), pattern, the
service@version an act was routed to, tx id, and a preview of the body.
--json prints one JSON object per line instead. --tx follows one request's
flow: every act and event of that tx id, across services.

The tap never slows the traffic it watches: it holds at most --buffer
messages and drops its oldest when it falls behind, and says how many it
dropped.

What tail sees and what it cannot see:
  - every act made the default way: it is a publish on the act exchange;
  - every event emitted on the events exchange;
  - not the acts of callers made with services.WithDirectToQueue: they are
    published straight to the service version's queue through the default
    exchange, which no queue can be bound to (tail names the services such
    acts can reach when it starts);
  - not the replies: they go to the caller's reply queue through the default
    exchange as well. With --firehose tail reads RabbitMQ's firehose
    (amq.rabbitmq.trace) instead, which sees replies and direct acts too;
    an operator must turn it on first (rabbitmqctl trace_on -p VHOST), and
    it costs the broker for every message of the vhost;
  - not work items (default exchange), except with --firehose.

Examples:
  patbus tail
  patbus tail role:user
  patbus tail 'role:user,cmd:log*'
  patbus tail --tx 4bf92f3577b34da6a3ce929d0e0e4736
  patbus tail --json role:order | jq -c 'select(.kind=="event")'
  patbus tail --firehose --tx 4bf92f3577b34da6a3ce929d0e0e4736`,
	}
}

// tailLine is one message as tail shows it (--json prints it as it is).
type tailLine struct {
	Time          time.Time `json:"time"`
	Kind          string    `json:"kind"`
	Pattern       string    `json:"pattern,omitempty"`
	Service       string    `json:"service,omitempty"`
	Version       string    `json:"version,omitempty"`
	Tx            string    `json:"tx,omitempty"`
	ID            string    `json:"id,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	Exchange      string    `json:"exchange"`
	RoutingKey    string    `json:"routing_key"`
	Status        string    `json:"status,omitempty"`
	Body          any       `json:"body,omitempty"`
	Dropped       int64     `json:"dropped,omitempty"`
}

type tailer struct {
	a        *app
	pattern  patterns.Pattern
	tx       string
	full     bool
	count    int
	shown    int
	firehose bool
	queue    string // the tap queue
	// corr maps the correlation id of an act seen to its tx and pattern,
	// so that a reply seen through the firehose can be tied to its act.
	corr map[string][2]string
}

func runTail(a *app, ctx context.Context, args []string) int {
	c := tailCommand()
	fs := a.flagSet(c, true)
	tx := fs.String("tx", "", "show only the acts and events of this tx `id`")
	buffer := fs.Int("buffer", 10000, "messages the tap holds at most before it drops its oldest")
	count := fs.Int("n", 0, "stop after this many messages (0: until Ctrl-C)")
	full := fs.Bool("full", false, "print whole bodies, not a one-line preview")
	firehose := fs.Bool("firehose", false, "read RabbitMQ's firehose (amq.rabbitmq.trace): replies and direct acts too (rabbitmqctl trace_on -p VHOST first)")
	events := fs.String("events-exchange", pubsub.EventsExchange, "the events exchange")
	quiet := fs.Bool("quiet", false, "do not print what the tap cannot see at the start")
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return a.usageErr(c, "want at most one PATTERN, got %d arguments", len(pos))
	}
	if *buffer < 1 {
		return a.usageErr(c, "--buffer must be at least 1")
	}
	t := &tailer{a: a, tx: *tx, full: *full, count: *count, firehose: *firehose, corr: map[string][2]string{}}
	key := "#"
	if len(pos) == 1 {
		p, err := parsePattern("pattern", pos[0])
		if err != nil {
			return a.fail(c, err)
		}
		t.pattern = p
		if key, err = patterns.BindingKey(p); err != nil {
			return a.fail(c, inputErrorf("pattern %s: %v", p, err))
		}
	}
	b, err := a.dialForever(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	defer b.Close()
	var dropped atomic.Int64
	sub, drops, err := t.tap(ctx, b, *events, key, *buffer)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		return a.fail(c, err)
	}
	go func() {
		for range drops.Deliveries() {
			dropped.Add(1)
		}
	}()
	if !*quiet && !a.opts.json {
		t.notice(ctx, b, *events, key)
	} else {
		fmt.Fprintf(a.errw, "patbus tail: watching for %s through %s\n", key, t.queue)
	}
	reported := int64(0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.stop(sub, drops)
			return exitOK
		case <-tick.C:
			if n := dropped.Load(); n > reported {
				t.reportDrops(n - reported)
				reported = n
			}
		case d, ok := <-sub.Deliveries():
			if !ok {
				if err := sub.Err(); err != nil && ctx.Err() == nil {
					return a.fail(c, fmt.Errorf("the tap stopped: %w", err))
				}
				return exitOK
			}
			line, show := t.decode(d)
			_ = d.Ack()
			if !show {
				continue
			}
			if n := dropped.Load(); n > reported {
				t.reportDrops(n - reported)
				reported = n
			}
			t.print(line)
			t.shown++
			if t.count > 0 && t.shown >= t.count {
				t.stop(sub, drops)
				return exitOK
			}
		}
	}
}

// tap declares the tap queue and the queue its drops go to, binds the tap
// and starts consuming both. Both queues are exclusive and auto-delete:
// they go away with the connection however the command ends.
func (t *tailer) tap(ctx context.Context, b bus.Broker, events, key string, buffer int) (bus.Subscription, bus.Subscription, error) {
	sub, drops, q, err := t.tapQueue(ctx, b, events, key, buffer)
	t.queue = q
	return sub, drops, err
}

func (t *tailer) tapQueue(ctx context.Context, b bus.Broker, events, key string, buffer int) (bus.Subscription, bus.Subscription, string, error) {
	a := t.a
	timeout := a.opts.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The drops queue: what the tap drops (its oldest, when full) is
	// dead-lettered here, only to be counted.
	dq, err := b.DeclareQueue(sctx, bus.Queue{Exclusive: true, AutoDelete: true,
		Args: map[string]any{"x-max-length": int64(10000), "x-overflow": "drop-head"}})
	if err != nil {
		return nil, nil, "", fmt.Errorf("declare the tap's drops queue: %w", err)
	}
	q, err := b.DeclareQueue(sctx, bus.Queue{Exclusive: true, AutoDelete: true,
		DeadLetterExchange: "", DeadLetterKey: dq,
		Args: map[string]any{"x-max-length": int64(buffer), "x-overflow": "drop-head"}})
	if err != nil {
		return nil, nil, "", fmt.Errorf("declare the tap queue: %w", err)
	}
	var binds []bus.Binding
	if t.firehose {
		// The firehose publishes a copy of every publish with the key
		// "publish.<exchange>": the default exchange's is "publish.".
		for _, ex := range []string{a.opts.act, events, ""} {
			binds = append(binds, bus.Binding{Exchange: "amq.rabbitmq.trace", Queue: q, Key: "publish." + ex})
		}
	} else {
		for _, ex := range []string{a.opts.act, events} {
			if err := b.DeclareExchange(sctx, bus.Exchange{Name: ex, Kind: bus.Topic, Durable: true}); err != nil {
				return nil, nil, "", fmt.Errorf("declare exchange %s: %w", ex, err)
			}
			binds = append(binds, bus.Binding{Exchange: ex, Queue: q, Key: key})
		}
	}
	for _, bd := range binds {
		if err := b.Bind(sctx, bd); err != nil {
			return nil, nil, "", fmt.Errorf("bind the tap to %s: %w", bd.Exchange, err)
		}
	}
	drops, err := b.Consume(sctx, dq, bus.ConsumeOptions{NoAck: true, Exclusive: true})
	if err != nil {
		return nil, nil, "", err
	}
	sub, err := b.Consume(sctx, q, bus.ConsumeOptions{Prefetch: 256, Exclusive: true})
	if err != nil {
		_ = drops.Cancel(context.Background())
		return nil, nil, "", err
	}
	return sub, drops, q, nil
}

func (t *tailer) stop(sub, drops bus.Subscription) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = sub.Cancel(ctx)
	_ = drops.Cancel(ctx)
}

// notice says on stderr what the tap watches and what it cannot see,
// naming the services whose acts can bypass the act exchange.
func (t *tailer) notice(ctx context.Context, b bus.Broker, events, key string) {
	a := t.a
	what := fmt.Sprintf("%s and %s", a.opts.act, events)
	if t.firehose {
		what = "the firehose (amq.rabbitmq.trace: acts, replies, events, work items)"
	}
	fmt.Fprintf(a.errw, "patbus tail: watching %s for %s%s through %s (Ctrl-C stops)\n", what, key, map[bool]string{true: ", tx " + t.tx, false: ""}[t.tx != ""], t.queue)
	cl, err := a.client(b)
	if err != nil {
		return
	}
	defer cl.Close()
	cat, _ := loadCatalog(ctx, cl, catalogSettle)
	var names []string
	for _, e := range others(cat) {
		names = append(names, e.Service+"@"+e.Version+" ("+a.actQueue(e)+")")
	}
	if t.firehose {
		fmt.Fprintln(a.errw, "patbus tail: the firehose shows nothing until an operator runs: rabbitmqctl trace_on -p VHOST")
		return
	}
	fmt.Fprintln(a.errw, "patbus tail: not shown: replies (they go to reply queues through the default exchange), and acts of callers made with services.WithDirectToQueue")
	if len(names) > 0 {
		fmt.Fprintf(a.errw, "patbus tail: such direct acts can reach, unseen: %s\n", strings.Join(names, ", "))
	}
}

func (t *tailer) reportDrops(n int64) {
	a := t.a
	if a.opts.json {
		a.printJSON(tailLine{Time: time.Now(), Kind: "dropped", Dropped: n})
		return
	}
	fmt.Fprintf(a.errw, "%s\n", a.paint(colYellow, fmt.Sprintf("patbus tail: dropped %d messages: the tap fell behind and dropped its oldest", n)))
}

// decode turns a delivery into a line, and says whether it passes the
// filters (the pattern's globs, --tx).
func (t *tailer) decode(d *bus.Delivery) (tailLine, bool) {
	a := t.a
	l := tailLine{Time: time.Now(), Exchange: d.Exchange, RoutingKey: d.RoutingKey, ID: d.MessageID, CorrelationID: d.CorrelationID}
	headers := d.Headers
	exchange, key := d.Exchange, d.RoutingKey
	appID, typ := d.AppID, d.Type
	if t.firehose {
		exchange, key, headers, appID, typ = t.unwrapTrace(&l, d.Headers)
		l.Exchange, l.RoutingKey = exchange, key
	}
	f := wire.Read(headers)
	l.Tx, l.Status = f.Tx, f.Status
	switch {
	case exchange == a.opts.act:
		l.Kind = "act"
		l.Pattern = f.Pattern
		if l.Pattern == "" {
			l.Pattern = typ
		}
		l.Service, l.Version = targetOf(key)
		if t.firehose && l.CorrelationID != "" {
			t.remember(l.CorrelationID, l.Tx, l.Pattern)
		}
	case exchange == "" && strings.HasPrefix(key, a.opts.act+"."):
		l.Kind = "act"
		l.Pattern = f.Pattern
		if l.Pattern == "" {
			l.Pattern = typ
		}
		l.Service, l.Version = wire.SplitAppID(strings.TrimPrefix(key, a.opts.act+"."))
		if t.firehose && l.CorrelationID != "" {
			t.remember(l.CorrelationID, l.Tx, l.Pattern)
		}
	case exchange == "" && l.CorrelationID != "" && (appID != "" || f.Status != "" || strings.Contains(key, "reply")):
		l.Kind = "reply"
		l.Service, l.Version = wire.SplitAppID(appID)
		if l.Service == "" {
			l.Service, l.Version = wire.String(headers, wire.HeaderService), wire.String(headers, wire.HeaderVersion)
		}
		if l.Status == "" {
			l.Status = wire.StatusOK
		}
		if act, ok := t.corr[l.CorrelationID]; ok {
			l.Tx, l.Pattern = act[0], act[1]
			delete(t.corr, l.CorrelationID)
		}
	case exchange == "":
		l.Kind = "work"
		l.Pattern = key // the queue
	default:
		l.Kind = "event"
		l.Pattern = f.Pattern
		if l.Pattern == "" && exchange == pubsub.EventsExchange {
			l.Pattern = typ // emitted by pattern: the pattern is the type
		}
	}
	if t.tx != "" && l.Tx != t.tx {
		return l, false
	}
	var body map[string]any
	if t.pattern.HasGlob() || l.Kind == "event" || l.Kind == "act" {
		_ = json.Unmarshal(d.Body, &body)
	}
	if t.pattern.HasGlob() && (body == nil || !t.pattern.Match(body)) {
		return l, false
	}
	if t.firehose && t.pattern.Len() > 0 && l.Kind != "reply" {
		// The firehose is bound on everything; the pattern filters here.
		if body == nil || !t.pattern.Match(body) {
			return l, false
		}
	}
	l.Body = rawOrString(d.Body)
	return l, true
}

// remember keeps the tx and pattern of an act's correlation id for its
// reply, with a bound on the memory it takes (acts whose replies never
// come are forgotten in bulk).
func (t *tailer) remember(corr, tx, pattern string) {
	if len(t.corr) >= 100000 {
		t.corr = map[string][2]string{}
	}
	t.corr[corr] = [2]string{tx, pattern}
}

// unwrapTrace reads a firehose message: RabbitMQ puts the original
// exchange, routing keys and properties in its headers.
func (t *tailer) unwrapTrace(l *tailLine, h map[string]any) (exchange, key string, headers map[string]any, appID, typ string) {
	exchange = wire.String(h, "exchange_name")
	if keys, ok := h["routing_keys"].([]any); ok && len(keys) > 0 {
		switch k := keys[0].(type) {
		case string:
			key = k
		case []byte:
			key = string(k)
		}
	}
	props, _ := h["properties"].(map[string]any)
	headers, _ = props["headers"].(map[string]any)
	appID = wire.String(props, "app_id")
	typ = wire.String(props, "type")
	l.ID = wire.String(props, "message_id")
	l.CorrelationID = wire.String(props, "correlation_id")
	if ts, ok := props["timestamp"].(time.Time); ok {
		l.Time = ts
	}
	return exchange, key, headers, appID, typ
}

// targetOf reads $$target and $$version from an act's routing key.
func targetOf(key string) (service, version string) {
	if p, err := patterns.ParseKey(key); err == nil {
		service, _ = p.Get("$$target")
		version, _ = p.Get("$$version")
		return service, version
	}
	for _, w := range strings.Split(key, ".") {
		if v, ok := strings.CutPrefix(w, "$$target:"); ok {
			service = unescape(v)
		} else if v, ok := strings.CutPrefix(w, "$$version:"); ok {
			version = unescape(v)
		}
	}
	return service, version
}

func unescape(s string) string {
	if p, err := patterns.ParseKey("k:" + s); err == nil {
		v, _ := p.Get("k")
		return v
	}
	return s
}

func (t *tailer) print(l tailLine) {
	a := t.a
	if a.opts.json {
		a.printJSON(l)
		return
	}
	kindColor := map[string]string{"act": colCyan, "event": colGreen, "reply": colYellow, "work": colBlue}[l.Kind]
	who := "-"
	if l.Service != "" {
		who = l.Service
		if l.Version != "" {
			who += "@" + l.Version
		}
	}
	if l.Kind == "reply" && l.Status == wire.StatusError {
		who += " " + a.paint(colRed, "error")
	}
	tx := l.Tx
	if tx == "" {
		tx = "-"
	}
	body := ""
	raw, _ := json.Marshal(l.Body)
	if t.full {
		body = string(raw)
	} else {
		body = preview(raw, 100)
	}
	pattern := l.Pattern
	if pattern == "" {
		pattern = "-"
	}
	fmt.Fprintf(a.out, "%s %s %s %s %s %s\n",
		a.paint(colDim, l.Time.Local().Format("15:04:05.000")),
		a.paint(kindColor, fmt.Sprintf("%-5s", l.Kind)),
		a.paint(colBold, pattern), who, a.paint(colDim, "tx "+tx), body)
}
