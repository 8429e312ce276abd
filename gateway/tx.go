package gateway

import (
	"net/http"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/wire"
)

// HeaderRequestID is the header that carries a request's tx id in and
// out.
const HeaderRequestID = "X-Request-Id"

// maxRequestID bounds the length of an X-Request-Id taken as a tx id.
const maxRequestID = 128

// requestTx returns the tx id of a request: the trace id of its W3C
// traceparent header, so that the chain of acts continues the caller's
// trace; else its X-Request-Id, when that is 1 to 128 visible ASCII
// characters; else a fresh one (patbus.NewTx), and then minted is true.
func requestTx(r *http.Request) (tx string, minted bool) {
	if tp := r.Header.Get("Traceparent"); tp != "" {
		if tx := wire.TxFromTraceparent(tp); tx != "" {
			return tx, false
		}
	}
	if id := r.Header.Get(HeaderRequestID); validRequestID(id) {
		return id, false
	}
	return patbus.NewTx(), true
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
