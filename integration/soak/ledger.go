package soak

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patbus/patbus"
)

// Ledger keeps the account of one kind of traffic (acts, work items or
// events): every operation gets a sequence number, which travels in the
// message's body, so that what a consumer sees can be matched to what a
// producer sent. Per operation it holds when it began and ended, how it
// ended (confirmed, failed with a code, hung) and how many times a
// consumer handled it: 12 bytes, so that a soak of hours stays small. It
// is safe for concurrent use.
type Ledger struct {
	kind  string
	start time.Time

	mu        sync.Mutex
	ops       []op
	codes     []string // code index → code; index 0 is ""
	untyped   []string // a few texts of errors without a patbus code
	stray     int      // deliveries of sequence numbers never sent
	dupAt     []int32  // ms since start of each duplicate delivery
	lateRecvs int      // deliveries of operations that were not confirmed
}

// op is one operation. start and end are milliseconds since the ledger's
// start (end is -1 until it ends); code indexes Ledger.codes.
type op struct {
	start, end int32
	state      opState
	code       uint8
	recv       uint16
	source     uint8 // which driver sent it
}

type opState uint8

const (
	opPending opState = iota
	opConfirmed
	opFailed
	opHung // returned long after its deadline, or never
)

// CodeWrongReply is the code the ledger gives an act answered with
// another act's reply.
const CodeWrongReply = "wrong_reply"

// NewLedger returns an empty ledger for the traffic kind (for reports).
func NewLedger(kind string) *Ledger {
	return &Ledger{kind: kind, start: time.Now(), codes: []string{""}}
}

// Kind returns the traffic kind the ledger was made for.
func (l *Ledger) Kind() string { return l.kind }

// Start returns the moment the ledger counts its times from.
func (l *Ledger) Start() time.Time { return l.start }

func (l *Ledger) ms(t time.Time) int32 { return int32(t.Sub(l.start) / time.Millisecond) }

func (l *Ledger) at(ms int32) time.Time { return l.start.Add(time.Duration(ms) * time.Millisecond) }

// Begin records the start of an operation by source (a number the
// caller chooses, for Describe) and returns its sequence number.
func (l *Ledger) Begin(source uint8) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Taken under the lock, so that the operations are in order of start.
	l.ops = append(l.ops, op{start: l.ms(time.Now()), end: -1, source: source})
	return len(l.ops) - 1
}

// Describe tells what the ledger knows of operation seq, with its times
// relative to ref (a fault, say): for failure messages.
func (l *Ledger) Describe(seq int, ref time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 0 || seq >= len(l.ops) {
		return fmt.Sprintf("%s %d: never sent", l.kind, seq)
	}
	o := l.ops[seq]
	rel := func(ms int32) string {
		if ms < 0 {
			return "-"
		}
		return l.at(ms).Sub(ref).Round(time.Millisecond).String()
	}
	state := [...]string{"pending", "confirmed", "failed", "hung"}[o.state]
	return fmt.Sprintf("%s %d from source %d: began %s, ended %s (%s %s), received %d times",
		l.kind, seq, o.source, rel(o.start), rel(o.end), state, l.codes[o.code], o.recv)
}

// End records how operation seq ended: confirmed when err is nil, failed
// with patbus.Code(err) otherwise; hung when it returned later than it
// could have (the caller decides).
func (l *Ledger) End(seq int, err error, hung bool) {
	now := l.ms(time.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 0 || seq >= len(l.ops) {
		return
	}
	o := &l.ops[seq]
	if o.state == opHung {
		return // given up on by its driver; it stays hung
	}
	o.end = now
	switch {
	case hung:
		o.state = opHung
		o.code = l.codeIndex(codeOf(err))
	case err == nil:
		o.state = opConfirmed
	default:
		o.state = opFailed
		c := codeOf(err)
		o.code = l.codeIndex(c)
		if c == patbus.CodeInternal && len(l.untyped) < 10 {
			l.untyped = append(l.untyped, err.Error())
		}
	}
}

// errWrongReply marks an act answered with somebody else's reply.
var errWrongReply = errors.New("soak: the reply belongs to another act")

// codeOf is patbus.Code, with the ledger's own code for wrong replies.
func codeOf(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, errWrongReply) {
		return CodeWrongReply
	}
	return patbus.Code(err)
}

