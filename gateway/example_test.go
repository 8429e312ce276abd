package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/services"
)

// A user service on the in-memory broker, a gateway in front of it with
// a route map of one route, and one request.
func ExampleNew() {
	b, _ := bus.NewMemory()
	defer b.Close()
	svc, _ := services.New("user", "1.0.0", services.WithBroker(b))
	defer svc.Close()
	_ = services.AddFunc(svc, "role:user,cmd:load", func(ctx context.Context, in gateway.Request) (map[string]string, error) {
		if in.Args.Params["id"] != "7" {
			return nil, services.NewError("not_found", "no user "+in.Args.Params["id"])
		}
		return map[string]string{"id": "7", "name": "Ada"}, nil
	})

	gw, _ := gateway.New(svc, []gateway.RouteSet{{
		Prefix: "/user",
		Pin:    "role:user,cmd:*",
		Map:    map[string]gateway.Action{"load": {GET: true, Name: gateway.Named(""), Suffix: "/:id"}},
	}})
	srv := httptest.NewServer(gw)
	defer srv.Close()

	for _, path := range []string{"/user/7", "/user/8"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-Request-Id", "req-1") // the tx id, else a fresh one
		res, _ := http.DefaultClient.Do(req)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(res.StatusCode, string(body))
	}
	// Output:
	// 200 {"id":"7","name":"Ada"}
	// 404 {"code":"not_found","message":"no user 8","tx":"req-1"}
}
