package services

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/patbus/patbus/internal/wire"
)

// The typed fast path. Call[Resp](ctx, s, pattern, in) with a struct in
// whose type is the Req of an AddFunc action the act resolves to locally
// hands in to the handler as it is, and the handler's Resp back, with no
// JSON between them, when a plan proves that the JSON path would give the
// handler the very same value: the message (in merged with the pattern's
// pairs) decoded into Req. The plan is made once per pattern, input type
// and catalog snapshot; a change of the catalog makes a new one. Every
// other act takes the JSON path.

// typedAction is implemented by AddFunc's handlers.
type typedAction interface {
	reqType() reflect.Type
	callValue(ctx context.Context, in any) (any, error)
}

func (f typedFunc[Req, Resp]) reqType() reflect.Type { return reflect.TypeFor[Req]() }

func (f typedFunc[Req, Resp]) callValue(ctx context.Context, in any) (any, error) {
	return f(ctx, in.(Req))
}

// typedPlan is what the fast path knows of one (pattern, input type) for
// one snapshot: the action, or nil when the act must take the JSON path.
type typedPlan struct {
	snap   *snapshot
	action *action
	check  func(reflect.Value) bool // the value round-trips through JSON unchanged
}

type planKey struct {
	pattern string
	t       reflect.Type
}

// planCache holds the plans, up to maxCachedPatterns of them, and what
// plainFields and buildMapFields found of each type they were asked about.
type planCache struct {
	mu    sync.RWMutex
	m     map[planKey]*typedPlan
	types map[reflect.Type]*fieldInfo // nil entries: not plain
	maps  map[reflect.Type]*mapFields // for decodeMap; nil entries: not for it
}

// plainValue reports whether v would come out of a trip through JSON as
// the very same value (so that the fast path may hand it over as it is):
// a scalar, or a struct that plainFields accepts, with valid strings and
// finite numbers.
func (s *Service) plainValue(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return !hasMarshalMethods(rv.Type())
	case reflect.Float32, reflect.Float64:
		x := rv.Float()
		return !hasMarshalMethods(rv.Type()) && !math.IsNaN(x) && !math.IsInf(x, 0)
	case reflect.String:
		return !hasMarshalMethods(rv.Type()) && utf8.ValidString(rv.String())
	case reflect.Struct:
		info := s.fieldsOf(rv.Type())
		return info != nil && info.check(rv)
	}
	return false
}

// fieldsOf is plainFields, remembered per type.
func (s *Service) fieldsOf(t reflect.Type) *fieldInfo {
	return cachedType(&s.plans.mu, &s.plans.types, t, plainFields)
}

// cachedType returns (*m)[t], made by build on the first ask and kept for
// up to maxCachedPatterns types; mu guards *m.
func cachedType[V any](mu *sync.RWMutex, m *map[reflect.Type]V, t reflect.Type, build func(reflect.Type) V) V {
	mu.RLock()
	v, ok := (*m)[t]
	mu.RUnlock()
	if ok {
		return v
	}
	v = build(t)
	mu.Lock()
	if *m == nil {
		*m = map[reflect.Type]V{}
	}
	if len(*m) < maxCachedPatterns {
		(*m)[t] = v
	}
	mu.Unlock()
	return v
}

// callTyped runs a local typed act on the fast path; ok is false when
// the act must take the JSON path (then nothing was run).
func (s *Service) callTyped(ctx context.Context, pattern string, in any) (v any, ok bool, err error) {
	if in == nil || s.state.Load() != stateRunning {
		return nil, false, nil
	}
	t := reflect.TypeOf(in)
	if t.Kind() != reflect.Struct {
		return nil, false, nil
	}
	snap := s.snap.Load()
	key := planKey{pattern, t}
	s.plans.mu.RLock()
	plan := s.plans.m[key]
	s.plans.mu.RUnlock()
	if plan == nil || plan.snap != snap {
		plan = s.plan(pattern, t, snap)
		s.plans.mu.Lock()
		if s.plans.m == nil {
			s.plans.m = map[planKey]*typedPlan{}
		}
		if len(s.plans.m) >= maxCachedPatterns {
			clear(s.plans.m)
		}
		s.plans.m[key] = plan
		s.plans.mu.Unlock()
	}
	a := plan.action
	if a == nil || !plan.check(reflect.ValueOf(in)) {
		return nil, false, nil
	}
	tx := wire.Tx(ctx)
	if tx == "" {
		tx = wire.NewID()
	}
	actx := newActContext(ctx, tx, a, s.cfg.timeout)
	defer actx.release()
	// A deadline actx adds lies ahead (the timeout is positive): only the
	// caller's context can have ended, and asking it costs no clock read.
	if err := ctx.Err(); err != nil {
		return nil, true, fmt.Errorf("services: act %s: %w", a.canon, ctxErr(err))
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.logAct(ctx, slog.LevelDebug, "services: act (local, typed)", tx, a.pattern, a.canon)
	}
	h := a.handler.(typedAction)
	if s.cfg.inlineLocal {
		v, err = s.invokeTyped(actx, a, h, in, tx)
		if err == nil && actx.Err() != nil {
			err = lateError(a, actx)
		}
	} else {
		j := s.runner.job()
		j.s, j.ctx, j.a, j.tx, j.h, j.in = s, actx, a, tx, h, in
		v, err = s.guard(actx, j)
	}
	if err != nil {
		return nil, true, &localError{remote: s.toRemote(err, tx, a.canon), cause: err}
	}
	return v, true, nil
}

