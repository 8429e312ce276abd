// Package user is the user module of the reference system: the actions
// module:user,if:list|load|edit|create|delete that the gateway's /user
// routes act on, and role:user,cmd:login, over users kept in MongoDB
// through package store.
//
// # Actions
//
// The module's actions take the gateway's input (gateway.Request: the
// request's path parameters, query and JSON body under "args", as
// seneca-web sends them) and answer as the reference system's handlers do:
//
//	module:user,if:list    GET    /user       the users, by id: [{"id":…,"name":"甲",…},…]
//	module:user,if:load    GET    /user/:id   the user {"id":…,"name":…,"created":…,"updated":…}
//	module:user,if:create  POST   /user       body {"name":…,"password":…}; the new user
//	module:user,if:edit    PUT    /user/:id   body {"name":…} and/or {"password":…}; {"success":true,"user":{…}}
//	module:user,if:delete  DELETE /user/:id   {"success":true}
//	role:user,cmd:login    POST   /login      {"user":…,"password":…}; {"code":1000} or {"code":2100}
//
// list answers the users in the order of their ids, which are MongoDB
// ObjectIDs: by the second they were created in; within one second,
// users created by one process in creation order, users created by
// different processes in no set order. It is not an exact "oldest first".
//
// A user's JSON never holds its password. Names are UTF-8 text of 1 to
// MaxNameLength characters (the sample users are 甲, 乙 and 丙), unique:
// the collection has a unique index on the name.
//
// Two spellings of one name are one name. A name is stored without
// surrounding white space and in Unicode's composed form (NFC, by
// golang.org/x/text/unicode/norm), so that "é" spelt as e and a combining
// accent is the same name as "é" spelt as one character; a name holding
// a control character or an invisible format character (category Cf:
// zero-width spaces, byte order marks, bidi controls) is refused.
// Login looks the name it is given up in the same form.
//
// # Missing users and bad input
//
// edit and delete of an id that no user has answer {"success":false},
// with status 200 through the gateway, as the reference system's handlers
// do; load of such an id fails with "not_found" (404 through the
// gateway), because it has no user to answer with. Everything else is a
// typed error that the gateway maps to a status: an id that is not an id
// at all (not 24 lower-case hexadecimal digits) is "invalid_input" (400)
// for every action, as is a body with a missing or malformed name, an
// empty or too long password or an unknown field; a name that another
// user has is "conflict" (409), on create and on edit; a store that
// cannot be reached is "unavailable" (503).
//
// # Login
//
// role:user,cmd:login takes {"user":name,"password":…} at the top of the
// message, as examples/login's callers send it, or in args.body, as the
// gateway's POST /login sends it, and answers {"code":1000} (LoginOK)
// when a user of that name (trimmed and in NFC, as names are stored)
// exists and the password matches its bcrypt hash
// (golang.org/x/crypto/bcrypt), {"code":2100} (LoginFailed) otherwise,
// with the same work done either way. A user created without a password
// never logs in.
//
// # Sample users
//
// New creates the collection's unique index and, when the collection is
// empty, the sample users (Samples): asd, the user of examples/login, and
// 甲, 乙 and 丙, each with the password "123". Instances that start at
// once do not create them twice: the unique index refuses the second.
// WithSamples(nil) creates none, as the system's user command and the
// whole system do with -samples=false: a deployment of one's own wants
// no account whose password everybody knows.
//
// # Concurrency
//
// A Module is safe for concurrent use; its actions run concurrently on
// the service's goroutines. Two edits of one user at once that set
// different fields (a name, a password) both stay: MongoDB applies each
// update atomically, and on FerretDB, whose update reads and writes back
// in two steps, patbus/store serializes the updates of one user made
// through the service's DB.
package user
