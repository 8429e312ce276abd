package services_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/wire"
	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
)

type login struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type result struct {
	Code int `json:"code"`
}

func addLogin(s *services.Service) {
	err := services.AddFunc(s, "cmd:login", func(ctx context.Context, in login) (result, error) {
		if in.User == "asd" && in.Password == "123" {
			return result{Code: 1000}, nil
		}
		return result{Code: 2100}, nil
	})
	if err != nil {
		panic(err)
	}
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name, version string
		opts          []services.Option
	}{
		{"", "1.0.0", nil},
		{"a b", "1.0.0", nil},
		{"user@x", "1.0.0", nil},
		{"user", "", nil},
		{"user", "1.0", nil},
		{"user", "v1.0.0", nil},
		{"user", "01.0.0", nil},
		{"user", "1.0.0", []services.Option{services.WithTimeout(0)}},
		{"user", "1.0.0", []services.Option{services.WithPrefetch(-1)}},
		{"user", "1.0.0", []services.Option{services.WithHeartbeat(0)}},
		{"user", "1.0.0", []services.Option{services.WithMaxMessageSize(0)}},
		{"user", "1.0.0", []services.Option{services.WithExchanges("", "x")}},
	}
	for _, c := range cases {
		s, err := services.New(c.name, c.version, c.opts...)
		if !errors.Is(err, services.ErrInvalidConfig) {
			t.Errorf("New(%q, %q): err %v, want ErrInvalidConfig", c.name, c.version, err)
		}
		if s != nil {
			_ = s.Close()
		}
	}
	for _, v := range []string{"1.0.0", "0.0.1-alpha.1", "2.3.4+build.7", "1.0.0-rc.1+x"} {
		s, err := services.New("user", v)
		if err != nil {
			t.Errorf("New(user, %q): %v", v, err)
			continue
		}
		_ = s.Close()
	}
}

func TestActLocal(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		s := e.svc(e.name("user"), "1.0.0", addLogin)
		for _, c := range []struct {
			in   login
			want int
		}{{login{"asd", "123"}, 1000}, {login{"asd", "x"}, 2100}, {login{}, 2100}} {
			got, err := services.Call[result](ctx, s, "cmd:login", c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != c.want {
				t.Errorf("login %+v: code %d, want %d", c.in, got.Code, c.want)
			}
		}
		rep, err := s.Act(ctx, "cmd:login", map[string]any{"user": "asd", "password": "123"})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Local || rep.Service != s.Name() || rep.Version != "1.0.0" || rep.Tx == "" {
			t.Errorf("reply %+v: want local from %s@1.0.0 with a tx", rep, s.Name())
		}
		m, err := rep.Map()
		if err != nil || m["code"] != float64(1000) {
			t.Errorf("Map() = %v, %v", m, err)
		}
	})
}

