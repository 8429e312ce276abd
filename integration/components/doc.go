// Package components gives the integration tests their real components:
// RabbitMQ, Consul, MongoDB and Redis.
//
// # Where they come from
//
// Each component is named by one environment variable, the one
// scripts/services.sh exports and internal/testenv reads:
//
//	PATBUS_AMQP_URL    RabbitMQ (amqp://user:pass@host:port/vhost)
//	CONSUL_HTTP_ADDR   Consul's HTTP API (host:port)
//	MONGODB_URI        MongoDB (mongodb://host:port)
//	PATBUS_REDIS_ADDR  Redis (host:port)
//
// An address given in the environment always wins. For the components the
// environment lacks, a reachable Docker engine starts containers with
// testcontainers-go, and their addresses are set in the environment of the
// test binary. Without a Docker engine (the usual case on the project's
// machines and in CI, where scripts/services.sh has started the components)
// the environment is all there is, and a test whose component is missing
// skips, or fails where CI or PATBUS_REQUIRE_SERVICES is set (see
// internal/testenv).
//
// # Use
//
// The choice is made once per test binary, in TestMain, and logged as
// "components: from the environment" or "components: testcontainers":
//
//	func TestMain(m *testing.M) { os.Exit(components.Main(m)) }
//
// Tests then read the addresses through internal/testenv (AMQPURL,
// ConsulAddr, MongoURI, RedisAddr), which is also how the tests next to the
// library's packages find them.
package components
