#!/usr/bin/env bash
# Runs every test, including the integration tests against a real RabbitMQ,
# on a fresh machine: installs and starts the services first (scripts/services.sh).
# In CI (CI=true) an integration test that cannot reach its service fails
# instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/services.sh)"
export PATBUS_REQUIRE_SERVICES=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go test -race"
# -p 1 runs the packages one after another: their integration tests share one
# broker on a 2-core machine, and the fault tests start private broker nodes.
go test -race -p 1 -timeout 40m -count=1 ./... "$@"