func TestMessageMergesPattern(t *testing.T) {
	s, err := services.New("echo", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got map[string]any
	var gotPattern string
	if err := s.Add("role:echo", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
		got, gotPattern = m.Data, m.Pattern.String()
		if m.Get("x") == nil {
			return nil, errors.New("no x")
		}
		return m.Data, nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	rep, err := s.Act(ctx, "role:echo,n:1", map[string]any{"role": "other", "x": 2, "n": 5})
	if err != nil {
		t.Fatal(err)
	}
	if got["role"] != "echo" || got["n"] != json.Number("1") || got["x"] != 2 {
		t.Errorf("message %v: pattern pairs must win, typed as jsonic types them", got)
	}
	if gotPattern != "role:echo" {
		t.Errorf("Message.Pattern = %q, want role:echo", gotPattern)
	}
	var back map[string]any
	if err := json.Unmarshal(rep.Body, &back); err != nil || back["n"] != float64(1) {
		t.Errorf("reply %s: %v", rep.Body, err)
	}
	// Every input form that is a JSON object works.
	for _, in := range []any{json.RawMessage(`{"x":1}`), []byte(`{"x":1}`), `{"x":1}`, &struct {
		X int `json:"x"`
	}{1}} {
		if _, err := s.Act(ctx, "role:echo", in); err != nil {
			t.Errorf("input %T: %v", in, err)
		}
	}
}

// Seneca's first example: pattern values are typed, so a typed handler
// takes them as numbers.
func TestPatternValuesAreTyped(t *testing.T) {
	s, err := services.New("math", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type sum struct {
		Left  int  `json:"left"`
		Right int  `json:"right"`
		Exact bool `json:"exact"`
	}
	if err := services.AddFunc(s, "role:math,cmd:sum", func(ctx context.Context, in sum) (int, error) {
		if !in.Exact {
			return 0, errors.New("exact:true did not arrive as a bool")
		}
		return in.Left + in.Right, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := services.Call[int](ctxT(t), s, "role:math,cmd:sum,left:1,right:2,exact:true", nil)
	if err != nil || got != 3 {
		t.Errorf("sum = %d, %v; want 3", got, err)
	}
}

// Integers beyond 2^53 keep their digits through an act, locally and over
// a broker.
func TestLargeIntegersSurvive(t *testing.T) {
	type big struct {
		ID int64 `json:"id"`
	}
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("bigint")
		svc := e.svc(name, "1.0.0", func(s *services.Service) {
			if err := services.AddFunc(s, "role:big,cmd:echo", func(ctx context.Context, in big) (big, error) { return in, nil }); err != nil {
				t.Fatal(err)
			}
		})
		caller := e.svc(e.name("bigint-caller"), "1.0.0", nil, services.WithBrokerOnly())
		waitFor(t, caller, "role:big,cmd:echo,$$target:"+name)
		ctx := ctxT(t)
		const id = int64(1<<60 + 1)
		for via, s := range map[string]*services.Service{"local": svc, "remote": caller} {
			got, err := services.Call[big](ctx, s, "role:big,cmd:echo,$$target:"+name, big{ID: id})
			if err != nil || got.ID != id {
				t.Errorf("%s: id %d came back as %d (%v)", via, id, got.ID, err)
			}
		}
	})
}

func TestBadInput(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		s := e.svc(e.name("bad"), "1.0.0", func(s *services.Service) {
			_ = s.Add("cmd:list", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				return []int{1, 2}, nil
			}))
			addLogin(s)
		}, services.WithBrokerOnly(), services.WithMaxMessageSize(1024))
		for _, in := range []any{42, "nope", []byte(`[1,2]`), json.RawMessage(`null`), []byte(`{"a":`), func() {}} {
			if _, err := s.Act(ctx, "cmd:login", in); !errors.Is(err, services.ErrInvalidInput) {
				t.Errorf("input %T %v: err %v, want ErrInvalidInput", in, in, err)
			}
		}
		for _, p := range []string{"cmd:", "a:1,a:2", ":x", "a$:1"} {
			if _, err := s.Act(ctx, p, nil); !errors.Is(err, patterns.ErrInvalidPattern) {
				t.Errorf("pattern %q: err %v, want ErrInvalidPattern", p, err)
			}
			if err := s.Add(p, services.HandlerFunc(nil)); !errors.Is(err, patterns.ErrInvalidPattern) {
				t.Errorf("add pattern %q: err %v, want ErrInvalidPattern", p, err)
			}
		}
		if err := s.Add("k:"+strings.Repeat("x", 300), services.HandlerFunc(func(context.Context, *services.Message) (any, error) { return nil, nil })); !errors.Is(err, patterns.ErrKeyTooLong) {
			t.Errorf("long pattern: err %v, want ErrKeyTooLong", err)
		}
		_, err := s.Act(ctx, "cmd:login", map[string]any{"user": strings.Repeat("x", 2000)})
		if !errors.Is(err, bus.ErrTooLarge) {
			t.Errorf("large message: err %v, want bus.ErrTooLarge", err)
		}
		if _, err := services.Call[result](ctx, s, "cmd:list", nil); !errors.Is(err, services.ErrBadReply) {
			t.Errorf("reply []int into struct: err %v, want ErrBadReply", err)
		}
		rep, err := s.Act(ctx, "cmd:list", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rep.Map(); !errors.Is(err, services.ErrBadReply) {
			t.Errorf("Map of array: err %v, want ErrBadReply", err)
		}
		// A message the handler cannot decode is an invalid_input error.
		_, err = s.Act(ctx, "cmd:login", map[string]any{"user": 5})
		var re *rpc.Error
		if !errors.As(err, &re) || re.Code != services.CodeInvalidInput {
			t.Errorf("undecodable message: err %v, want code invalid_input", err)
		}
		// Still running.
		if got, err := services.Call[result](ctx, s, "cmd:login", login{"asd", "123"}); err != nil || got.Code != 1000 {
			t.Errorf("after bad input: %v, %v", got, err)
		}
	})
}

