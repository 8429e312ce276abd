// Package testenv tells tests where the real services are. Outside CI a
// missing service skips the test with its reason; where CI or
// PATBUS_REQUIRE_SERVICES is set, it fails the test instead, so that no
// integration test skips in CI.
//
// It also gives tests their brokers: Memory and Rabbit open one broker that
// the test's cleanup closes, EachBroker runs a test body on both, as the
// subtests "memory" and "rabbitmq", and DeleteQueues removes durable queues
// at the end of a test. Output runs an example's run function (see
// internal/exampleapp) and SameLines compares output written by several
// goroutines. StartRabbitNode starts a private RabbitMQ node for tests that
// break the broker, StartRabbitCluster a cluster of them (joined with
// rabbitmqctl join_cluster, no Docker) whose nodes a test kills, restarts,
// pauses and resumes, and whose quorum queues' leaders it finds.
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
