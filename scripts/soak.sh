#!/usr/bin/env bash
# Soaks patbus on a private three-node RabbitMQ cluster: acts, work items
# and group events flow for the given time (default 10m; any Go duration)
# while nodes are killed, paused and disconnected at random, then the
# ledger (sent, confirmed, failed by code, lost, duplicates), each fault's
# recovery and the memory and goroutine curve are printed. It fails if a
# confirmed message was lost, an operation hung or failed untyped, or a
# goroutine was left behind.
#
#   scripts/soak.sh 30m
#
# It installs RabbitMQ if missing (scripts/services.sh) and starts the
# cluster's nodes itself. scripts/test.sh runs the same soak for two
# minutes, with the other cluster tests.
set -euo pipefail
cd "$(dirname "$0")/.."
soak="${1:-10m}"

eval "$(scripts/services.sh)"
export PATBUS_REQUIRE_SERVICES=1

# The timeout covers the cluster's start, the soak, the final drain and
# a margin: the soak's minutes (a duration in h, m or s) plus 20.
case "$soak" in
  *h) minutes=$(( ${soak%h} * 60 )) ;;
  *m) minutes=${soak%m} ;;
  *s) minutes=$(( ${soak%s} / 60 + 1 )) ;;
  *) echo "soak: want a duration such as 90s, 30m or 2h, not $soak" >&2; exit 2 ;;
esac
cd integration
go test -count=1 -v -run 'TestCluster/Soak$' -timeout "$((minutes + 20))m" ./cluster -soak "$soak" 2>&1 |
  grep -v -E '^=== (RUN|PAUSE|CONT)'
