package gateway

import (
	patgw "github.com/patbus/patbus/gateway"
)

// DefaultAddr is where the reference system's gateway listens by default.
const DefaultAddr = "127.0.0.1:8080"

// RoutesFile is the name of the file, beside this package's source, that
// holds Routes as JSON.
const RoutesFile = "routes.json"

// Routes returns the route map of the reference system (see the package
// documentation); each call returns a new value.
func Routes() []patgw.RouteSet {
	named := patgw.Named
	return []patgw.RouteSet{
		{
			Prefix: "/user",
			Pin:    "module:user,if:*",
			Map: map[string]patgw.Action{
				"list":   {GET: true, Name: named("")},
				"load":   {GET: true, Name: named(""), Suffix: "/:id"},
				"edit":   {PUT: true, Name: named(""), Suffix: "/:id"},
				"create": {POST: true, Name: named("")},
				"delete": {DELETE: true, Name: named(""), Suffix: "/:id"},
			},
		},
		{
			Pin: "role:user,cmd:*",
			Map: map[string]patgw.Action{"login": {POST: true}},
		},
		{
			Prefix: "/config",
			Pin:    "$$target:config-server",
			Map:    map[string]patgw.Action{"get": {GET: true, Name: named("")}},
		},
	}
}

// New returns a gateway that serves routes (Routes when nil) by acting
// through actor (a services client), listening on DefaultAddr unless an
// option says otherwise.
func New(actor patgw.Actor, routes []patgw.RouteSet, opts ...patgw.Option) (*patgw.Gateway, error) {
	if routes == nil {
		routes = Routes()
	}
	return patgw.New(actor, routes, append([]patgw.Option{patgw.WithAddr(DefaultAddr)}, opts...)...)
}
