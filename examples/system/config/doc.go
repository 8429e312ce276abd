// Package config is the config service of the reference system: a
// service named "config-server" whose one action, for the pattern
// $$target:config-server, answers every act pinned to it with the
// system's configuration, as examples/configserver does.
//
// # The configuration
//
// The configuration is a JSON object: by default Config, which the
// command fills from its flags (the database, where the gateway listens,
// the account queue, the routes), or any object read from a file
// (Load). The gateway serves it at GET /config.
//
//	{"system":"patbus reference system","database":"patbus_system",
//	 "gateway":"127.0.0.1:8080","accountQueue":"account.rpc","routes":[…]}
//
// It never holds addresses with credentials (the broker's or MongoDB's).
package config