func TestNoRouteAndDefault(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		s := e.svc(e.name("caller"), "1.0.0", nil)
		// No route is known by the end of the discovery window, well
		// before the deadline: ErrTimeout would mean the act waited on.
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := s.Act(nctx, "role:nobody,cmd:"+e.name("x"), nil)
		if !errors.Is(err, services.ErrNoRoute) || !errors.Is(err, rpc.ErrNoRoute) {
			t.Fatalf("err %v, want ErrNoRoute", err)
		}
		rep, err := s.Act(ctx, "role:nobody", map[string]any{"default$": map[string]any{"code": 7}})
		if err != nil {
			t.Fatal(err)
		}
		var got result
		if err := rep.Decode(&got); err != nil || got.Code != 7 || rep.Service != "" {
			t.Errorf("default$ reply %s (%+v): %v", rep.Body, rep, err)
		}
	})
}

func TestPriors(t *testing.T) {
	s, err := services.New("prior", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	add := func(p string, h services.HandlerFunc) {
		t.Helper()
		if err := s.Add(p, h); err != nil {
			t.Fatal(err)
		}
	}
	add("role:math", func(ctx context.Context, m *services.Message) (any, error) {
		return map[string]any{"by": "base"}, nil
	})
	// A narrower pattern's prior is the wider one it matched when added.
	add("role:math,cmd:sum", func(ctx context.Context, m *services.Message) (any, error) {
		rep, err := services.Prior(ctx, m)
		if err != nil {
			return nil, err
		}
		out, _ := rep.Map()
		out["wrapped"] = "sum"
		return out, nil
	})
	// Adding the same pattern again replaces it; the replaced action is its prior.
	add("role:math,cmd:sum", func(ctx context.Context, m *services.Message) (any, error) {
		rep, err := services.Prior(ctx, m)
		if err != nil {
			return nil, err
		}
		out, _ := rep.Map()
		out["outer"] = true
		return out, nil
	})
	ctx := ctxT(t)
	rep, err := s.Act(ctx, "role:math,cmd:sum", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := rep.Map()
	if got["by"] != "base" || got["wrapped"] != "sum" || got["outer"] != true {
		t.Errorf("prior chain gave %v", got)
	}
	// No prior: ErrNoPrior, or default$.
	add("solo:1", func(ctx context.Context, m *services.Message) (any, error) {
		return services.Prior(ctx, m)
	})
	if _, err := s.Act(ctx, "solo:1", nil); !errors.Is(err, services.ErrNoPrior) {
		t.Errorf("no prior: err %v, want ErrNoPrior", err)
	}
	add("solo:2", func(ctx context.Context, m *services.Message) (any, error) {
		rep, err := services.Prior(ctx, map[string]any{"default$": "dflt"})
		if err != nil {
			return nil, err
		}
		return json.RawMessage(rep.Body), nil
	})
	if rep, err := s.Act(ctx, "solo:2", nil); err != nil || string(rep.Body) != `"dflt"` {
		t.Errorf("prior default$: %v %v", rep, err)
	}
	if _, err := services.Prior(ctx, nil); !errors.Is(err, services.ErrNoPrior) {
		t.Errorf("Prior outside a handler: %v", err)
	}
}

type plug struct {
	name  string
	log   *[]string
	fail  bool
	close bool
}

func (p *plug) Name() string { return p.name }
func (p *plug) Init(ctx context.Context, s *services.Service) error {
	*p.log = append(*p.log, "init "+p.name+" "+jsonString(services.PluginOptions(ctx)))
	if p.fail {
		return errors.New("boom")
	}
	return s.Add("plugin:"+p.name, services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
		return map[string]any{"plugin": p.name}, nil
	}))
}

