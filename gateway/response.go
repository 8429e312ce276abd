package gateway

import (
	"net/http"

	"github.com/patbus/patbus"
)

// response is the ResponseWriter of one request. It remembers whether the
// status was written (so that a recovered panic answers only when nothing
// was sent), and it rewrites the plain-text 404 and 405 answers of
// http.ServeMux, for requests that match no route, into the gateway's JSON
// error body; the handlers of routes and health endpoints set routed
// first, which turns that off.
type response struct {
	http.ResponseWriter
	tx      string
	minted  bool // tx is the gateway's own, made for this request
	routed  bool // a route's or health endpoint's handler runs
	wrote   bool // the status has been written
	swallow bool // the mux's own body is dropped
}

func (w *response) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if !w.routed && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) {
		// http.ServeMux answers with http.Error: text/plain and a body,
		// and for 405 an Allow header, which stays.
		w.swallow = true
		body := ErrorBody{Code: patbus.CodeNotFound, Message: "no route for this path", Tx: w.tx}
		if status == http.StatusMethodNotAllowed {
			body = ErrorBody{Code: CodeMethodNotAllowed, Message: "the path has no route for this method", Tx: w.tx}
		}
		writeError(w.ResponseWriter, status, body)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap returns the server's ResponseWriter, for http.ResponseController.
func (w *response) Unwrap() http.ResponseWriter { return w.ResponseWriter }
