// Package gateway is the reference system's HTTP gateway: patbus's
// gateway package with the system's route map, acting through a
// services client (services.NewClient), so that every request becomes an
// act on the bus.
//
// # Routes
//
// Routes is the route map of the reference system, in seneca-web's shape
// (routes.json holds the same map as JSON, for LoadRoutes):
//
//	{prefix: "/user", pin: "module:user,if:*",
//	 map: {list:   {GET: true,    name: ""},
//	       load:   {GET: true,    name: "", suffix: "/:id"},
//	       edit:   {PUT: true,    name: "", suffix: "/:id"},
//	       create: {POST: true,   name: ""},
//	       delete: {DELETE: true, name: "", suffix: "/:id"}}}
//	{pin: "role:user,cmd:*", map: {login: {POST: true}}}
//	{prefix: "/config", pin: "$$target:config-server", map: {get: {GET: true, name: ""}}}
//
// that is GET /user, GET /user/:id, PUT /user/:id, POST /user,
// DELETE /user/:id (module:user,if:list, load, edit, create, delete:
// package user), POST /login (role:user,cmd:login) and GET /config (the
// config service's configuration).
//
// # Statuses
//
// A reply is 200 with the action's JSON. The errors the system produces
// come back with the statuses of patbus's gateway: 400 for a malformed
// id, body or JSON, 404 for a user that is not there (load) and for an
// unknown path, 405 for a verb a path does not take, 409 for a name that
// is taken, 413 for a body over the limit (1 MiB), 415 for a body that is
// not JSON, 503 while no instance serves a pattern (the user service is
// down and the catalog knows it), 504 when the act's deadline passes
// (the user service died with the request), 500 for anything else.
package gateway
