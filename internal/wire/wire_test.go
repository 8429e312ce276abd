package wire

import (
	"context"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestEnsureTxKeepsAnExistingID(t *testing.T) {
	ctx, tx := EnsureTx(context.Background())
	if len(tx) != 32 || Tx(ctx) != tx {
		t.Fatalf("fresh tx %q, carried %q", tx, Tx(ctx))
	}
	ctx2, tx2 := EnsureTx(ctx)
	if tx2 != tx || Tx(ctx2) != tx {
		t.Errorf("EnsureTx replaced %q with %q", tx, tx2)
	}
	if Tx(context.Background()) != "" {
		t.Error("a bare context carries a tx")
	}
}

func TestNewIDIsFresh(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if !isTraceID(id) {
			t.Fatalf("NewID gave %q, want 32 lower-case hex digits (a W3C trace id)", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

func TestTraceparent(t *testing.T) {
	tx := NewID()
	tp := Traceparent(tx)
	if !traceparentRE.MatchString(tp) {
		t.Fatalf("Traceparent(%q) = %q, not W3C form", tx, tp)
	}
	if tp[3:35] != tx {
		t.Errorf("trace id %q, want the tx %q", tp[3:35], tx)
	}
	if other := Traceparent(tx); other[36:52] == tp[36:52] {
		t.Errorf("two spans of one tx share the span id %q", tp[36:52])
	}
	for _, bad := range []string{"short", "my-own-transaction-id-0123456789", "00000000000000000000000000000000"} {
		if tp := Traceparent(bad); !traceparentRE.MatchString(tp) || tp[3:35] == bad {
			t.Errorf("Traceparent(%q) = %q, want W3C form with a fresh trace id", bad, tp)
		}
	}
}

func TestDeadlineRoundTrip(t *testing.T) {
	d := time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
	got, ok := ParseDeadline(DeadlineValue(d))
	if !ok || !got.Equal(d) {
		t.Errorf("ParseDeadline(DeadlineValue(%v)) = %v, %v", d, got, ok)
	}
	if _, ok := ParseDeadline(nil); ok {
		t.Error("ParseDeadline(nil) reports a deadline")
	}
	if _, ok := ParseDeadline("soon"); ok {
		t.Error(`ParseDeadline("soon") reports a deadline`)
	}
}

func TestTxTravelsInTraceparent(t *testing.T) {
	tx := NewID()
	if got := TxFromTraceparent(Traceparent(tx)); got != tx {
		t.Fatalf("TxFromTraceparent(Traceparent(%q)) = %q", tx, got)
	}
	for _, good := range []string{
		"00-" + tx + "-0123456789abcdef-00",
		"01-" + tx + "-0123456789abcdef-01",
		"cc-" + tx + "-0123456789abcdef-01-what-the-future-brings",
	} {
		if got := TxFromTraceparent(good); got != tx {
			t.Errorf("TxFromTraceparent(%q) = %q, want %q", good, got, tx)
		}
	}
	for _, bad := range []string{"", "00-xyz", "00-" + tx + "-0123456789abcdef", "00-00000000000000000000000000000000-0123456789abcdef-01",
		"00-" + tx[:31] + "G-0123456789abcdef-01", "00_" + tx + "-0123456789abcdef-01",
		"ff-" + tx + "-0123456789abcdef-01",       // version ff is invalid
		"0g-" + tx + "-0123456789abcdef-01",       // a version that is not hex
		"00-" + tx + "-0000000000000000-01",       // an all-zero parent id
		"00-" + tx + "-0123456789ABCDEF-01",       // upper case
		"00-" + tx + "-0123456789abcdef-0x",       // flags that are not hex
		"00-" + tx + "-0123456789abcdef-01-later", // version 00 ends at its flags
		"01-" + tx + "-0123456789abcdef-01x",      // more must follow a "-"
	} {
		if got := TxFromTraceparent(bad); got != "" {
			t.Errorf("TxFromTraceparent(%q) = %q, want \"\"", bad, got)
		}
	}
}

func TestAppID(t *testing.T) {
	for _, c := range []struct{ service, version, id string }{
		{"users", "1.2.0", "users@1.2.0"}, {"users", "", "users"}, {"a@b", "2.0.0", "a@b@2.0.0"}, {"", "", ""},
	} {
		if got := AppID(c.service, c.version); got != c.id {
			t.Errorf("AppID(%q, %q) = %q, want %q", c.service, c.version, got, c.id)
		}
		if s, v := SplitAppID(c.id); s != c.service || v != c.version {
			t.Errorf("SplitAppID(%q) = %q, %q", c.id, s, v)
		}
	}
}

func TestReadAcceptsForeignForms(t *testing.T) {
	tx := NewID()
	dl := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	for _, h := range []map[string]any{
		{HeaderPattern: "cmd:x", HeaderTx: tx, HeaderDeadline: dl.UnixMilli(), HeaderAttempt: int64(3), HeaderError: "boom"},
		{HeaderPattern: []byte("cmd:x"), HeaderTraceparent: []byte(Traceparent(tx)), HeaderDeadline: []byte(strconv.FormatInt(dl.UnixMilli(), 10)),
			HeaderAttempt: float64(3), HeaderError: []byte("boom")},
		{HeaderPattern: "cmd:x", HeaderTraceparent: Traceparent(tx), HeaderDeadline: int32(0), HeaderAttempt: int8(3), HeaderError: "boom"},
	} {
		f := Read(h)
		if f.Pattern != "cmd:x" || f.Tx != tx || f.Attempt != 3 || f.Error != "boom" {
			t.Errorf("Read(%v) = %+v", h, f)
		}
		if _, ok := h[HeaderDeadline].(int32); !ok && !f.Deadline.Equal(dl) {
			t.Errorf("Read(%v).Deadline = %v, want %v", h, f.Deadline, dl)
		}
	}
	if f := Read(nil); f.Attempt != 1 || f.Tx != "" {
		t.Errorf("Read(nil) = %+v", f)
	}
	if f := Read(map[string]any{HeaderAttempt: "x"}); f.Attempt != 1 {
		t.Errorf("an odd attempt reads as %d, want 1", f.Attempt)
	}
}

func TestPutTx(t *testing.T) {
	tx := NewID()
	h := map[string]any{}
	PutTx(h, tx)
	if _, ok := h[HeaderTx]; ok || TxFromTraceparent(h[HeaderTraceparent].(string)) != tx {
		t.Errorf("a trace-id tx: %v", h)
	}
	h = map[string]any{}
	PutTx(h, "order-42")
	if h[HeaderTx] != "order-42" || TxFromTraceparent(h[HeaderTraceparent].(string)) == "" {
		t.Errorf("a foreign tx: %v", h)
	}
	forwarded := Traceparent(NewID())
	h = map[string]any{HeaderTraceparent: forwarded}
	PutTx(h, tx)
	if h[HeaderTraceparent] != forwarded || h[HeaderTx] != tx {
		t.Errorf("a forwarded traceparent: %v", h)
	}
	if f := Read(h); f.Tx != tx {
		t.Errorf("Read after PutTx: tx %q, want %q", f.Tx, tx)
	}
}

func TestInt64(t *testing.T) {
	for _, c := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{int64(7), 7, true}, {int32(-7), -7, true}, {uint8(7), 7, true}, {uint(7), 7, true},
		{float64(7), 7, true}, {float32(7), 7, true}, {"7", 7, true}, {[]byte("7"), 7, true},
		{uint64(1 << 63), 0, false}, {float64(7.5), 0, false}, {math.NaN(), 0, false},
		{math.Inf(1), 0, false}, {1e300, 0, false}, {"seven", 0, false}, {nil, 0, false}, {true, 0, false},
	} {
		got, ok := Int64(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("Int64(%#v) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if f := Read(map[string]any{HeaderAttempt: int64(1) << 40}); f.Attempt != 1<<30 {
		t.Errorf("a huge attempt reads as %d, want the cap %d", f.Attempt, 1<<30)
	}
}

func TestClaimFreshTx(t *testing.T) {
	tx := NewID()
	ctx := WithFreshTx(context.Background(), tx)
	if Tx(ctx) != tx {
		t.Fatalf("Tx = %q, want %q", Tx(ctx), tx)
	}
	if ClaimFreshTx(ctx, "other") {
		t.Error("a claim for another tx succeeded")
	}
	if !ClaimFreshTx(ctx, tx) {
		t.Fatal("the first claim failed")
	}
	if ClaimFreshTx(ctx, tx) {
		t.Error("a second claim succeeded")
	}
	// A tx set over it is not the fresh one.
	if over := WithTx(WithFreshTx(context.Background(), tx), "upstream"); ClaimFreshTx(over, Tx(over)) {
		t.Error("a claim for a tx set over the fresh one succeeded")
	}
	if ClaimFreshTx(WithTx(context.Background(), tx), tx) {
		t.Error("a claim on a tx from WithTx succeeded")
	}
}
