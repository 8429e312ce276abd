package services_test

import (
	"context"
	"fmt"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/services"
)

type Login struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type Result struct {
	Code int `json:"code"`
}

// A whole service and a caller on the in-memory broker: the caller learns
// the user service from the catalog and acts on it.
func ExampleService() {
	ctx := context.Background()
	b, _ := bus.NewMemory()
	defer b.Close()

	user, _ := services.New("user", "1.0.0", services.WithBroker(b))
	defer user.Close()
	_ = services.AddFunc(user, "role:user,cmd:login", func(ctx context.Context, in Login) (Result, error) {
		if in.User == "asd" && in.Password == "123" {
			return Result{Code: 1000}, nil
		}
		return Result{Code: 2100}, nil
	})
	_ = user.Ready(ctx)

	web, _ := services.New("web", "1.0.0", services.WithBroker(b))
	defer web.Close()
	_ = web.WaitFor(ctx, "role:user,cmd:login")
	ok, _ := services.Call[Result](ctx, web, "role:user,cmd:login", Login{User: "asd", Password: "123"})
	bad, _ := services.Call[Result](ctx, web, "role:user,cmd:login", Login{User: "asd", Password: "x"})
	fmt.Println(ok.Code, bad.Code)
	// Output: 1000 2100
}

// default$ answers where no action matches.
func ExampleService_Act_default() {
	ctx := context.Background()
	svc, _ := services.New("caller", "1.0.0")
	defer svc.Close()
	rep, err := svc.Act(ctx, "role:config,cmd:get", map[string]any{"default$": map[string]any{"port": 8080}})
	fmt.Println(string(rep.Body), err)
	// Output: {"port":8080} <nil>
}

// Prior calls the action a pattern replaced or narrowed.
func ExamplePrior() {
	ctx := context.Background()
	svc, _ := services.New("math", "1.0.0")
	defer svc.Close()
	_ = svc.Add("role:math,cmd:sum", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
		return map[string]any{"sum": m.Get("a").(float64) + m.Get("b").(float64)}, nil
	}))
	// Override: round the inputs, then call the original.
	_ = svc.Add("role:math,cmd:sum", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
		in := map[string]any{"a": float64(int(m.Get("a").(float64))), "b": float64(int(m.Get("b").(float64)))}
		rep, err := services.Prior(ctx, in)
		if err != nil {
			return nil, err
		}
		return rep.Map()
	}))
	rep, _ := svc.Act(ctx, "role:math,cmd:sum", map[string]any{"a": 1.5, "b": 2.7})
	fmt.Println(string(rep.Body))
	// Output: {"sum":3}
}
