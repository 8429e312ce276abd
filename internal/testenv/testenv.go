// Package testenv tells tests where the real services are. Outside CI a
// missing service skips the test with its reason; where CI or
// PATBUS_REQUIRE_SERVICES is set, it fails the test instead, so that no
// integration test skips in CI.
//
// It also gives tests their brokers: Memory and Rabbit open one broker that
// the test's cleanup closes, EachBroker runs a test body on both, as the
// subtests "memory" and "rabbitmq", and DeleteQueues removes durable queues
// at the end of a test. Output runs an example's run function (each
// example under examples/ has one) and SameLines compares output written
// by several goroutines. StartRabbitNode starts a private RabbitMQ node for tests that
// break the broker, StartRabbitCluster a cluster of them (joined with
// rabbitmqctl join_cluster, no Docker) whose nodes a test kills, restarts,
// pauses and resumes, and whose quorum queues' leaders it finds.
//
// # Services
//
// AMQPURL, ConsulAddr, RedisAddr and MongoURI read the addresses that
// scripts/services.sh exports (PATBUS_AMQP_URL, CONSUL_HTTP_ADDR,
// PATBUS_REDIS_ADDR, MONGODB_URI). StartConsulAgent starts a private Consul
// dev agent, from the binary scripts/consul.sh builds, for tests that stop,
// kill or stall Consul.
package testenv

import (
	"os"
	"testing"
)

// Required reports whether missing services must fail tests rather than
// skip them.
func Required() bool {
	return os.Getenv("PATBUS_REQUIRE_SERVICES") != "" || os.Getenv("CI") != ""
}

// AMQPURL returns PATBUS_AMQP_URL, or skips (fails in CI) when it is unset.
func AMQPURL(t testing.TB) string {
	t.Helper()
	return need(t, "PATBUS_AMQP_URL", "RabbitMQ")
}

// ConsulAddr returns CONSUL_HTTP_ADDR, the HTTP address (host:port) of a
// Consul agent, or skips (fails in CI) when it is unset.
func ConsulAddr(t testing.TB) string {
	t.Helper()
	return need(t, "CONSUL_HTTP_ADDR", "Consul")
}

// RedisAddr returns PATBUS_REDIS_ADDR, the address (host:port) of a Redis
// server, or skips (fails in CI) when it is unset.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return need(t, "PATBUS_REDIS_ADDR", "Redis")
}

// MongoURI returns MONGODB_URI, the connection string of a MongoDB server,
// or skips (fails in CI) when it is unset.
func MongoURI(t testing.TB) string {
	t.Helper()
	return need(t, "MONGODB_URI", "MongoDB")
}

func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if Required() {
			t.Fatalf("%s is required here but %s is not set (see README: the test command starts it)", what, env)
		}
		t.Skipf("%s not available: set %s (the README's test command does)", what, env)
	}
	return v
}
