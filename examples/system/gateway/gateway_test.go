package gateway_test

import (
	"fmt"
	"reflect"
	"testing"

	sysgw "github.com/patbus/patbus/examples/system/gateway"
	patgw "github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/services"
)

// routes.json is Routes, as JSON.
func TestRoutesFile(t *testing.T) {
	fromFile, err := patgw.LoadRoutes(sysgw.RoutesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, sysgw.Routes()) {
		t.Fatalf("routes.json differs from Routes():\n%+v\n%+v", fromFile, sysgw.Routes())
	}
}

// The route map gives exactly the reference system's routes.
func TestRoutes(t *testing.T) {
	client, err := services.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	gw, err := sysgw.New(client, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range gw.Routes() {
		got = append(got, fmt.Sprintf("%s %s %s", r.Method, r.Path, r.Pattern))
	}
	want := []string{
		"POST /user if:create,module:user",
		"DELETE /user/:id if:delete,module:user",
		"PUT /user/:id if:edit,module:user",
		"GET /user if:list,module:user",
		"GET /user/:id if:load,module:user",
		"POST /login cmd:login,role:user",
		"GET /config $$target:config-server",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("routes:\n%q\nwant\n%q", got, want)
	}
}
