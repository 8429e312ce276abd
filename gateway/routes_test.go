package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/gateway"
)

// noActor is an Actor for tests that never act.
var noActor = actorFunc(func(context.Context, string, any) ([]byte, error) { return []byte("null"), nil })

// routes returns the routes of sets as "METHOD path pattern" lines.
func routes(t *testing.T, sets []gateway.RouteSet) []string {
	t.Helper()
	gw, err := gateway.New(noActor, sets)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range gw.Routes() {
		out = append(out, r.Method+" "+r.Path+" "+r.Pattern)
	}
	return out
}

// The reference route map gives the five REST routes, from JSON as from Go.
func TestSeedRoutes(t *testing.T) {
	fromJSON, err := gateway.ParseRoutes([]byte(referenceJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, []gateway.RouteSet{referenceMap()}) {
		t.Errorf("JSON and Go differ:\n%+v\n%+v", fromJSON, referenceMap())
	}
	want := []string{
		"POST /user if:create,module:user",
		"DELETE /user/:id if:delete,module:user",
		"PUT /user/:id if:edit,module:user",
		"GET /user if:list,module:user",
		"GET /user/:id if:load,module:user",
	}
	if got := routes(t, fromJSON); !reflect.DeepEqual(got, want) {
		t.Errorf("routes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// seneca-web's rules, case by case (its test/mapper.test.js and its
// documentation), in JSON.
func TestRouteMapRules(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
		want []string
	}{
		{"true is GET", `{"pin":"role:test,cmd:*","map":{"ping":true}}`,
			[]string{"GET /ping cmd:ping,role:test"}},
		{"an object without verbs is GET", `{"pin":"role:test,cmd:*","map":{"ping":{}}}`,
			[]string{"GET /ping cmd:ping,role:test"}},
		{"a custom pin", `{"pin":"ns:api,handle:*","map":{"ping":true}}`,
			[]string{"GET /ping handle:ping,ns:api"}},
		{"alias", `{"pin":"role:api,cmd:*","prefix":"/v1","postfix":"/:id","map":{"ping":{"alias":"foo/bar","GET":true,"suffix":"/x"}}}`,
			[]string{"GET /foo/bar cmd:ping,role:api"}},
		{"alias with a parameter", `{"pin":"role:api,cmd:*","map":{"members":{"alias":"player/members/:team","GET":true}}}`,
			[]string{"GET /player/members/:team cmd:members,role:api"}},
		{"a parameter in the prefix", `{"pin":"role:w,cmd:*","prefix":"/well/:event/","map":{"whoami":true}}`,
			[]string{"GET /well/:event/whoami cmd:whoami,role:w"}},
		{"prefix, postfix, suffix", `{"pin":"role:test,cmd:*","prefix":"api","postfix":"v1","map":{"ping":{"GET":true,"suffix":"/:param"}}}`,
			[]string{"GET /api/ping/v1/:param cmd:ping,role:test"}},
		{"name replaces the key in the path only", `{"pin":"role:user,cmd:*","map":{"a":{"GET":true,"name":"w"},"b":{"GET":true,"name":"x"}}}`,
			[]string{"GET /w cmd:a,role:user", "GET /x cmd:b,role:user"}},
		{"several verbs", `{"pin":"role:admin,cmd:*","prefix":"/v1","map":{"home":{"POST":true,"GET":true,"alias":"/home"}}}`,
			[]string{"GET /home cmd:home,role:admin", "POST /home cmd:home,role:admin"}},
		{"every verb, any case", `{"pin":"a:*","map":{"x":{"get":true,"Post":true,"put":true,"patch":true,"delete":true,"head":true,"options":true}}}`,
			[]string{"GET /x a:x", "HEAD /x a:x", "POST /x a:x", "PUT /x a:x", "PATCH /x a:x", "DELETE /x a:x", "OPTIONS /x a:x"}},
		{"a verb set to false is off", `{"pin":"a:*","map":{"x":{"GET":false,"POST":true}}}`,
			[]string{"POST /x a:x"}},
		{"a trailing slash stays", `{"pin":"a:*","prefix":"/api/","map":{"x":{"suffix":"/"}}}`,
			[]string{"GET /api/x/ a:x"}},
		{"paths are cleaned", `{"pin":"a:*","prefix":"//api/./v2/../v1//","map":{"x":true}}`,
			[]string{"GET /api/v1/x a:x"}},
		{"the root", `{"pin":"a:*","map":{"home":{"name":""}}}`,
			[]string{"GET / a:home"}},
		{"a pin without *", `{"pin":"role:web","map":{"x":true,"y":{"POST":true}}}`,
			[]string{"GET /x role:web", "POST /y role:web"}},
		{"a glob in another pair", `{"pin":"role:web*,cmd:*","map":{"x":true}}`,
			[]string{"GET /x cmd:x,role:web*"}},
		{"a key that needs quotes", `{"pin":"a:*","map":{"x y":{"name":"xy"}}}`,
			[]string{`GET /xy a:"x y"`}},
		{"a numeric key", `{"pin":"a:*","map":{"7":true}}`,
			[]string{"GET /7 a:7"}},
		{"several sets", `[{"pin":"a:*","map":{"x":true}},{"pin":"b:*","prefix":"/b","map":{"x":true}}]`,
			[]string{"GET /x a:x", "GET /b/x b:x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sets, err := gateway.ParseRoutes([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			if got := routes(t, sets); !reflect.DeepEqual(got, c.want) {
				t.Errorf("routes %q, want %q", got, c.want)
			}
		})
	}
}

// Route maps the gateway refuses, with the reason it gives.
func TestRouteMapErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
		want string // in the error
	}{
		{"no pin", `{"map":{"x":true}}`, "no pin"},
		{"a bad pin", `{"pin":"a:","map":{"x":true}}`, "pin"},
		{"two globs", `{"pin":"a:*,b:*","map":{"x":true}}`, "more than one"},
		{"an empty map", `{"pin":"a:*","map":{}}`, "empty map"},
		{"an empty key", `{"pin":"a:*","map":{"":true}}`, "empty key"},
		{"false", `{"pin":"a:*","map":{"x":false}}`, "true or an object"},
		{"null", `{"pin":"a:*","map":{"x":null}}`, "true or an object"},
		{"a number", `{"pin":"a:*","map":{"x":1}}`, "true or an object"},
		{"middleware", `{"pin":"a:*","map":{"x":{"GET":true,"middleware":"auth"}}}`, `unknown key "middleware"`},
		{"auth", `{"pin":"a:*","map":{"x":{"auth":{"strategy":"local"}}}}`, `unknown key "auth"`},
		{"secure", `{"pin":"a:*","map":{"x":{"secure":{"fail":"/"}}}}`, `unknown key "secure"`},
		{"a verb that is not a bool", `{"pin":"a:*","map":{"x":{"GET":"true"}}}`, "a verb takes true or false"},
		{"a verb that is null", `{"pin":"a:*","map":{"x":{"GET":null}}}`, "a verb takes true or false"},
		{"every verb false", `{"pin":"a:*","map":{"x":{"GET":false}}}`, "every verb the action names is false"},
		{"every verb false, with a name", `{"pin":"a:*","map":{"x":{"GET":false,"POST":false,"name":"y"}}}`, "every verb the action names is false"},
		{"a verb twice", `{"pin":"a:*","map":{"x":{"get":true,"GET":false}}}`, "given twice"},
		{"a null name", `{"pin":"a:*","map":{"x":{"GET":true,"name":null}}}`, "name: null"},
		{"a set-level middleware", `{"pin":"a:*","middleware":["m"],"map":{"x":true}}`, `unknown field "middleware"`},
		{"two routes on one path", `{"pin":"a:*","map":{"x":{"name":""},"y":{"name":""}}}`, "both route GET /"},
		{"parameters named apart", `{"pin":"a:*","map":{"x":{"name":"","suffix":"/:id"},"y":{"name":"","suffix":"/:key"}}}`, "both route GET /{}"},
		{"the health path", `{"pin":"a:*","map":{"healthz":true}}`, "the health endpoint"},
		{"an optional parameter", `{"pin":"a:*","map":{"x":{"suffix":"/:id?"}}}`, "parameter"},
		{"a parameter inside a segment", `{"pin":"a:*","map":{"x":{"suffix":"/:from-:to"}}}`, "parameter"},
		{"a star", `{"pin":"a:*","map":{"x":{"suffix":"/*"}}}`, "not supported"},
		{"a regexp", `{"pin":"a:*","map":{"x":{"suffix":"/(\\d+)"}}}`, "not supported"},
		{"paths neither more specific", `{"pin":"a:*","map":{"x":{"alias":"/a/:x/b"},"y":{"alias":"/a/c/:y"}}}`, "conflicts"},
		{"a parameter twice", `{"pin":"a:*","map":{"x":{"suffix":"/:id/:id"}}}`, "twice"},
		{"a query", `{"pin":"a:*","map":{"x":{"suffix":"?a=1"}}}`, "not supported"},
		{"a set-level and an action-level error", `[{"map":{"x":true}},{"pin":"a:*","map":{"x":{"suffix":"/*"}}}]`, "no pin"},
		{"trailing data", `{"pin":"a:*","map":{"x":true}} {}`, "after"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sets, err := gateway.ParseRoutes([]byte(c.json))
			if err == nil {
				_, err = gateway.New(noActor, sets)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, patbus.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want ErrInvalidConfig and %q", err, c.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := gateway.ParseRoutes([]byte(`[{"map":{"x":true}},{"pin":"a:*","map":{"x":{"suffix":"/*"}}}]`))
	if err == nil || !strings.Contains(err.Error(), "no pin") || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("error %v, want both problems", err)
	}
}

// Route maps load from a file; an Action written as JSON reads back the
// same.
func TestLoadRoutes(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "routes.json")
	if err := os.WriteFile(name, []byte(referenceJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	sets, err := gateway.LoadRoutes(name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sets, []gateway.RouteSet{referenceMap()}) {
		t.Errorf("loaded %+v", sets)
	}
	written, err := json.Marshal([]gateway.RouteSet{referenceMap(), testSet()})
	if err != nil {
		t.Fatal(err)
	}
	if back, err := gateway.ParseRoutes(written); err != nil || !reflect.DeepEqual(back, []gateway.RouteSet{referenceMap(), testSet()}) {
		t.Errorf("route map written as JSON and read back: %v\n%s", err, written)
	}
	if _, err := gateway.LoadRoutes(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"pin":"a:*","map":{"x":{"auth":true}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.LoadRoutes(bad); !errors.Is(err, patbus.ErrInvalidConfig) || !strings.Contains(err.Error(), bad) {
		t.Errorf("a bad file: %v", err)
	}
}

// Options are checked at once, every problem reported.
func TestOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []gateway.Option
		want []string
	}{
		{"negative timeouts", []gateway.Option{gateway.WithReadTimeout(-1), gateway.WithIdleTimeout(-1)}, []string{"read timeout", "idle timeout"}},
		{"write timeout within the act's", []gateway.Option{gateway.WithTimeout(time.Minute)}, []string{"write timeout"}},
		{"limits", []gateway.Option{gateway.WithMaxBodyBytes(0), gateway.WithMaxDepth(0)}, []string{"max body", "max depth"}},
		{"health paths", []gateway.Option{gateway.WithHealthPaths("x", "x")}, []string{"not a plain path", "both"}},
		{"a nil check", []gateway.Option{gateway.WithReadiness(nil)}, []string{"check 0 is nil"}},
		{"shutdown and ready timeouts", []gateway.Option{gateway.WithShutdownTimeout(0), gateway.WithReadyTimeout(0)}, []string{"shutdown", "ready"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gateway.New(noActor, []gateway.RouteSet{referenceMap()}, c.opts...)
			if !errors.Is(err, patbus.ErrInvalidConfig) {
				t.Fatalf("error %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := gateway.New(nil, []gateway.RouteSet{referenceMap()}); !errors.Is(err, patbus.ErrInvalidConfig) {
		t.Errorf("nil actor: %v", err)
	}
	// Zero timeouts are off, and valid.
	if _, err := gateway.New(noActor, []gateway.RouteSet{referenceMap()}, gateway.WithTimeout(0), gateway.WithWriteTimeout(0),
		gateway.WithReadTimeout(0), gateway.WithReadHeaderTimeout(0), gateway.WithIdleTimeout(0), nil); err != nil {
		t.Errorf("zero timeouts: %v", err)
	}
}

// HTTPStatus maps codes to statuses.
func TestHTTPStatus(t *testing.T) {
	for code, want := range map[string]int{
		"invalid_input": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404,
		"method_not_allowed": 405, "conflict": 409, "too_large": 413, "unsupported_media_type": 415,
		"canceled": 499, "interrupted": 502, "no_route": 503, "unavailable": 503, "no_action": 503, "closed": 503,
		"rejected": 503, "timeout": 504, "internal": 500, "panic": 500, "teapot": 500, "": 500,
	} {
		if got := gateway.HTTPStatus(code); got != want {
			t.Errorf("HTTPStatus(%q) = %d, want %d", code, got, want)
		}
	}
}
