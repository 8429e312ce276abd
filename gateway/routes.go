package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/patterns"
)

// RouteSet is one entry of a route map, in seneca-web's shape: a pin whose
// glob key ("cmd:*") takes each action name of Map, and the path parts
// around each action's name.
//
//	gateway.RouteSet{
//		Prefix: "/user",
//		Pin:    "module:user,if:*",
//		Map: map[string]gateway.Action{
//			"list": {GET: true, Name: gateway.Named("")},
//			"load": {GET: true, Name: gateway.Named(""), Suffix: "/:id"},
//		},
//	}
//
// maps GET /user to the act "if:list,module:user" and GET /user/:id to
// "if:load,module:user". The package documentation gives the rules.
type RouteSet struct {
	// Prefix comes first in every path of the set ("/user", "/v1/:tenant").
	Prefix string `json:"prefix,omitempty"`
	// Pin is the pattern acted on; the value "*" of at most one of its
	// pairs is replaced by the action's key in Map. A pin without a "*"
	// is acted as it is by every action of the set.
	Pin string `json:"pin"`
	// Postfix comes after the action's name in every path of the set.
	Postfix string `json:"postfix,omitempty"`
	// Map holds the actions, by key (the value the pin's "*" takes).
	Map map[string]Action `json:"map"`
}

// Action is one entry of RouteSet.Map: the verbs it answers and how its
// path is made. Its zero value is seneca-web's `true`: GET on
// Prefix/key/Postfix.
//
// In JSON an Action is either true (the zero Action) or an object with
// the keys GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS (booleans; the
// case of the verb does not matter), name, alias and suffix. Any other
// key, and seneca-web's middleware, auth, secure, redirect and autoreply
// in particular, is refused, so that a route map written for seneca-web
// never loses an access rule without a word.
type Action struct {
	// The verbs the action answers. None set means GET. A GET route also
	// answers HEAD, as every net/http GET route does.
	GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS bool
	// Name replaces the key as the action's part of the path when it is
	// not nil; Named("") leaves the part out (REST collections). It never
	// changes the pattern acted on, which always takes the key.
	Name *string
	// Alias, when set, is the whole path: Prefix, Name, Postfix and Suffix
	// are ignored.
	Alias string
	// Suffix comes last in the path, after the set's Postfix ("/:id").
	Suffix string
}

// Named returns a pointer to name, for Action.Name:
// Action{GET: true, Name: gateway.Named("")}.
func Named(name string) *string { return &name }

// The verbs an Action may name, in the order routes are listed.
var verbs = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// methods returns the verbs a names, or GET when it names none.
func (a Action) methods() []string {
	set := [...]bool{a.GET, a.HEAD, a.POST, a.PUT, a.PATCH, a.DELETE, a.OPTIONS}
	var out []string
	for i, on := range set {
		if on {
			out = append(out, verbs[i])
		}
	}
	if len(out) == 0 {
		out = []string{"GET"}
	}
	return out
}

func (a *Action) setVerb(verb string, on bool) bool {
	switch strings.ToUpper(verb) {
	case "GET":
		a.GET = on
	case "HEAD":
		a.HEAD = on
	case "POST":
		a.POST = on
	case "PUT":
		a.PUT = on
	case "PATCH":
		a.PATCH = on
	case "DELETE":
		a.DELETE = on
	case "OPTIONS":
		a.OPTIONS = on
	default:
		return false
	}
	return true
}

