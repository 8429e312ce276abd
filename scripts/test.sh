#!/usr/bin/env bash
# Runs every test on a fresh machine: installs and starts the services first
# (scripts/services.sh: RabbitMQ, Redis, a Consul dev agent, MongoDB when
# scripts/mongodb.sh exists), checks gofmt and go vet in every module, then
# runs the library's tests and the integration module's tests against them,
# with the race detector, then those of the reference system
# (examples/system). In CI (CI=true), and here through
# PATBUS_REQUIRE_SERVICES, an integration test that cannot reach its
# service fails instead of skipping. Arguments go to every go test run.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/services.sh)"
export PATBUS_REQUIRE_SERVICES=1

# Every module of the repository: the library at the root, integration/,
# and the tools modules (tools/consul pins the Consul the tests run).
modules=$( (git ls-files 'go.mod' '*/go.mod' 2>/dev/null || find . -name go.mod -not -path './.git/*') | xargs -n 1 dirname | sort -u)

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
for m in $modules; do
  # A tools module holds only a file behind the "tools" build tag: nothing
  # to vet.
  if [ -z "$(cd "$m" && go list ./... 2>/dev/null || true)" ]; then
    echo "$m: no packages"
    continue
  fi
  echo "$m"
  (cd "$m" && go vet ./...)
done

echo "== go test -race (library)"
# -p 1 runs the packages one after another: their integration tests share one
# broker on a 2-core machine, and the fault tests start private broker nodes.
go test -race -p 1 -timeout 40m -count=1 ./... "$@"

echo "== go test -race (integration)"
(cd integration && go test -race -p 1 -timeout 40m -count=1 ./... "$@")

# The reference system (its own module; gofmt and go vet ran above): on
# RabbitMQ, the MongoDB of scripts/services.sh, docker-compose and nginx.
echo "== go test -race (examples/system)"
(cd examples/system && go test -race -count=1 -timeout 20m ./... "$@")
