package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
)

// Check is a readiness check: nil means ready. /readyz runs the checks in
// order, each with a context bounded by WithReadyTimeout, and answers 503
// at the first that fails. A Check is called concurrently from the
// requests to /readyz.
type Check func(ctx context.Context) error

// probeQueue is the routing key of BrokerCheck's publish: the name of no
// queue, so the default exchange drops the message.
const probeQueue = "patbus.gateway.readiness-probe"

// BrokerCheck returns a Check that makes a round trip to b: it publishes
// an empty message on the default exchange to a queue that does not
// exist, not mandatory, and waits for the broker's confirm. The broker
// drops the message. The check fails at once while a broker that reports
// its connectivity (bus.Connectivity) is not connected, while the
// connection is blocked (until the check's deadline), and after b is
// closed.
func BrokerCheck(b bus.Broker) Check {
	return func(ctx context.Context) error {
		if c, ok := b.(bus.Connectivity); ok && !c.Connected() {
			return fmt.Errorf("gateway: %w: broker not connected", bus.ErrDisconnected)
		}
		c, err := b.Publish(ctx, "", probeQueue, bus.Message{})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	}
}

// defaultChecks are the checks the Actor offers: its Ready method (which
// *services.Service has: the service started and not closed) and a
// BrokerCheck of its broker (from a Broker method, which
// *services.Service has).
func defaultChecks(a Actor) []Check {
	var checks []Check
	if r, ok := a.(interface{ Ready(context.Context) error }); ok {
		checks = append(checks, r.Ready)
	}
	if b, ok := a.(interface{ Broker() bus.Broker }); ok {
		if br := b.Broker(); br != nil {
			checks = append(checks, BrokerCheck(br))
		}
	}
	return checks
}

var (
	healthyBody = []byte(`{"status":"ok"}`)
	readyBody   = []byte(`{"status":"ready"}`)
)

func writeStatus(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// serveHealth answers liveness: the process is up and serving HTTP.
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	writeStatus(own(w, r), healthyBody)
}

// serveReady answers readiness: 200 when every check passes, 503 while
// one fails or the gateway is shutting down.
func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	rw := own(w, r)
	rw.Header().Set("Cache-Control", "no-store")
	if g.draining.Load() {
		writeError(rw, http.StatusServiceUnavailable, ErrorBody{Code: patbus.CodeUnavailable, Message: "shutting down", Tx: rw.tx})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.readyTimeout)
	defer cancel()
	for i, check := range g.checks {
		if err := check(ctx); err != nil {
			g.log.Warn("gateway: not ready", "check", i, "err", err, "tx", rw.tx)
			writeError(rw, http.StatusServiceUnavailable, ErrorBody{Code: patbus.CodeUnavailable, Message: fmt.Sprintf("not ready (check %d failed)", i), Tx: rw.tx})
			return
		}
	}
	writeStatus(rw, readyBody)
}
