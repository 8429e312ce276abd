package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Rabbit is the RabbitMQ broker. It is created by Dial (or Open) and is
// safe for concurrent use. It keeps two connections, one for publishing and
// one for consuming, and owns their reconnection: see the package
// documentation, section "RabbitMQ: reconnects, generations and confirms".
//
// After Close every method returns an error wrapping ErrClosed.
type Rabbit struct {
	cfg    config
	log    *slog.Logger
	addrs  []rabbitAddr
	closed context.Context // cancelled by shutdown
	cancel context.CancelFunc

	closeOnce sync.Once
	causeMu   sync.Mutex
	cause     error // why the broker closed itself (gave up reconnecting)

	sub  *connSlot // consuming connection; declarations run here too
	pub  *connSlot // publishing connection
	topo *topology
	pubs *publisher
	gate *gate // open while the topology is declared on sub (see gate)
	down *outage

	// decl serialises declarations with topology replays (a one-slot
	// semaphore), and declCh is the channel declarations run on.
	decl     chan struct{}
	declCh   *amqp.Channel
	declConn *amqp.Connection

	chanGen atomic.Uint64 // generation of every channel this broker opens

	wg sync.WaitGroup // every goroutine the broker starts
}

// rabbitAddr is one broker address: the URL to dial and the form that may
// be shown in logs and errors (password removed).
type rabbitAddr struct {
	url     string
	shown   string
	secrets []string // the password as written in the URL and decoded
	tls     bool
}

var _ Broker = (*Rabbit)(nil)

// Dial connects to RabbitMQ at a reachable address of addrs (amqp:// or
// amqps:// URLs, the nodes of a cluster for example, tried in turn from a
// random one) and returns the broker. It opens
// the consuming connection and the publishing connection before it returns.
// While no broker answers it keeps trying, with backoff, until ctx ends (or
// WithMaxReconnects attempts failed); it then returns an error wrapping
// ErrDisconnected. Options are validated first; a bad one gives an error
// wrapping ErrInvalidConfig. Credentials never appear in errors or logs.
func Dial(ctx context.Context, addrs []string, opts ...Option) (*Rabbit, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	parsed, err := parseAddrs(addrs)
	if err != nil {
		return nil, err
	}
	cfg.quorum = cfg.quorumByDefault(len(parsed))
	closed, cancel := context.WithCancel(context.Background())
	log := cfg.logger.With("component", "bus.rabbit")
	r := &Rabbit{
		cfg:    cfg,
		log:    log,
		addrs:  parsed,
		closed: closed,
		cancel: cancel,
		sub:    newConnSlot(),
		pub:    newConnSlot(),
		topo:   newTopology(),
		down:   newOutage(log),
		decl:   make(chan struct{}, 1),
	}
	r.gate = newGate(r.down.gate)
	r.pubs = newPublisher(r)

	sub, err := r.dialLoop(ctx, "sub", false)
	if err != nil {
		cancel()
		return nil, err
	}
	pub, err := r.dialLoop(ctx, "pub", false)
	if err != nil {
		_ = sub.conn.Close()
		cancel()
		return nil, err
	}
	r.wg.Add(1)
	go r.supervise(sub, pub)
	r.pubs.start()
	return r, nil
}

// parseAddrs checks every address and prepares its redacted form.
func parseAddrs(addrs []string) ([]rabbitAddr, error) {
	var out []rabbitAddr
	for i, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		u, err := amqp.ParseURI(a)
		if err != nil {
			// The parse error may quote the URL, password included.
			return nil, fmt.Errorf("%w: address %d (%s) is not a valid amqp:// or amqps:// URL", ErrInvalidConfig, i+1, redactURL(a))
		}
		out = append(out, rabbitAddr{url: a, shown: redactURL(a), secrets: passwordForms(a, u.Password), tls: u.Scheme == "amqps"})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no broker address", ErrInvalidConfig)
	}
	return out, nil
}

// scrub removes the passwords of the configured addresses from an error
// text, for errors that come from the network or the client library.
func (r *Rabbit) scrub(err error) string {
	if err == nil {
		return ""
	}
	return r.scrubText(err.Error())
}

// scrubText removes the passwords of the configured addresses from s: each
// whole URL becomes its shown form, and every form of a password is
// masked. A password of six bytes or more is masked wherever it occurs; a
// shorter one wherever it stands alone (not inside a longer word: between
// quotes, after "user:", before "@", between spaces), so that a password
// such as "a" is hidden without turning every "a" of a message into
// xxxxx.
func (r *Rabbit) scrubText(s string) string {
	for _, a := range r.addrs {
		if a.url != a.shown {
			s = strings.ReplaceAll(s, a.url, a.shown)
		}
		for _, pw := range a.secrets {
			s = maskPassword(s, pw)
		}
	}
	return s
}

