#!/usr/bin/env bash
# Starts (if needed) the embedded MongoDB-compatible server the store tests
# and the reference system use, then prints the environment that points at
# it:
#
#   eval "$(scripts/mongodb.sh)"      # export MONGODB_URI=mongodb://127.0.0.1:PORT/
#
# With MONGODB_URI already set, it prints that and starts nothing: a real
# MongoDB given in the environment always wins. Otherwise it builds the
# reference system's command (examples/system, its own module, so FerretDB
# stays out of the library's module graph; the binary is cached and built
# again only when a Go source, go.mod or go.sum of the repository changes),
# runs `system mongodb` in the background on 127.0.0.1 on a free port, and
# waits until the server answers a ping. Idempotent: a server this script
# started and that still answers is reused. State (binary, pid, URI, log,
# data) lives in ${TMPDIR:-/tmp}/patbus-services.
#
#   scripts/mongodb.sh stop           # stops the server this script started
set -euo pipefail

log() { echo "mongodb: $*" >&2; }

if [ "${1:-}" != "stop" ] && [ -n "${MONGODB_URI:-}" ]; then
  log "using MONGODB_URI from the environment"
  echo "export MONGODB_URI=$MONGODB_URI"
  exit 0
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
state="${TMPDIR:-/tmp}/patbus-services"
mkdir -p "$state"
bin="$state/bin/patbus-system"
stamp="$state/bin/patbus-system.stamp"
pidfile="$state/mongodb.pid"
urifile="$state/mongodb.uri"
logfile="$state/mongodb.log"
datadir="$state/mongodb-data"

# One run of this script at a time per state directory.
exec 9>"$state/mongodb.lock"
flock 9

# running tells whether the server this script started is alive.
running() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # The pid may have been reused by another program.
  grep -q "patbus-system" "/proc/$pid/cmdline" 2>/dev/null
}

if [ "${1:-}" = "stop" ]; then
  if running; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "stopped (pid $pid)"
  fi
  rm -f "$pidfile" "$urifile"
  exit 0
fi

# The binary is built again when any Go source, go.mod or go.sum of the
# repository, or the Go version, changes.
sources_hash() {
  (
    cd "$root"
    go version
    find . -path ./.git -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -type f -print |
      LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -d' ' -f1
}
want=$(sources_hash)
if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "building examples/system (FerretDB; the first build takes a few minutes)"
  mkdir -p "$(dirname "$bin")"
  (cd "$root/examples/system" && go build -o "$bin.tmp" .) >&2
  mv "$bin.tmp" "$bin"
  echo "$want" >"$stamp"
fi

ping() { "$bin" ping -uri "$1" -timeout 2s >/dev/null 2>&1; }

if running && [ -s "$urifile" ] && ping "$(cat "$urifile")"; then
  log "already running (pid $(cat "$pidfile"))"
  echo "export MONGODB_URI=$(cat "$urifile")"
  exit 0
fi
if running; then
  # Alive but not answering: replace it.
  kill "$(cat "$pidfile")" 2>/dev/null || true
fi
rm -f "$pidfile" "$urifile"

log "starting the embedded server (data in $datadir, log in $logfile)"
mkdir -p "$datadir"
# setsid: the server outlives this script and the shell that evals it.
# 9>&-: the server must not hold the lock.
setsid "$bin" mongodb -addr 127.0.0.1:0 -dir "$datadir" >"$urifile" 2>"$logfile" </dev/null 9>&- &
echo $! >"$pidfile"

uri=""
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  # kill -0 only: until the exec, the new process's cmdline is still ours.
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "the server exited; its log:"
    cat "$logfile" >&2
    exit 1
  fi
  uri=$(head -n 1 "$urifile" 2>/dev/null || true)
  if [ -n "$uri" ] && ping "$uri"; then break; fi
  uri=""
  sleep 0.1
done
if [ -z "$uri" ]; then
  log "the server did not answer a ping within 30 s; its log:"
  cat "$logfile" >&2
  exit 1
fi
log "up at $uri (pid $(cat "$pidfile"))"
echo "export MONGODB_URI=$uri"
