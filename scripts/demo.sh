#!/usr/bin/env bash
# The main job: the reference system's walkthrough, then the tutorial
# examples, all on the embedded defaults (the in-memory broker and an
# embedded FerretDB: nothing to install but Go). Set PATBUS_AMQP_URL to
# run them on RabbitMQ (the walkthrough then uses a namespace of its own
# and removes it), MONGODB_URI to keep the users in that MongoDB server
# (in a database of its own, dropped at the end).
#
# The reference system (examples/system) is a module of its own, with
# FerretDB in it: its first build on a fresh machine takes a few minutes
# (downloading and compiling FerretDB and SQLite in Go); the binary is
# cached in ${TMPDIR:-/tmp}/patbus-services/bin, shared with
# scripts/mongodb.sh, and built again only when a Go source, go.mod or
# go.sum of the repository changes. The tutorial examples take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

state="${TMPDIR:-/tmp}/patbus-services"
bin="$state/bin/patbus-system"
stamp="$state/bin/patbus-system.stamp"
mkdir -p "$state/bin"

# The same stamp as scripts/mongodb.sh's, so that both reuse one build.
sources_hash() {
  (
    go version
    find . -path ./.git -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -type f -print |
      LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -d' ' -f1
}

# One build at a time (scripts/mongodb.sh takes the same lock).
exec 9>"$state/mongodb.lock"
flock 9
want=$(sources_hash)
if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== building examples/system (the first build on a fresh machine takes a few minutes: FerretDB)"
  start=$SECONDS
  (cd "$root/examples/system" && go build -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
  echo "$want" >"$stamp"
  echo "   built in $((SECONDS - start)) s"
fi
exec 9>&-

echo "== examples/system --demo"
"$bin" --demo

for ex in examples/*/; do
  name=$(basename "$ex")
  # examples/system is its own module; it ran above.
  [ "$name" = system ] && continue
  echo "== examples/$name"
  go run "./examples/$name"
done
