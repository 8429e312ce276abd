#!/usr/bin/env bash
# Prints the path of the Consul binary the tests run, building it first if
# the cache lacks it. The version is the one tools/consul/go.mod requires;
# the binary is built from the Go module proxy with
# `go build github.com/hashicorp/consul` in that module and cached by
# version in ${PATBUS_CACHE:-$HOME/.cache/patbus}/consul-VERSION, so a fresh
# machine pays for the build once (about five minutes on two cores) and
# every later run reuses it.
#
#   consul=$(scripts/consul.sh)
set -euo pipefail

log() { echo "consul.sh: $*" >&2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/tools/consul"
version=$(awk '$1 == "require" && $2 == "github.com/hashicorp/consul" { print $3 }' "$tools/go.mod")
if [ -z "$version" ]; then
  log "no 'require github.com/hashicorp/consul VERSION' line in $tools/go.mod"
  exit 1
fi
cache="${PATBUS_CACHE:-$HOME/.cache/patbus}"
bin="$cache/consul-${version#v}"

# good reports whether $bin is a Consul binary of the pinned version.
good() {
  local out
  [ -x "$bin" ] && out=$("$bin" version 2>/dev/null) && [ "${out%%$'\n'*}" = "Consul $version" ]
}

if ! good; then
  mkdir -p "$cache"
  # One build at a time: a second caller waits for the first and reuses it.
  exec 9>"$bin.lock"
  flock 9
  if ! good; then
    log "building Consul $version into $bin (once per machine, a few minutes)"
    start=$(date +%s)
    tmp="$bin.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    (cd "$tools" && go build -o "$tmp" github.com/hashicorp/consul) >&2
    mv -f "$tmp" "$bin"
    trap - EXIT
    good || { log "$bin does not report Consul $version"; exit 1; }
    log "built Consul $version in $(( $(date +%s) - start ))s"
  fi
  flock -u 9
  exec 9>&-
fi
echo "$bin"
