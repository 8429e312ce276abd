package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/examples/system/account"
	"github.com/patbus/patbus/examples/system/internal/systest"
	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// setup returns the account service over a database with the sample
// users, and the id of 甲.
func setup(t *testing.T) (*account.Service, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, _ := systest.DB(t)
	m, err := user.New(ctx, db, user.WithBcryptCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	u, err := m.Collection().LoadBy(ctx, store.Filter{"name": "甲"})
	if err != nil {
		t.Fatal(err)
	}
	return account.New(m.Collection()), u.ID
}

func TestGetUserByID(t *testing.T) {
	a, id := setup(t)
	ctx := context.Background()
	tests := []struct {
		name string
		req  account.Request
		want string
	}{
		{"a user", account.Request{Method: "getUserById", UID: id}, `{"state":1000,"msg":"ok","data":{"uid":"` + id + `","name":"甲","created":`},
		{"without the method", account.Request{UID: id}, `{"state":1000,"msg":"ok"`},
		{"no such user", account.Request{UID: store.NewID()}, `{"state":2000,"msg":"user not found","data":null}`},
		{"not an id", account.Request{UID: "2"}, `{"state":2000,"msg":"user not found","data":null}`},
		{"another method", account.Request{Method: "deleteEverything", UID: id}, `{"state":2000,"msg":"unknown method deleteEverything","data":null}`},
	}
	for _, tt := range tests {
		resp, err := a.GetUserByID(ctx, tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := json.Marshal(resp)
		if len(b) < len(tt.want) || string(b[:len(tt.want)]) != tt.want {
			t.Errorf("%s: %s, want %s…", tt.name, b, tt.want)
		}
	}
	b, err := a.Answer(ctx, []byte(`not json`))
	if err != nil || !json.Valid(b) || string(b[:len(`{"state":2000,"msg":"bad request:`)]) != `{"state":2000,"msg":"bad request:` {
		t.Errorf("a request that is not JSON: %s %v", b, err)
	}
	for _, tt := range uidTests(id) {
		b, err := a.Answer(ctx, []byte(tt.body))
		if err != nil || !strings.HasPrefix(string(b), tt.want) {
			t.Errorf("%s: %s %v, want %s…", tt.body, b, err, tt.want)
		}
	}
}

// uidTests are request bodies whose uid is of each JSON type, and the
// start of their answers. (examples/rpcaccount's client sends a number.)
func uidTests(id string) []struct{ body, want string } {
	const notFound = `{"state":2000,"msg":"user not found","data":null}`
	return []struct{ body, want string }{
		{`{"uid":"` + id + `"}`, `{"state":1000,"msg":"ok","data":{"uid":"` + id + `","name":"甲"`},
		{`{"uid":2}`, notFound},
		{`{"method":"getUserById","uid":2}`, notFound},
		// 24 decimal digits look like an id's hexadecimal ones, but a
		// number is never an id.
		{`{"uid":123456789012345678901234}`, notFound},
		{`{"uid":-1.5e3}`, notFound},
		{`{"uid":null}`, notFound},
		{`{}`, notFound},
		{`{"uid":{"$ne":""}}`, `{"state":2000,"msg":"bad request: the uid is an object, not a string or a number","data":null}`},
		{`{"uid":["` + id + `"]}`, `{"state":2000,"msg":"bad request: the uid is an array, not a string or a number","data":null}`},
		{`{"uid":true}`, `{"state":2000,"msg":"bad request: the uid is a boolean, not a string or a number","data":null}`},
		{`[1]`, `{"state":2000,"msg":"bad request: account: the request is an array, not a JSON object","data":null}`},
		{`{"method":7,"uid":"` + id + `"}`, `{"state":2000,"msg":"bad request: `},
	}
}

// The RPC on its queue and the action, on both brokers.
func TestOnTheBus(t *testing.T) {
	a, id := setup(t)
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ns := systest.Name("patbus-test-account-")
		queue := ns + "." + account.Queue
		testenv.DeleteQueues(t, b, queue, ns+".act.account@1.0.0")
		srv, err := a.Server(ctx, b, queue)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		resp, err := account.Call(ctx, b, queue, account.Request{Method: account.Method, UID: id})
		if err != nil || resp.State != account.StateOK || resp.Data == nil || resp.Data.Name != "甲" || resp.Data.UID != id {
			t.Fatalf("RPC for 甲: %+v %v", resp, err)
		}
		resp, err = account.Call(ctx, b, queue, account.Request{UID: store.NewID()})
		if err != nil || resp.State != account.StateNotFound || resp.Data != nil {
			t.Fatalf("RPC for nobody: %+v %v", resp, err)
		}
		// A uid of each JSON type, in the request's body as any client
		// of the queue sends it.
		for _, tt := range uidTests(id) {
			if got := systest.CallQueue(t, ctx, b, queue, tt.body); !strings.HasPrefix(got, tt.want) {
				t.Errorf("RPC %s: %s, want %s…", tt.body, got, tt.want)
			}
		}
		// Nobody on the queue: the RPC fails at once.
		if _, err := account.Call(ctx, b, ns+".nobody", account.Request{UID: id}); !errors.Is(err, patbus.ErrNoRoute) {
			t.Fatalf("RPC to a queue nobody serves: %v, want ErrNoRoute", err)
		}

		deleteExchanges(t, b, ns+".act", ns+".registry")
		opts := []services.Option{services.WithBroker(b), services.WithExchanges(ns+".act", ns+".registry")}
		svc, err := services.New("account", "1.0.0", opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		if err := a.Register(svc); err != nil {
			t.Fatal(err)
		}
		if err := svc.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		caller, err := services.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer caller.Close()
		if err := caller.WaitFor(ctx, account.Pattern); err != nil {
			t.Fatal(err)
		}
		got, err := services.Call[account.Response](ctx, caller, account.Pattern, account.Request{UID: id})
		if err != nil || got.State != account.StateOK || got.Data.Name != "甲" {
			t.Fatalf("act %s: %+v %v", account.Pattern, got, err)
		}
		// The act with a uid of each type: a number is no user, another
		// type is a bad request, both answered, not failed.
		acts := []struct {
			uid  any
			want string
		}{
			{2, "user not found"},
			{map[string]any{"$ne": ""}, "bad request: the uid is an object, not a string or a number"},
			{true, "bad request: the uid is a boolean, not a string or a number"},
			{id, "ok"},
		}
		for _, tt := range acts {
			got, err := services.Call[account.Response](ctx, caller, account.Pattern, map[string]any{"uid": tt.uid})
			if err != nil || got.Msg != tt.want {
				t.Errorf("act %s with the uid %v: %+v %v, want the msg %q", account.Pattern, tt.uid, got, err, tt.want)
			}
		}
	})
}

// deleteExchanges deletes the test's exchanges from b at its end, before
// the broker closes.
func deleteExchanges(t *testing.T, b bus.Broker, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range names {
			if err := b.DeleteExchange(ctx, n); err != nil {
				t.Logf("delete exchange %s: %v", n, err)
			}
		}
	})
}
