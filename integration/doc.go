// Package integration holds the tests that cross the library's packages on
// real components: RabbitMQ, Consul, MongoDB and Redis. It is a module of
// its own (github.com/patbus/patbus/integration, with the library replaced
// by the repository's copy) so that its heavy dependencies, such as
// testcontainers-go, never enter the library's module graph; there is no
// go.work at the repository root for the same reason.
//
// Each test package's TestMain calls components.Main, which takes the
// components from the environment (scripts/services.sh) or starts them with
// testcontainers-go where a Docker engine answers; the tests read the
// addresses through internal/testenv. Run them with
//
//	eval "$(scripts/services.sh)"
//	cd integration && go test -race ./...
//
// scripts/test.sh runs them after the library's tests.
package integration
