package services_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/services"
)

// The fast path for typed acts must give every handler exactly what the
// JSON path gives it: the input merged with the pattern's pairs, decoded
// into the handler's type. Each case calls through Call (which may take
// the fast path) and through Act (always JSON) and compares.
func TestTypedCallsMatchTheJSONPath(t *testing.T) {
	type plain struct {
		User  string
		N     int64
		F     float64
		Inner struct{ A bool }
	}
	type withSlice struct {
		User string
		Tags []string
	}
	type shadowed struct {
		User string
		Cmd  string // the pattern's cmd pair wins, case and all
	}
	type echoed[T any] struct {
		In  T
		Got bool
	}
	s, err := services.New("typed", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var seenSlice []string
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(services.AddFunc(s, "role:t,cmd:plain", func(ctx context.Context, in plain) (echoed[plain], error) {
		return echoed[plain]{In: in, Got: true}, nil
	}))
	check(services.AddFunc(s, "role:t,cmd:slice", func(ctx context.Context, in withSlice) (echoed[withSlice], error) {
		seenSlice = in.Tags
		in.Tags[0] = "changed by the handler"
		return echoed[withSlice]{In: in, Got: true}, nil
	}))
	check(services.AddFunc(s, "role:t,cmd:shadow", func(ctx context.Context, in shadowed) (shadowed, error) { return in, nil }))
	check(services.AddFunc(s, "role:t,cmd:nan", func(ctx context.Context, in plain) (plain, error) { return in, nil }))
	// Routing by a value of the input: a pattern that names "User".
	check(services.AddFunc(s, "role:t,cmd:route", func(ctx context.Context, in plain) (string, error) { return "any user", nil }))
	check(services.AddFunc(s, "role:t,cmd:route,User:ada", func(ctx context.Context, in plain) (string, error) { return "ada", nil }))
	check(s.Ready(ctxT(t)))
	ctx := ctxT(t)

	viaJSON := func(pattern string, in, out any) error {
		rep, err := s.Act(ctx, pattern, in)
		if err != nil {
			return err
		}
		return rep.Decode(out)
	}

	in := plain{User: "ada", N: math.MaxInt64, F: 0.1}
	in.Inner.A = true
	got, err := services.Call[echoed[plain]](ctx, s, "role:t,cmd:plain", in)
	check(err)
	var want echoed[plain]
	check(viaJSON("role:t,cmd:plain", in, &want))
	if !reflect.DeepEqual(got, want) || got.In != in {
		t.Errorf("plain: Call gave %+v, the JSON path %+v", got, want)
	}

	tags := []string{"mine"}
	gotS, err := services.Call[echoed[withSlice]](ctx, s, "role:t,cmd:slice", withSlice{User: "ada", Tags: tags})
	check(err)
	if tags[0] != "mine" || &seenSlice[0] == &tags[0] || gotS.In.Tags[0] != "changed by the handler" {
		t.Errorf("the handler shared the caller's slice: caller %v, reply %v", tags, gotS.In.Tags)
	}

	gotSh, err := services.Call[shadowed](ctx, s, "role:t,cmd:shadow", shadowed{User: "ada", Cmd: "mine"})
	check(err)
	if gotSh.Cmd != "shadow" {
		t.Errorf("the pattern's pair did not win over the input's field: %+v", gotSh)
	}

	bad := plain{User: "bad \xff utf-8"}
	gotB, err := services.Call[echoed[plain]](ctx, s, "role:t,cmd:plain", bad)
	check(err)
	if gotB.In.User != "bad \uFFFD utf-8" {
		t.Errorf("invalid UTF-8 reached the handler as %q, the JSON path gives U+FFFD", gotB.In.User)
	}

	_, err = services.Call[plain](ctx, s, "role:t,cmd:nan", plain{F: math.NaN()})
	if !errors.Is(err, services.ErrInvalidInput) {
		t.Errorf("a NaN input: %v, want ErrInvalidInput as on the JSON path", err)
	}

	for user, want := range map[string]string{"ada": "ada", "bob": "any user"} {
		if got, err := services.Call[string](ctx, s, "role:t,cmd:route", plain{User: user}); err != nil || got != want {
			t.Errorf("routing by the input's User %q: %q, %v; want %q", user, got, err, want)
		}
	}
}

// The handler's context carries the caller's tx and a deadline; Prior
// works from a typed handler; a panic is an error with code panic.
func TestTypedCallsKeepTheirContext(t *testing.T) {
	type req struct{ N int }
	s, err := services.New("typedctx", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = services.AddFunc(s, "role:c", func(ctx context.Context, in req) (int, error) { return in.N * 10, nil })
	_ = services.AddFunc(s, "role:c,cmd:x", func(ctx context.Context, in req) (int, error) {
		if _, ok := ctx.Deadline(); !ok || patbus.Tx(ctx) != "tx-1" {
			return 0, errors.New("no deadline or no tx in the handler's context")
		}
		if in.N < 0 {
			panic("negative")
		}
		var prior int
		rep, err := services.Prior(ctx, map[string]any{"N": in.N})
		if err != nil {
			return 0, err
		}
		return prior, rep.Decode(&prior)
	})
	if err := s.Ready(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx := patbus.WithTx(context.Background(), "tx-1")
	if got, err := services.Call[int](ctx, s, "role:c,cmd:x", req{N: 4}); err != nil || got != 40 {
		t.Errorf("Call = %d, %v; want 40 from the prior", got, err)
	}
	_, err = services.Call[int](ctx, s, "role:c,cmd:x", req{N: -1})
	if patbus.Code(err) != patbus.CodePanic {
		t.Errorf("a panicking handler: %v, want code panic", err)
	}
}

// A handler that ignores its context does not hold its caller past the
// deadline, on either path; with WithInlineLocalActs it does (and the
// caller gets the timeout once it returns).
func TestLocalActDeadlineWithAHandlerThatIgnoresIt(t *testing.T) {
	type req struct{ N int }
	for _, inline := range []bool{false, true} {
		var opts []services.Option
		if inline {
			opts = append(opts, services.WithInlineLocalActs())
		}
		s, err := services.New("stubborn", "1.0.0", opts...)
		if err != nil {
			t.Fatal(err)
		}
		var release atomic.Pointer[chan struct{}]
		_ = services.AddFunc(s, "cmd:stubborn", func(ctx context.Context, in req) (int, error) {
			<-*release.Load() // ignores ctx
			return 1, nil
		})
		if err := s.Ready(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		for _, typed := range []bool{true, false} {
			rel := make(chan struct{})
			release.Store(&rel)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				var err error
				if typed {
					_, err = services.Call[int](ctx, s, "cmd:stubborn", req{1})
				} else {
					_, err = s.Act(ctx, "cmd:stubborn", map[string]any{"N": 1})
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Second):
				if !inline {
					t.Fatalf("typed %v: the caller was held past its deadline", typed)
				}
				close(rel)
				err = <-done
			}
			cancel()
			if !inline {
				close(rel) // let the abandoned handler end
			}
			if !errors.Is(err, services.ErrTimeout) || patbus.Code(err) != patbus.CodeTimeout {
				t.Errorf("inline %v typed %v: %v after %v, want a timeout", inline, typed, err, time.Since(start))
			}
		}
		_ = s.Close()
	}
}

// The fast path is taken: a typed call with a deadline and a tx allocates
// next to nothing, where the JSON path allocates dozens of times; the
// guard of the default mode (the handler on a runner goroutine) adds no
// allocation of its own.
func TestTypedCallTakesTheFastPath(t *testing.T) {
	type req struct{ User, Password string }
	type res struct{ Code int }
	for _, mode := range []struct {
		name string
		opts []services.Option
	}{{"inline", []services.Option{services.WithInlineLocalActs()}}, {"guarded", nil}} {
		s, err := services.New("fast", "1.0.0", mode.opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_ = services.AddFunc(s, "role:user,cmd:login", func(ctx context.Context, in req) (res, error) {
			if in.User == "asd" && in.Password == "123" {
				return res{Code: 1000}, nil
			}
			return res{Code: 2100}, nil
		})
		if err := s.Ready(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(patbus.WithTx(context.Background(), patbus.NewTx()), time.Minute)
		defer cancel()
		in := req{User: "asd", Password: "123"}
		fast := testing.AllocsPerRun(200, func() {
			if r, err := services.Call[res](ctx, s, "role:user,cmd:login", in); err != nil || r.Code != 1000 {
				t.Fatalf("Call = %+v, %v", r, err)
			}
		})
		slow := testing.AllocsPerRun(200, func() {
			if _, err := s.Act(ctx, "role:user,cmd:login", in); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: allocations per act: typed Call %v, Act %v", mode.name, fast, slow)
		if fast > 4 || slow < 10 {
			t.Errorf("%s: typed Call allocates %v times per act, Act %v: the fast path was not taken", mode.name, fast, slow)
		}
	}
}

// A message that does not decode into a typed action's input is refused
// with invalid_input and a message in the message's own terms: the JSON
// path and the kinds, never the service's Go types, which would cross the
// wire to the caller.
func TestTypedDecodeErrorsSpeakJSON(t *testing.T) {
	type body struct {
		Age  int      `json:"age"`
		Tags []string `json:"tags"`
	}
	type in struct {
		Args struct {
			Body body `json:"body"`
		} `json:"args"`
	}
	s, err := services.New("typed", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := services.AddFunc(s, "role:t,cmd:age", func(ctx context.Context, in in) (int, error) { return in.Args.Body.Age, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		input string
		want  string
	}{
		{`{"args":{"body":{"age":"old"}}}`, "args.body.age: want an integer, got string"},
		{`{"args":{"body":{"age":1.5}}}`, "args.body.age: want an integer, got number 1.5"},
		{`{"args":{"body":{"tags":{"a":1}}}}`, "args.body.tags: want an array, got object"},
		{`{"args":[]}`, "args: want an object, got array"},
	} {
		_, err := s.Act(ctxT(t), "role:t,cmd:age", json.RawMessage(c.input))
		if code := patbus.Code(err); code != patbus.CodeInvalidInput {
			t.Errorf("%s: code %q (%v), want invalid_input", c.input, code, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want it to say %q", c.input, msg, c.want)
		}
		if strings.Contains(msg, "services_test") || strings.Contains(msg, "Go ") || strings.Contains(msg, "struct") {
			t.Errorf("%s: error %q names the service's Go types", c.input, msg)
		}
	}
}
