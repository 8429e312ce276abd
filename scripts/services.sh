#!/usr/bin/env bash
# Installs (if missing) and starts the services the integration tests need,
# then prints the environment that points the tests at them:
#
#   eval "$(scripts/services.sh)"
#
# - Debian packages, in one apt-get run for those missing: rabbitmq-server,
#   redis-server, nginx, docker-compose and chromium (nginx and
#   docker-compose for tests that check configuration files, chromium for
#   tests of web pages; neither is started here).
# - RabbitMQ on 127.0.0.1:5672 (PATBUS_AMQP_URL).
# - Redis on 127.0.0.1 on a free port, data in the state directory
#   (PATBUS_REDIS_ADDR, host:port).
# - One Consul dev agent (the version tools/consul pins, built once by
#   scripts/consul.sh) on 127.0.0.1 on free ports, ready once it has a
#   leader (CONSUL_HTTP_ADDR, host:port as the Consul API expects;
#   PATBUS_CONSUL_BIN, the binary, for tests that start agents of their own).
# - MongoDB, when scripts/mongodb.sh exists: its `export` lines are passed
#   through.
#
# Idempotent: the pids and ports of what it starts are kept in
# ${TMPDIR:-/tmp}/patbus-services, and a second run reuses what still
# answers. `scripts/services.sh stop` stops the Redis server and the Consul
# agent recorded there.
set -euo pipefail

log() { echo "services: $*" >&2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
state="${TMPDIR:-/tmp}/patbus-services"
mkdir -p "$state"

# One run at a time. Every process started below gets 9>&- so that no
# daemon keeps the lock after this script ends.
exec 9>"$state/lock"
flock 9

# ours PIDFILE reports whether the pid in PIDFILE is a live process started
# from this state directory (its command line names the directory), so that
# a pid reused by an unrelated process is never taken for ours.
ours() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state"
}

# stop_recorded PIDFILE stops the process recorded in PIDFILE if it is ours.
stop_recorded() {
  local pid i
  if ours "$1"; then
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

if [ "${1:-}" = stop ]; then
  stop_recorded "$state/redis.pid"
  stop_recorded "$state/consul.pid"
  rm -rf "$state/redis" "$state/consul" "$state/redis.port" "$state/consul.addr"
  log "stopped Redis and Consul"
  exit 0
fi

# port_used PORT reports whether a TCP or UDP socket is bound to PORT.
port_used() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htuan "( sport = :$1 )" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# free_port [TAKEN...] prints a port that nothing uses and that is none of
# TAKEN. Ports come from 20000-31999, below Linux's ephemeral range, so an
# outgoing connection cannot take one between this check and the bind.
free_port() {
  local p i t clash
  for i in $(seq 1 500); do
    p=$((20000 + RANDOM % 12000))
    clash=
    for t in "$@"; do [ "$t" = "$p" ] && clash=1; done
    if [ -z "$clash" ] && ! port_used "$p"; then
      echo "$p"
      return 0
    fi
  done
  log "no free port found"
  return 1
}

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in rabbitmq-server redis-server nginx docker-compose chromium; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 9>&-
  # Without recommends: docker-compose recommends docker.io, and a Docker
  # engine that starts would switch the integration tests to containers
  # whose images cannot be pulled here.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 9>&-
  log "installed in $(($(date +%s) - start))s"
fi

# --- RabbitMQ --------------------------------------------------------------
# Debian's package may or may not start the service; the tests want it on
# loopback with the default guest user (guest may log in only from loopback).
if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  log "starting rabbitmq-server"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached >&2 2>&1 9>&- || true
  for i in $(seq 1 120); do
    if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then break; fi
    sleep 1
  done
  rabbitmq-diagnostics -q ping >/dev/null 2>&1 || { log "rabbitmq did not start"; exit 1; }
fi
rabbitmqctl await_startup >/dev/null 2>&1 || true
log "rabbitmq is up"

# --- Redis -----------------------------------------------------------------
redis_up() {
  ours "$state/redis.pid" && [ -f "$state/redis.port" ] &&
    [ "$(redis-cli -h 127.0.0.1 -p "$(cat "$state/redis.port")" ping 2>/dev/null)" = PONG ]
}
if redis_up; then
  log "redis is up (reused)"
else
  stop_recorded "$state/redis.pid"
  rm -rf "$state/redis"
  mkdir -p "$state/redis"
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --dir "$state/redis" \
    --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis/redis.log" \
    --save "" --appendonly no --set-proc-title no >&2 9>&-
  echo "$port" >"$state/redis.port"
  for i in $(seq 1 100); do redis_up && break; sleep 0.1; done
  redis_up || { log "redis did not start:"; tail -n 20 "$state/redis/redis.log" >&2; exit 1; }
  log "redis is up on 127.0.0.1:$port"
fi
redis_addr="127.0.0.1:$(cat "$state/redis.port")"

# --- Consul ----------------------------------------------------------------
consul_bin=$("$root/scripts/consul.sh" 9>&-)
consul_up() {
  ours "$state/consul.pid" && [ -f "$state/consul.addr" ] &&
    curl -fsS --max-time 2 "http://$(cat "$state/consul.addr")/v1/status/leader" 2>/dev/null | grep -q '"[^"]'
}
if consul_up; then
  log "consul is up (reused)"
else
  stop_recorded "$state/consul.pid"
  # A port taken between the check and the agent's bind makes the agent
  # exit; then it starts again on other ports.
  for attempt in 1 2 3; do
    rm -rf "$state/consul"
    mkdir -p "$state/consul/data"
    http=$(free_port)
    dns=$(free_port "$http")
    serf_lan=$(free_port "$http" "$dns")
    serf_wan=$(free_port "$http" "$dns" "$serf_lan")
    server=$(free_port "$http" "$dns" "$serf_lan" "$serf_wan")
    grpc=$(free_port "$http" "$dns" "$serf_lan" "$serf_wan" "$server")
    echo "127.0.0.1:$http" >"$state/consul.addr"
    setsid "$consul_bin" agent -dev -client 127.0.0.1 -bind 127.0.0.1 \
      -node patbus-services -data-dir "$state/consul/data" \
      -http-port "$http" -dns-port "$dns" -serf-lan-port "$serf_lan" \
      -serf-wan-port "$serf_wan" -server-port "$server" -grpc-port "$grpc" \
      -hcl 'disable_update_check = true' \
      >"$state/consul/consul.log" 2>&1 </dev/null 9>&- &
    echo $! >"$state/consul.pid"
    for i in $(seq 1 600); do
      consul_up && break
      kill -0 "$(cat "$state/consul.pid")" 2>/dev/null || break
      sleep 0.1
    done
    consul_up && break
    log "consul did not start (attempt $attempt):"
    tail -n 20 "$state/consul/consul.log" >&2
    stop_recorded "$state/consul.pid"
    [ "$attempt" = 3 ] && exit 1
  done
  log "consul is up on $(cat "$state/consul.addr")"
fi
consul_addr=$(cat "$state/consul.addr")

# Release the lock before running anything that may start daemons of its own.
flock -u 9
exec 9>&-

printf 'export PATBUS_AMQP_URL=%q\n' "amqp://guest:guest@127.0.0.1:5672/"
printf 'export PATBUS_REDIS_ADDR=%q\n' "$redis_addr"
printf 'export CONSUL_HTTP_ADDR=%q\n' "$consul_addr"
printf 'export PATBUS_CONSUL_BIN=%q\n' "$consul_bin"

if [ -x "$root/scripts/mongodb.sh" ]; then
  "$root/scripts/mongodb.sh"
fi