// UnmarshalJSON reads an Action from true or from an object (see Action).
func (a *Action) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if string(data) == "true" {
		*a = Action{}
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("an action is true or an object, not %.40s", data)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	var out Action
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	named := map[string]string{} // verbs seen, upper case → key as written
	verbOn := false
	for _, k := range keys {
		raw := fields[k]
		switch k {
		case "name":
			var s string
			if string(bytes.TrimSpace(raw)) == "null" {
				// Go would read null as "", which leaves the key out of
				// the path: say what is meant instead.
				errs = append(errs, errors.New(`name: null (leave the key out to use the action's key, or give "" to leave it out of the path)`))
				continue
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				errs = append(errs, fmt.Errorf("name: %w", err))
				continue
			}
			out.Name = &s
		case "alias":
			errs = appendErr(errs, "alias", json.Unmarshal(raw, &out.Alias))
		case "suffix":
			errs = appendErr(errs, "suffix", json.Unmarshal(raw, &out.Suffix))
		default:
			var on bool
			if !out.setVerb(k, false) {
				errs = append(errs, fmt.Errorf("unknown key %q (the gateway knows the verbs, name, alias and suffix)", k))
				continue
			}
			if prev, dup := named[strings.ToUpper(k)]; dup {
				errs = append(errs, fmt.Errorf("the verb %s is given twice (%q and %q)", strings.ToUpper(k), prev, k))
				continue
			}
			named[strings.ToUpper(k)] = k
			if string(bytes.TrimSpace(raw)) == "null" || json.Unmarshal(raw, &on) != nil {
				errs = append(errs, fmt.Errorf("%s: a verb takes true or false", k))
				continue
			}
			verbOn = verbOn || on
			out.setVerb(k, on)
		}
	}
	if len(named) > 0 && !verbOn && len(errs) == 0 {
		// None set would mean GET; an action that turns every verb it
		// names off most likely means no route at all.
		errs = append(errs, errors.New("every verb the action names is false: remove the action, or set a verb true"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	*a = out
	return nil
}

func appendErr(errs []error, what string, err error) []error {
	if err != nil {
		return append(errs, fmt.Errorf("%s: %w", what, err))
	}
	return errs
}

// MarshalJSON writes the Action as an object with its verbs and the
// fields that are set, the form UnmarshalJSON reads.
func (a Action) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	set := [...]bool{a.GET, a.HEAD, a.POST, a.PUT, a.PATCH, a.DELETE, a.OPTIONS}
	for i, on := range set {
		if on {
			m[verbs[i]] = true
		}
	}
	if a.Name != nil {
		m["name"] = *a.Name
	}
	if a.Alias != "" {
		m["alias"] = a.Alias
	}
	if a.Suffix != "" {
		m["suffix"] = a.Suffix
	}
	return json.Marshal(m)
}

// ParseRoutes reads a route map from JSON: one route set (an object) or
// an array of them, as seneca-web accepts. Unknown keys are errors. The
// result is checked as New checks it; errors wrap patbus.ErrInvalidConfig.
func ParseRoutes(data []byte) ([]RouteSet, error) {
	data = bytes.TrimSpace(data)
	var sets []RouteSet
	var err error
	if len(data) > 0 && data[0] == '{' {
		var one RouteSet
		err = strictUnmarshal(data, &one)
		sets = []RouteSet{one}
	} else {
		err = strictUnmarshal(data, &sets)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: route map: %w: %w", patbus.ErrInvalidConfig, err)
	}
	if _, err := compile(sets); err != nil {
		return nil, err
	}
	return sets, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the route map")
	}
	return nil
}

// LoadRoutes reads a route map from a JSON file (see ParseRoutes).
func LoadRoutes(name string) ([]RouteSet, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("gateway: route map: %w", err)
	}
	sets, err := ParseRoutes(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, name)
	}
	return sets, nil
}

// Route is one route a route map gives: a verb and a path, and the
// pattern acted on. Gateway.Routes lists them.
type Route struct {
	// Method is the HTTP verb.
	Method string
	// Path is the path in seneca-web's (Express's) syntax: "/user/:id".
	Path string
	// Pattern is the canonical pattern acted on: "if:load,module:user".
	Pattern string
	// Set is the index of the route set in the route map.
	Set int
	// Key is the action's key in the set's Map.
	Key string

	params []string // the names of Path's parameters
	mux    string   // the http.ServeMux pattern, without the method
}

// compile turns route sets into routes, in order: set by set, actions by
// key, verbs in the order GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS. It
// reports every problem at once; errors wrap patbus.ErrInvalidConfig.
func compile(sets []RouteSet) ([]Route, error) {
	var out []Route
	var errs []error
	for i, set := range sets {
		where := fmt.Sprintf("route set %d", i)
		if set.Prefix != "" {
			where += fmt.Sprintf(" (prefix %q)", set.Prefix)
		}
		if set.Pin == "" {
			errs = append(errs, fmt.Errorf("%s: no pin", where))
			continue
		}
		pin, err := patterns.Parse(set.Pin)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: pin: %w", where, err))
			continue
		}
		pairs := pin.Pairs()
		glob := -1
		for j, p := range pairs {
			if p.Value == "*" {
				if glob >= 0 {
					err = fmt.Errorf("%s: pin %q has more than one key with the value *", where, set.Pin)
				}
				glob = j
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(set.Map) == 0 {
			errs = append(errs, fmt.Errorf("%s: empty map", where))
			continue
		}
		keys := make([]string, 0, len(set.Map))
		for k := range set.Map {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			a := set.Map[key]
			if key == "" {
				errs = append(errs, fmt.Errorf("%s: an action with an empty key", where))
				continue
			}
			pattern := pin.String()
			if glob >= 0 {
				ps := append([]patterns.Pair(nil), pairs...)
				ps[glob].Value = key
				p, err := patterns.FromPairs(ps...)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: action %q: %w", where, key, err))
					continue
				}
				pattern = p.String()
			}
			part := key
			if a.Name != nil {
				part = *a.Name
			}
			var p string
			if a.Alias != "" {
				p = joinPath(a.Alias)
			} else {
				p = joinPath(set.Prefix, part, set.Postfix, a.Suffix)
			}
			mux, params, err := muxPath(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: action %q: path %q: %w", where, key, p, err))
				continue
			}
			for _, m := range a.methods() {
				out = append(out, Route{Method: m, Path: p, Pattern: pattern, Set: i, Key: key, params: params, mux: mux})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("gateway: route map: %w: %w", patbus.ErrInvalidConfig, err)
	}
	return out, nil
}