type closingPlug struct{ plug }

func (p *closingPlug) Close(ctx context.Context) error {
	*p.log = append(*p.log, "close "+p.name)
	return nil
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestPlugins(t *testing.T) {
	var log []string
	s, err := services.New("plugged", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := s.Use(ctx, &closingPlug{plug{name: "a", log: &log}}, map[string]any{"x": 1, "y": 1}, map[string]any{"y": 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, &plug{name: "b", log: &log}); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, &closingPlug{plug{name: "c", log: &log}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, &plug{name: "a", log: &log}); !errors.Is(err, services.ErrDuplicatePlugin) {
		t.Errorf("duplicate: %v", err)
	}
	if err := s.Use(ctx, &closingPlug{plug{name: "d", log: &log, fail: true}}); err == nil {
		t.Error("failing init: no error")
	}
	if got := strings.Join(s.Plugins(), ","); got != "a,b,c" {
		t.Errorf("plugins %s", got)
	}
	if rep, err := s.Act(ctx, "plugin:b", nil); err != nil || !strings.Contains(string(rep.Body), `"b"`) {
		t.Errorf("plugin action: %v %v", rep, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := `init a {"x":1,"y":2}|init b {}|init c {}|init d {}|close c|close a`
	if got := strings.Join(log, "|"); got != want {
		t.Errorf("log\n got %s\nwant %s", got, want)
	}
	if err := s.Use(ctx, &plug{name: "e", log: &log}); !errors.Is(err, services.ErrClosed) {
		t.Errorf("Use after Close: %v", err)
	}
	if _, err := s.Act(ctx, "plugin:a", nil); !errors.Is(err, services.ErrClosed) {
		t.Errorf("Act after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestHandlerErrorsAndPanics(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		errMine := errors.New("mine")
		name := e.name("faulty")
		setup := func(s *services.Service) {
			_ = s.Add("cmd:fail", services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
				return nil, services.NewError("not_found", "no such user").WithDetails(map[string]any{"id": "7"})
			}))
			_ = s.Add("cmd:plain", services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
				return nil, errMine
			}))
			_ = s.Add("cmd:panic", services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
				panic("kaboom")
			}))
			_ = s.Add("cmd:ok", services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
				return "ok", nil
			}))
		}
		local := e.svc(name, "1.0.0", setup)
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "cmd:ok,$$target:"+name)
		for _, c := range []struct {
			name string
			s    *services.Service
		}{{"local", local}, {"remote", caller}} {
			tx := wire.NewID()
			cctx := wire.WithTx(ctx, tx)
			_, err := c.s.Act(cctx, "cmd:fail", map[string]any{"$$target": name})
			var re *rpc.Error
			if !errors.As(err, &re) || re.Code != "not_found" || re.Message != "no such user" || re.Service != name ||
				re.Version != "1.0.0" || re.Tx != tx || re.Details["id"] != "7" {
				t.Errorf("%s: err %v (%+v), want not_found from %s with tx", c.name, err, re, name)
			}
			_, err = c.s.Act(cctx, "cmd:plain", map[string]any{"$$target": name})
			if !errors.As(err, &re) || re.Code != services.CodeInternal || !strings.Contains(re.Message, "mine") {
				t.Errorf("%s: plain error %v", c.name, err)
			}
			if c.name == "local" && !errors.Is(err, errMine) {
				t.Errorf("local: errors.Is(handler's error) false: %v", err)
			}
			_, err = c.s.Act(cctx, "cmd:panic", map[string]any{"$$target": name})
			if !errors.As(err, &re) || re.Code != services.CodePanic || !strings.Contains(re.Message, "kaboom") {
				t.Errorf("%s: panic gave %v", c.name, err)
			}
			rep, err := c.s.Act(cctx, "cmd:ok", map[string]any{"$$target": name})
			if err != nil || string(rep.Body) != `"ok"` {
				t.Errorf("%s: after panic: %v %v", c.name, rep, err)
			}
			if rep != nil && rep.Local != (c.name == "local") {
				t.Errorf("%s: Local = %v", c.name, rep.Local)
			}
		}
	})
}

