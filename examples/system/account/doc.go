// Package account is the account service of the reference system: it
// answers getUserById, as RabbitMQ's RPC tutorial answers on a queue
// (examples/rpcaccount), from the users the user module keeps in MongoDB.
//
// # The RPC
//
// A request is a JSON object naming the method and the user's id:
//
//	{"method":"getUserById","uid":"65f1c0ffee0123456789abcd"}
//
// ("method" may be left out; getUserById is the only one). The uid may
// also be a JSON number, as examples/rpcaccount's clients send it
// ({"uid":2}); a number is never an id, so it is answered as an id that
// no user has. The answer has the shape of examples/rpcaccount's:
//
//	{"state":1000,"msg":"ok","data":{"uid":"65f1…","name":"甲","created":"…"}}
//	{"state":2000,"msg":"user not found","data":null}
//
// StateNotFound (2000) also answers, on the queue and as the action
// alike, an id that is not an id, with the same msg, "user not found", as
// an id that no user has; a uid that is neither a string nor a number,
// with a msg naming its type ("bad request: the uid is an object, …");
// and an unknown method ("unknown method …"). On the queue, a request
// that is not a JSON object is answered so too ("bad request: …"); as the
// action, it fails with "invalid_input". A store that fails is an error,
// which the caller receives as a *patbus.Error.
//
// # Where it answers
//
// On the plain queue Queue ("account.rpc"), through the default exchange,
// for clients of RabbitMQ's tutorial in any language (publish the request
// with a reply-to queue and a correlation id; WIRE.md), and as the action
// role:account,cmd:getUserById (Pattern) of a patbus service, for patbus
// callers, which learn it from the catalog.
package account