// invokeTyped calls a typed handler with its input, turning a panic into
// an error.
func (s *Service) invokeTyped(ctx context.Context, a *action, h typedAction, in any, tx string) (v any, err error) {
	defer s.recoverPanic(ctx, a, tx, &err)
	return h.callValue(ctx, in)
}

// plan decides whether acts on pattern with inputs of type t can take the
// fast path in snap, and to which action.
func (s *Service) plan(pattern string, t reflect.Type, snap *snapshot) *typedPlan {
	none := &typedPlan{snap: snap}
	pp, err := s.parsed.get(pattern)
	if err != nil {
		return none
	}
	info := s.fieldsOf(t)
	if info == nil {
		return none
	}
	for _, name := range info.names {
		// A field that a pattern names could change where the act goes;
		// one that looks like a pin or a default$ changes what it does.
		if snap.keys[name] || name == keyTarget || name == keyVersion || name == "default$" {
			return none
		}
		for _, pr := range pp.pairs {
			// The pattern's pairs win over the input's values, and
			// encoding/json matches names without regard to case.
			if strings.EqualFold(pr.Key, name) {
				return none
			}
		}
	}
	msg := make(map[string]any, len(pp.pairs))
	for _, pr := range pp.pairs {
		msg[pr.Key] = pr.JSON()
	}
	if _, ok := msg[keyVersion]; ok {
		if _, err := s.pins.get(pin(msg[keyVersion])); err != nil {
			return none
		}
	}
	res, ok := s.resolve(snap, msg)
	if !ok || res.local == nil {
		return none
	}
	h, ok := res.local.handler.(typedAction)
	if !ok || h.reqType() != t {
		return none
	}
	return &typedPlan{snap: snap, action: res.local, check: info.check}
}

// fieldInfo describes a struct type whose values survive a trip through
// JSON unchanged, so long as check holds: exported fields of scalar kinds
// (and structs of such), no marshalling methods, no renaming options that
// change the representation.
type fieldInfo struct {
	names []string // the JSON names of the top-level fields
	check func(reflect.Value) bool
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// plainFields returns the fieldInfo of t, or nil when a value of t may
// come out of JSON different from what went in.
func plainFields(t reflect.Type) *fieldInfo {
	if t.Kind() != reflect.Struct || hasMarshalMethods(t) {
		return nil
	}
	info := &fieldInfo{}
	var checks []func(reflect.Value) bool
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			return nil
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, opts, _ := strings.Cut(tag, ",")
			if n == "-" || strings.Contains(opts, "string") {
				return nil
			}
			if n != "" {
				name = n
			}
		}
		info.names = append(info.names, name)
		idx := i
		switch f.Type.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if hasMarshalMethods(f.Type) {
				return nil
			}
		case reflect.Float32, reflect.Float64:
			if hasMarshalMethods(f.Type) {
				return nil
			}
			// NaN and ±Inf do not encode: the JSON path fails on them.
			checks = append(checks, func(v reflect.Value) bool {
				x := v.Field(idx).Float()
				return !math.IsNaN(x) && !math.IsInf(x, 0)
			})
		case reflect.String:
			if hasMarshalMethods(f.Type) {
				return nil
			}
			// Invalid UTF-8 comes back with U+FFFD in its place.
			checks = append(checks, func(v reflect.Value) bool { return utf8.ValidString(v.Field(idx).String()) })
		case reflect.Struct:
			inner := plainFields(f.Type)
			if inner == nil {
				return nil
			}
			checks = append(checks, func(v reflect.Value) bool { return inner.check(v.Field(idx)) })
		default:
			// Pointers, slices, maps and interfaces would be shared with
			// the caller, where JSON gives the handler copies.
			return nil
		}
	}
	info.check = func(v reflect.Value) bool {
		for _, c := range checks {
			if !c(v) {
				return false
			}
		}
		return true
	}
	return info
}

func hasMarshalMethods(t reflect.Type) bool {
	for _, x := range []reflect.Type{t, reflect.PointerTo(t)} {
		if x.Implements(jsonMarshaler) || x.Implements(jsonUnmarshaler) || x.Implements(textMarshaler) || x.Implements(textUnmarshaler) {
			return true
		}
	}
	return false
}