func (l *Ledger) codeIndex(c string) uint8 {
	if i := slices.Index(l.codes, c); i >= 0 {
		return uint8(i)
	}
	if len(l.codes) == 255 {
		return 0
	}
	l.codes = append(l.codes, c)
	return uint8(len(l.codes) - 1)
}

// Received records that a consumer handled operation seq (an act's
// handler ran, a worker took the item, a subscriber the event).
func (l *Ledger) Received(seq int) {
	now := l.ms(time.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 0 || seq >= len(l.ops) {
		l.stray++
		return
	}
	o := &l.ops[seq]
	if o.recv < 65535 {
		o.recv++
	}
	if o.recv > 1 {
		l.dupAt = append(l.dupAt, now)
	}
	if o.state != opConfirmed && o.state != opPending {
		l.lateRecvs++
	}
}

// Missing returns how many confirmed operations no consumer has handled
// yet: at the end of a run, the lost ones.
func (l *Ledger) Missing() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := range l.ops {
		if l.ops[i].state == opConfirmed && l.ops[i].recv == 0 {
			n++
		}
	}
	return n
}

// MissingSample returns up to n sequence numbers of confirmed operations
// that no consumer has handled, for failure messages.
func (l *Ledger) MissingSample(n int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for i := range l.ops {
		if l.ops[i].state == opConfirmed && l.ops[i].recv == 0 {
			out = append(out, i)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// FailedSample returns up to n sequence numbers of operations that began
// between from and to and failed or hung, for failure messages.
func (l *Ledger) FailedSample(from, to time.Time, n int) []int {
	a, b := l.ms(from), l.ms(to)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for i := range l.ops {
		o := &l.ops[i]
		if o.start >= a && o.start < b && (o.state == opFailed || o.state == opHung) {
			out = append(out, i)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// Counts returns how many operations began and how many were confirmed,
// so far.
func (l *Ledger) Counts() (sent, confirmed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.ops {
		if l.ops[i].state == opConfirmed {
			confirmed++
		}
	}
	return len(l.ops), confirmed
}

// ConfirmedSince reports whether an operation that began at or after t
// has been confirmed.
func (l *Ledger) ConfirmedSince(t time.Time) bool {
	from := l.ms(t)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.ops) - 1; i >= 0 && l.ops[i].start >= from; i-- {
		if l.ops[i].state == opConfirmed {
			return true
		}
	}
	return false
}

// Figures is the account of a ledger at one moment.
type Figures struct {
	Kind string
	// Sent is the number of operations begun; Confirmed those that
	// succeeded (an act answered, a work item or event confirmed by the
	// broker); Failed those that failed in time, by code in Failures;
	// Pending those still running; Hung those that returned long after
	// their deadline or not at all (their codes are in Failures too).
	Sent, Confirmed, Failed, Pending, Hung int
	Failures                               map[string]int
	// Received is the number of distinct operations a consumer handled,
	// Deliveries the number of times one did, Duplicates the difference.
	Received, Deliveries, Duplicates int
	// Lost is the number of confirmed operations no consumer handled.
	Lost int
	// Unconfirmed is the number of operations handled although their
	// producer was told they failed (they may arrive: not an error).
	Unconfirmed int
	// Stray is the number of deliveries of sequence numbers never sent.
	Stray int
	// Untyped holds texts of failures that carried no patbus code.
	Untyped []string
}

// Figures returns the account so far.
func (l *Ledger) Figures() Figures {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := Figures{Kind: l.kind, Sent: len(l.ops), Failures: map[string]int{}, Stray: l.stray, Unconfirmed: l.lateRecvs}
	for i := range l.ops {
		o := &l.ops[i]
		switch o.state {
		case opPending:
			f.Pending++
		case opConfirmed:
			f.Confirmed++
			if o.recv == 0 {
				f.Lost++
			}
		case opFailed:
			f.Failed++
			f.Failures[l.codes[o.code]]++
		case opHung:
			f.Hung++
			f.Failures["hung:"+l.codes[o.code]]++
		}
		if o.recv > 0 {
			f.Received++
			f.Deliveries += int(o.recv)
		}
	}
	f.Duplicates = f.Deliveries - f.Received
	f.Untyped = slices.Clone(l.untyped)
	return f
}

// Unexpected returns the failures (code=n) whose code is none of want;
// a hung operation counts by the code it ended with, if any.
func (f Figures) Unexpected(want []string) []string {
	var bad []string
	for code, n := range f.Failures {
		if !slices.Contains(want, strings.TrimPrefix(code, "hung:")) {
			bad = append(bad, fmt.Sprintf("%s=%d", code, n))
		}
	}
	sort.Strings(bad)
	return bad
}

// Window is what happened to the operations of a ledger around one
// fault, from the fault (From) to the next one or the end (To).
type Window struct {
	From, To time.Time
	// Failures counts, by code, the operations that began in the window
	// and failed (or hung: "hung:<code>"); InFlight those that began
	// before it and failed during it.
	Failures, InFlight map[string]int
	// Began and Confirmed count the operations that began in the window.
	Began, Confirmed int
	// FirstOK is the time from From to the end of the first confirmed
	// operation that began in the window (-1: none).
	FirstOK time.Duration
	// Steady is the time from From after which every operation that
	// began in the window was confirmed (-1: the last one failed).
	Steady time.Duration
	// Duplicates counts the deliveries in the window of operations
	// already handled.
	Duplicates int
}

// Window returns the account of the operations around a fault at from,
// up to to.
func (l *Ledger) Window(from, to time.Time) Window {
	a, b := l.ms(from), l.ms(to)
	w := Window{From: from, To: to, Failures: map[string]int{}, InFlight: map[string]int{}, FirstOK: -1, Steady: -1}
	l.mu.Lock()
	defer l.mu.Unlock()
	lastFail := int32(-1) // start of the last failed operation in the window
	firstOKEnd := int32(-1)
	for i := range l.ops {
		o := &l.ops[i]
		failed := o.state == opFailed || o.state == opHung
		code := l.codes[o.code]
		if o.state == opHung {
			code = "hung:" + code
		}
		if o.start < a {
			if failed && o.end >= a && o.end < b {
				w.InFlight[code]++
			}
			continue
		}
		if o.start >= b {
			break
		}
		w.Began++
		switch {
		case o.state == opConfirmed:
			w.Confirmed++
			if firstOKEnd < 0 || o.end < firstOKEnd {
				firstOKEnd = o.end
			}
		case failed:
			w.Failures[code]++
			lastFail = o.start
		}
	}
	if firstOKEnd >= 0 {
		w.FirstOK = time.Duration(firstOKEnd-a) * time.Millisecond
	}
	// Steady: the start of the first confirmed operation after the last
	// failure (by start time), or the first success when none failed.
	if lastFail < 0 {
		w.Steady = w.FirstOK
	} else {
		for i := range l.ops {
			o := &l.ops[i]
			if o.start > lastFail && o.start < b && o.state == opConfirmed {
				w.Steady = time.Duration(o.start-a) * time.Millisecond
				break
			}
		}
		if w.Steady >= 0 && w.FirstOK > w.Steady {
			w.Steady = w.FirstOK
		}
	}
	for _, t := range l.dupAt {
		if t >= a && t < b {
			w.Duplicates++
		}
	}
	return w
}

// FormatCodes writes a map of counts by code as "code=n, code=n", in
// order of code.
func FormatCodes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s=%d", k, m[k])
	}
	return s
}

// FormatDuration writes a recovery time: "-" for none (negative),
// otherwise rounded to the millisecond.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}