func TestWaitFor(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		caller := e.svc(e.name("early"), "1.0.0", nil)
		name := e.name("late")
		pattern := "role:" + name + ",cmd:hello"
		errc := make(chan error, 1)
		go func() { errc <- caller.WaitFor(ctx, pattern) }()
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := caller.WaitFor(short, pattern)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitFor before the service: %v", err)
		}
		e.svc(name, "1.0.0", func(s *services.Service) {
			_ = s.Add(pattern, services.HandlerFunc(func(context.Context, *services.Message) (any, error) { return "hi", nil }))
		})
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if rep, err := caller.Act(ctx, pattern, nil); err != nil || string(rep.Body) != `"hi"` {
			t.Errorf("act after WaitFor: %v %v", rep, err)
		}
	})
}

func TestCloseWhileBusy(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		name := e.name("busy")
		srv := e.svc(name, "1.0.0", func(s *services.Service) { whoami(s, "role:"+name) })
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "role:"+name)
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(s *services.Service) {
				defer wg.Done()
				for j := 0; j < 2000; j++ {
					actx, cancel := context.WithTimeout(ctx, time.Second)
					_, err := s.Act(actx, "role:"+name, nil)
					cancel()
					if errors.Is(err, services.ErrClosed) {
						return
					}
				}
			}([]*services.Service{srv, caller}[i%2])
		}
		// A start racing a Close ends either started or closed, never hung.
		late, err := services.New(e.name("late"), "1.0.0", services.WithBroker(e.broker()), services.WithExchanges(testAct, testRegistry))
		if err != nil {
			t.Fatal(err)
		}
		readyErr := make(chan error, 1)
		go func() { readyErr <- late.Ready(ctx) }()
		_ = late.Close()
		if err := <-readyErr; err != nil && !errors.Is(err, services.ErrClosed) {
			t.Errorf("Ready racing Close: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("close while busy: %v", err)
		}
		if err := caller.Close(); err != nil {
			t.Errorf("close caller while busy: %v", err)
		}
		wg.Wait()
	})
}

