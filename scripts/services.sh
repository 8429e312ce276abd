#!/usr/bin/env bash
# Installs (if missing) and starts the services the integration tests need,
# then prints the environment that points the tests at them. Idempotent:
# running it again reuses what is already up.
#
#   eval "$(scripts/services.sh)"
set -euo pipefail

log() { echo "services: $*" >&2; }

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  log "installing rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq rabbitmq-server >&2
fi

# Debian's package may or may not start the service; the tests want it on
# loopback with the default guest user (guest may log in only from loopback).
if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  log "starting rabbitmq-server"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  rabbitmq-server -detached >&2 2>&1 || true
  for i in $(seq 1 120); do
    if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then break; fi
    sleep 1
  done
  rabbitmq-diagnostics -q ping >/dev/null 2>&1 || { log "rabbitmq did not start"; exit 1; }
fi
rabbitmqctl await_startup >/dev/null 2>&1 || true
log "rabbitmq is up"

echo "export PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"
