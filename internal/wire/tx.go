package wire

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"sync/atomic"
)

type txKey struct{}

// NewID returns a random 128-bit id as 32 hex digits. The bits come from
// math/rand/v2's generator (ChaCha8, seeded by the system): unpredictable
// and unique enough for tx, correlation and instance ids, and without a
// system call per id, which an act in-process cannot afford.
func NewID() string {
	// The hex digits of two random words' little-endian bytes, written
	// straight into one string: an id costs one allocation.
	const digits = "0123456789abcdef"
	var out [32]byte
	for i, w := range [2]uint64{rand.Uint64(), rand.Uint64()} {
		for j := range 8 {
			b := byte(w >> (8 * j))
			out[16*i+2*j], out[16*i+2*j+1] = digits[b>>4], digits[b&15]
		}
	}
	return string(out[:])
}

// WithTx returns a context that carries the tx id.
func WithTx(ctx context.Context, tx string) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// Tx returns the tx id carried by ctx, or "".
func Tx(ctx context.Context) string {
	tx, _ := ctx.Value(txKey{}).(string)
	return tx
}

type freshKey struct{}

// fresh marks a tx id minted for one request that has sent nothing yet.
type fresh struct {
	tx      string
	claimed atomic.Bool
}

// WithFreshTx returns a context that carries tx, a fresh id minted for
// it (NewID), as its tx id, marked so that the first act sent with it may
// use tx as its own request id (ClaimFreshTx): a chain that starts there
// then sends its tx in no header, as an act sent without a tx does.
func WithFreshTx(ctx context.Context, tx string) context.Context {
	return context.WithValue(WithTx(ctx, tx), freshKey{}, &fresh{tx: tx})
}

// ClaimFreshTx reports whether the request about to be sent with ctx may
// use tx as its id: tx came from WithFreshTx, is still ctx's tx, and no
// request has claimed it before. Only one claim succeeds, so that request
// ids stay unique however many acts share ctx.
func ClaimFreshTx(ctx context.Context, tx string) bool {
	f, _ := ctx.Value(freshKey{}).(*fresh)
	return f != nil && f.tx == tx && f.claimed.CompareAndSwap(false, true)
}

// EnsureTx returns ctx with a tx id, adding a fresh one if it has none, and
// that id.
func EnsureTx(ctx context.Context) (context.Context, string) {
	if tx := Tx(ctx); tx != "" {
		return ctx, tx
	}
	tx := NewID()
	return WithTx(ctx, tx), tx
}

// Traceparent returns a W3C traceparent header whose trace id is the tx id
// (when it is 32 lower-case hex digits, not all zero; a fresh id otherwise)
// and whose span id is fresh.
func Traceparent(tx string) string {
	trace := tx
	if !isTraceID(trace) {
		trace = NewID()
	}
	var span [8]byte
	binary.LittleEndian.PutUint64(span[:], rand.Uint64())
	return "00-" + trace + "-" + hex.EncodeToString(span[:]) + "-01"
}

// isTraceID reports whether s is a valid W3C trace id.
func isTraceID(s string) bool {
	return len(s) == 32 && s != "00000000000000000000000000000000" && isLowerHex(s)
}

// TxFromTraceparent returns the trace id of a W3C traceparent value, or ""
// when v is not one. A request whose tx id is a trace id sends it only
// there (the trace id of its traceparent), not again in HeaderTx.
func TxFromTraceparent(v string) string {
	// version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2, as
	// W3C Trace Context level 1 says to parse it: version ff is invalid,
	// version 00 has nothing after the flags, a later version may have
	// more after a "-"; the parent id is not all zeros.
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return ""
	}
	version, parent, flags := v[:2], v[36:52], v[53:55]
	switch {
	case !isLowerHex(version) || version == "ff",
		version == "00" && len(v) != 55,
		len(v) > 55 && v[55] != '-',
		!isLowerHex(parent) || parent == "0000000000000000",
		!isLowerHex(flags):
		return ""
	}
	if id := v[3:35]; isTraceID(id) {
		return id
	}
	return ""
}

// isLowerHex reports whether s is lower-case hexadecimal digits only.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IsTxKey reports whether k is the context key of the tx id, for context
// types that carry the tx themselves (services' act context).
func IsTxKey(k any) bool {
	_, ok := k.(txKey)
	return ok
}