// A producer in another language may send no pattern header (WIRE.md): the
// serving instance matches the message, it does not take the catch-all.
func TestRequestWithoutPatternHeaderIsMatched(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("noheader")
		e.svc(name, "1.0.0", func(s *services.Service) {
			for pattern, answer := range map[string]string{"cmd:x": "x", "": "catch-all"} {
				answer := answer
				if err := s.Add(pattern, services.HandlerFunc(func(context.Context, *services.Message) (any, error) { return answer, nil })); err != nil {
					t.Fatal(err)
				}
			}
		})
		b := e.broker()
		client, err := rpc.NewClient(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		key, err := patterns.Key(patterns.MustParse("cmd:x").With("$$target", name).With("$$version", "1.0.0"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := client.Call(ctxT(t), rpc.Request{Exchange: testAct, Key: key, Body: []byte(`{"cmd":"x"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if string(rep.Body) != `"x"` {
			t.Errorf("answered %s, want \"x\" (the action the message matches)", rep.Body)
		}
	})
}

// A body that names its typed action goes to it undecoded: what is not a
// JSON object, or not a well-formed one, still comes back as invalid_input
// from the serving instance, which keeps running.
func TestRemoteBadBodyForTypedAction(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("typed")
		e.svc(name, "1.0.0", func(s *services.Service) { addLogin(s) })
		client, err := rpc.NewClient(context.Background(), e.broker())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		key, err := patterns.Key(patterns.MustParse("cmd:login").With("$$target", name).With("$$version", "1.0.0"))
		if err != nil {
			t.Fatal(err)
		}
		call := func(body string) (*rpc.Reply, error) {
			return client.Call(ctxT(t), rpc.Request{Exchange: testAct, Key: key, Pattern: "cmd:login", Body: []byte(body)})
		}
		for _, body := range []string{`[1,2]`, `"x"`, `{"user":`, `{"user":"asd"} {}`, `{"user":5}`, ``} {
			_, err := call(body)
			var re *rpc.Error
			if !errors.As(err, &re) || re.Code != services.CodeInvalidInput {
				t.Errorf("body %q: err %v, want code invalid_input", body, err)
			}
		}
		rep, err := call(`{"cmd":"login","user":"asd","password":"123"}`)
		if err != nil {
			t.Fatal(err)
		}
		var got result
		if err := json.Unmarshal(rep.Body, &got); err != nil || got.Code != 1000 {
			t.Errorf("after bad bodies: %s, %v", rep.Body, err)
		}
	})
}

// A service whose act queue is deleted under it declares the queue again,
// binds it and serves it: acts are answered again (in between they fail
// at once with the no-route error, never by timing out).
func TestDeletedActQueueIsDeclaredAgain(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("healing")
		e.svc(name, "1.0.0", func(s *services.Service) { addLogin(s) })
		caller := e.svc(e.name("caller"), "1.0.0", nil)
		waitFor(t, caller, "cmd:login")
		call := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			got, err := services.Call[result](ctx, caller, "cmd:login", login{"asd", "123"})
			if err == nil && got.Code != 1000 {
				t.Fatalf("answer %+v", got)
			}
			return err
		}
		if err := call(); err != nil {
			t.Fatal(err)
		}
		if err := e.broker().DeleteQueue(ctxT(t), testAct+"."+name+"@1.0.0"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the act answered again", func() bool {
			err := call()
			if err != nil && !errors.Is(err, services.ErrNoRoute) {
				t.Fatalf("act while the queue was gone: %v, want ErrNoRoute", err)
			}
			return err == nil
		})
	})
}

// A request from a producer that sent no deadline reaches its handler with
// a context that has none either (WIRE.md: a missing patbus-deadline means
// none), not one that has already expired.
func TestRemoteRequestWithoutDeadline(t *testing.T) {
	brokers(t, func(t *testing.T, e *env) {
		name := e.name("nodeadline")
		e.svc(name, "1.0.0", func(s *services.Service) {
			_ = s.Add("cmd:check", services.HandlerFunc(func(ctx context.Context, _ *services.Message) (any, error) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				_, has := ctx.Deadline()
				return map[string]bool{"deadline": has}, nil
			}))
		})
		b := e.broker()
		q := testAct + "." + name + "@1.0.0"
		reply := "patbus.test.services.noreply." + wire.NewID()[:8]
		if _, err := b.DeclareQueue(ctxT(t), bus.Queue{Name: reply, Exclusive: true, AutoDelete: true}); err != nil {
			t.Fatal(err)
		}
		sub, err := b.Consume(ctxT(t), reply, bus.ConsumeOptions{NoAck: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel(context.Background())
		// A plain publish, as a program in another language makes it: no
		// patbus header at all.
		if err := bus.PublishAndWait(ctxT(t), b, "", q, bus.Message{ContentType: "application/json",
			CorrelationID: "c-1", ReplyTo: reply, Type: "cmd:check", Body: []byte(`{"cmd":"check"}`)}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-sub.Deliveries():
			if string(d.Body) != `{"deadline":false}` {
				t.Errorf("answered %s (status %v), want a handler with no deadline", d.Body, d.Headers[wire.HeaderStatus])
			}
		case <-ctxT(t).Done():
			t.Fatal("no answer")
		}
	})
}
