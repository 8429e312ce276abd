package gateway_test

// This file holds every use of package services in the tests: the services
// behind the gateway and the caller it acts through. The rest of the tests
// know only gateway.Actor and the HTTP side.

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

// user is the entity of the user-like service.
type user struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// userBody is the JSON body of create and edit.
type userBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// users is the user-like service's store.
type users struct {
	mu   sync.Mutex
	byID map[string]user
	next int
}

// echoReply is what module:test,do:echo answers: the args it received
// and the tx id of its context.
type echoReply struct {
	Args gateway.Args `json:"args"`
	Tx   string       `json:"tx"`
}

// hooks let a test hold the action module:test,do:hold: it sends its
// args.params.n on started, then waits for release or its context.
type hooks struct {
	started chan string
	release chan struct{}
	once    sync.Once
}

func newHooks() *hooks {
	return &hooks{started: make(chan string, 1000), release: make(chan struct{})}
}

// releaseAll releases every held action, now and later.
func (h *hooks) releaseAll() { h.once.Do(func() { close(h.release) }) }

// stack is the services behind a gateway: the user service (module:user
// and module:test actions) and the caller the gateway acts through, each
// on its own service, so that every act crosses the broker.
type stack struct {
	actor gateway.Actor
	// closeUsers closes the user service, to see acts fail with no_route.
	closeUsers func()
}

// serviceSeq makes service names unique within a test run; the tx id makes
// them unique across runs on one RabbitMQ.
var serviceSeq struct {
	sync.Mutex
	n int
}

func uniqueName(prefix string) string {
	serviceSeq.Lock()
	serviceSeq.n++
	n := serviceSeq.n
	serviceSeq.Unlock()
	return prefix + "-" + patbus.NewTx()[:8] + "-" + strconv.Itoa(n)
}

// startStack starts the user service on b and the caller on callerB (b
// itself, or another connection to the same RabbitMQ), waits until the
// caller routes to the user service, and closes both (and deletes their
// queues through b) in t.Cleanup. h may be nil.
func startStack(t testing.TB, b, callerB bus.Broker, h *hooks) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	userName, callerName := uniqueName("user"), uniqueName("gw")
	testenv.DeleteQueues(t, b, "patbus.act."+userName+"@1.0.0", "patbus.act."+callerName+"@1.0.0")

	svc, err := services.New(userName, "1.0.0", services.WithBroker(b))
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	closeUsers := func() { closeOnce.Do(func() { _ = svc.Close() }) }
	t.Cleanup(closeUsers)
	addUserActions(t, svc, &users{byID: map[string]user{}}, h)
	if err := svc.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	caller, err := services.New(callerName, "1.0.0", services.WithBroker(callerB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caller.Close() })
	for _, p := range []string{"module:user,if:list", "module:test,do:echo"} {
		if err := caller.WaitFor(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return &stack{actor: caller, closeUsers: closeUsers}
}

// localActor returns a service on b with the user actions, acting on
// itself in-process, closed in t.Cleanup.
func localActor(t testing.TB, b bus.Broker, h *hooks) gateway.Actor {
	t.Helper()
	name := uniqueName("local")
	testenv.DeleteQueues(t, b, "patbus.act."+name+"@1.0.0")
	svc, err := services.New(name, "1.0.0", services.WithBroker(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	addUserActions(t, svc, &users{byID: map[string]user{}}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return svc
}

// addUserActions adds the actions of the reference route map (module:user) and
// the test actions (module:test).
func addUserActions(t testing.TB, svc *services.Service, st *users, h *hooks) {
	t.Helper()
	add := func(pattern string, fn func(ctx context.Context, in gateway.Request) (any, error)) {
		if err := services.AddFunc(svc, pattern, fn); err != nil {
			t.Fatal(err)
		}
	}
	add("module:user,if:list", func(ctx context.Context, in gateway.Request) (any, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		out := make([]user, 0, len(st.byID))
		for _, u := range st.byID {
			out = append(out, u)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return map[string]any{"users": out}, nil
	})
	add("module:user,if:load", func(ctx context.Context, in gateway.Request) (any, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		u, ok := st.byID[in.Args.Params["id"]]
		if !ok {
			return nil, services.NewError(patbus.CodeNotFound, "no user "+in.Args.Params["id"])
		}
		return u, nil
	})
	add("module:user,if:create", func(ctx context.Context, in gateway.Request) (any, error) {
		var b userBody
		if err := json.Unmarshal(in.Args.Body, &b); err != nil || b.Name == "" {
			return nil, services.NewError(patbus.CodeInvalidInput, "a user needs a name")
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if b.ID == "" {
			st.next++
			b.ID = "u" + strconv.Itoa(st.next)
		}
		if _, dup := st.byID[b.ID]; dup {
			return nil, services.NewError(patbus.CodeConflict, "user "+b.ID+" exists")
		}
		u := user(b)
		st.byID[u.ID] = u
		return u, nil
	})
	add("module:user,if:edit", func(ctx context.Context, in gateway.Request) (any, error) {
		var b userBody
		if err := json.Unmarshal(in.Args.Body, &b); err != nil || b.Name == "" {
			return nil, services.NewError(patbus.CodeInvalidInput, "a user needs a name")
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		id := in.Args.Params["id"]
		if _, ok := st.byID[id]; !ok {
			return nil, services.NewError(patbus.CodeNotFound, "no user "+id)
		}
		u := user{ID: id, Name: b.Name}
		st.byID[id] = u
		return u, nil
	})
	add("module:user,if:delete", func(ctx context.Context, in gateway.Request) (any, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		id := in.Args.Params["id"]
		if _, ok := st.byID[id]; !ok {
			return nil, services.NewError(patbus.CodeNotFound, "no user "+id)
		}
		delete(st.byID, id)
		return map[string]any{"deleted": id}, nil
	})
	add("module:test,do:echo", func(ctx context.Context, in gateway.Request) (any, error) {
		return echoReply{Args: in.Args, Tx: patbus.Tx(ctx)}, nil
	})
	add("module:test,do:fail", func(ctx context.Context, in gateway.Request) (any, error) {
		switch code := in.Args.Params["code"]; code {
		case "plain":
			return nil, errors.New("secret detail of a plain error")
		case "panic":
			panic("secret detail of a panic")
		default:
			return nil, services.NewError(code, "failed with "+code)
		}
	})
	add("module:test,do:hold", func(ctx context.Context, in gateway.Request) (any, error) {
		if h == nil {
			return nil, services.NewError(patbus.CodeInvalidInput, "no hooks")
		}
		h.started <- in.Args.Params["n"]
		select {
		case <-h.release:
			return map[string]any{"released": in.Args.Params["n"]}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// actorFunc is an Actor made of a function that returns the reply's
// body (a nil body and a nil error make a nil reply), for the failures of
// the actor itself that no service shows.
type actorFunc func(ctx context.Context, pattern string, input any) ([]byte, error)

func (f actorFunc) Act(ctx context.Context, pattern string, input any) (*services.Reply, error) {
	body, err := f(ctx, pattern, input)
	if body == nil {
		return nil, err
	}
	return &services.Reply{Body: body}, err
}

// closableService returns a service on b with no actions, its Ready
// method as a Check, and a function that closes it.
func closableService(t testing.TB, b bus.Broker) (gateway.Actor, gateway.Check, func()) {
	t.Helper()
	name := uniqueName("closing")
	testenv.DeleteQueues(t, b, "patbus.act."+name+"@1.0.0")
	svc, err := services.New(name, "1.0.0", services.WithBroker(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc, svc.Ready, func() { _ = svc.Close() }
}
