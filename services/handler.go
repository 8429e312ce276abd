package services

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/patterns"
)

// Handler answers the acts that match a pattern. Handle returns the
// reply, any value encoding/json can encode into a JSON value (usually a
// struct or map; json.RawMessage is sent as it is), or an error. An error
// reaches the caller as a *patbus.Error: return NewError(code, message) to
// choose its code; any other error gets code "internal" and its text.
//
// Handle runs on a goroutine of the service, concurrently with other
// calls (up to the prefetch for acts from the broker). ctx carries the
// act's tx id and the caller's deadline; acts made with ctx inherit both.
// A panic in Handle is recovered, logged and answered as an error with
// code "panic"; the service keeps running.
type Handler interface {
	Handle(ctx context.Context, msg *Message) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg *Message) (any, error)

// Handle calls f(ctx, msg).
func (f HandlerFunc) Handle(ctx context.Context, msg *Message) (any, error) { return f(ctx, msg) }

// action is one added pattern with its handler and prior.
type action struct {
	svc     *Service
	pattern patterns.Pattern
	canon   string
	handler Handler
	// prior is the action this pattern would have matched when it was
	// added (Seneca's prior), or nil.
	prior *action
}

type actionKey struct{}

// AddFunc adds a typed action: each message is decoded into a Req with
// encoding/json (a message that does not decode is answered with an error
// of code "invalid_input"), and fn's Resp is the reply.
func AddFunc[Req, Resp any](s *Service, pattern string, fn func(ctx context.Context, req Req) (Resp, error)) error {
	if fn == nil {
		return fmt.Errorf("%w: nil function for pattern %q", ErrInvalidConfig, pattern)
	}
	return s.Add(pattern, typedFunc[Req, Resp](fn))
}

// typedFunc is AddFunc's Handler. It reads a message only through Decode,
// so an act from the broker that names its action goes to it undecoded:
// the body is decoded once, into Req, not first into Message.Data.
type typedFunc[Req, Resp any] func(ctx context.Context, req Req) (Resp, error)

func (f typedFunc[Req, Resp]) Handle(ctx context.Context, msg *Message) (any, error) {
	var req Req
	if err := msg.Decode(&req); err != nil {
		return nil, patbus.NewError(CodeInvalidInput, err.Error())
	}
	return f(ctx, req)
}

func (typedFunc[Req, Resp]) decodesOnly() {}

// decodesOnly is implemented by handlers that never read Message.Data.
type decodesOnly interface{ decodesOnly() }

// Call acts on pattern with input, as Service.Act does, and decodes the
// reply into a Resp. A reply that does not decode fails with an error
// wrapping ErrBadReply.
func Call[Resp any](ctx context.Context, s *Service, pattern string, input any) (Resp, error) {
	var out Resp
	if v, ok, err := s.callTyped(ctx, pattern, input); ok {
		if err != nil {
			return out, err
		}
		if r, ok := v.(Resp); ok && s.plainValue(v) {
			return r, nil
		}
		// Another type, or a value JSON would change (copy, or refuse):
		// as the JSON path would.
		b, err := json.Marshal(v)
		if err != nil {
			return out, fmt.Errorf("%w: encode reply of %s: %w", ErrBadReply, pattern, err)
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return out, fmt.Errorf("%w: decode reply of %s into %T: %w", ErrBadReply, pattern, out, err)
		}
		return out, nil
	}
	rep, err := s.Act(ctx, pattern, input)
	if err != nil {
		return out, err
	}
	if err := rep.Decode(&out); err != nil {
		return out, err
	}
	return out, nil
}

// Prior calls the prior of the action that is running: the action that the
// running action's pattern matched when it was added (Seneca's prior), with
// input as its message (usually the handler's own *Message, or a changed
// copy of its Data). It must be called with the context the handler
// received. Without a prior it answers the message's default$ if it has
// one, and fails with an error wrapping ErrNoPrior otherwise.
func Prior(ctx context.Context, input any) (*Reply, error) {
	a, _ := ctx.Value(actionKey{}).(*action)
	if a == nil {
		return nil, fmt.Errorf("%w: Prior called outside a handler's context", ErrNoPrior)
	}
	data, err := toObject(input)
	if err != nil {
		return nil, err
	}
	s := a.svc
	tx := txOf(ctx)
	if a.prior == nil {
		if rep, ok := defaultReply(data, tx); ok {
			return rep, nil
		}
		return nil, fmt.Errorf("%w: pattern %s", ErrNoPrior, a.canon)
	}
	return s.runLocal(ctx, a.prior, data, nil, tx)
}

// defaultReply answers with the message's default$, if it has one.
func defaultReply(data map[string]any, tx string) (*Reply, bool) {
	d, ok := data["default$"]
	if !ok {
		return nil, false
	}
	body, err := json.Marshal(d)
	if err != nil {
		return nil, false
	}
	return &Reply{Body: body, Tx: tx}, true
}