// tlsConfig returns the TLS settings for one dial: a copy, so that the
// library may fill in the server name of the address it dials.
func (r *Rabbit) tlsConfig() *tls.Config {
	var c *tls.Config
	if r.cfg.tls != nil {
		c = r.cfg.tls.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// shutdown starts closing the broker once; cause says why when the broker
// gave up by itself.
func (r *Rabbit) shutdown(cause error) {
	r.closeOnce.Do(func() {
		r.causeMu.Lock()
		r.cause = cause
		r.causeMu.Unlock()
		r.cancel()
	})
}

// errClosed is the error of a call made after the broker closed.
func (r *Rabbit) errClosed() error {
	r.causeMu.Lock()
	cause := r.cause
	r.causeMu.Unlock()
	if cause != nil {
		return fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	return ErrClosed
}

// isClosed reports whether Close has been called or the broker gave up.
func (r *Rabbit) isClosed() bool { return r.closed.Err() != nil }

// Close closes both connections at once: consumers stop and their
// Deliveries channels close (Err reports ErrClosed), unacknowledged
// deliveries go back to their queues, and every Confirmation not yet
// resolved resolves with an error wrapping ErrUnconfirmed. Close waits for
// the broker's goroutines to end. It is idempotent and returns nil.
func (r *Rabbit) Close() error {
	r.shutdown(nil)
	r.wg.Wait()
	r.pubs.failAll()
	return nil
}

// goTracked runs f on a goroutine that Close waits for.
func (r *Rabbit) goTracked(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// mapErr turns an error of the client library into one of this package's
// sentinels, with the operation named. AMQP 404 is ErrNotFound, 406 is
// ErrPrecondition, a lost connection or channel is ErrDisconnected.
func (r *Rabbit) mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		reason := r.scrubText(ae.Reason)
		switch ae.Code {
		case amqp.NotFound:
			return fmt.Errorf("bus: %s: %w: %s", op, ErrNotFound, reason)
		case amqp.PreconditionFailed:
			return fmt.Errorf("bus: %s: %w: %s", op, ErrPrecondition, reason)
		case amqp.AccessRefused, amqp.ResourceLocked, amqp.NotAllowed:
			return fmt.Errorf("bus: %s: %s (code %d)", op, reason, ae.Code)
		}
		if !ae.Server || ae.Code == amqp.ConnectionForced || ae.Code == amqp.ChannelError || ae.Code == amqp.FrameError {
			return fmt.Errorf("bus: %s: %w: %s", op, ErrDisconnected, r.scrub(ae))
		}
		return fmt.Errorf("bus: %s: %s (code %d)", op, reason, ae.Code)
	}
	if errors.Is(err, amqp.ErrClosed) {
		if r.isClosed() {
			return fmt.Errorf("bus: %s: %w", op, r.errClosed())
		}
		return fmt.Errorf("bus: %s: %w: connection or channel closed", op, ErrDisconnected)
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrDisconnected) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("bus: %s: %w", op, err)
	}
	return fmt.Errorf("bus: %s: %s", op, r.scrub(err))
}

// isConnLoss reports whether err means the connection or channel went away
// (as opposed to the broker refusing the operation).
func isConnLoss(err error) bool {
	// A call on a connection that was cut before the bus noticed fails
	// with the socket's own error rather than amqp091-go's.
	if errors.Is(err, amqp.ErrClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.NotFound, amqp.PreconditionFailed, amqp.AccessRefused, amqp.ResourceLocked, amqp.NotAllowed, amqp.NotImplemented, amqp.CommandInvalid, amqp.SyntaxError:
			return false
		}
		return true
	}
	return false
}

// checkShort validates AMQP short strings before anything is sent.
func checkShort(what, s string) error {
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidConfig, what, MaxNameLen)
	}
	return nil
}

// toTable converts application headers to an AMQP table: int and int32
// become int64 (so they arrive as int64), nested maps become tables.
func toTable(h map[string]any) (amqp.Table, error) {
	if len(h) == 0 {
		return nil, nil
	}
	t := make(amqp.Table, len(h)+1)
	for k, v := range h {
		t[k] = toField(v)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrInvalidConfig, err)
	}
	return t, nil
}

func toField(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case map[string]any:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = toField(e)
		}
		return t
	case amqp.Table:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = toField(e)
		}
		return t
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = toField(e)
		}
		return a
	case []byte:
		return append([]byte(nil), x...)
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x)
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	}
	return v // Validate rejects what AMQP cannot carry
}

// fromTable converts received headers back: tables become map[string]any
// and every integer becomes int64, float32 becomes float64.
func fromTable(t amqp.Table) map[string]any {
	if len(t) == 0 {
		return nil
	}
	h := make(map[string]any, len(t))
	for k, v := range t {
		if k == publishIDHeader {
			continue
		}
		h[k] = fromField(v)
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

func fromField(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case amqp.Table:
		h := make(map[string]any, len(x))
		for k, e := range x {
			h[k] = fromField(e)
		}
		return h
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = fromField(e)
		}
		return a
	}
	return v
}

// expirationString renders Message.Expiration in whole milliseconds, at
// least 1.
func expirationString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10)
}

// parseExpiration reads the expiration property back.
func parseExpiration(s string) time.Duration {
	if s == "" {
		return 0
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}
