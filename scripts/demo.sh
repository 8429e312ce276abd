#!/usr/bin/env bash
# The main job: runs the seed's example systems on the embedded defaults
# (the in-memory broker), one after another. Set PATBUS_AMQP_URL to run them
# on RabbitMQ instead.
set -euo pipefail
cd "$(dirname "$0")/.."
for ex in examples/*/; do
  name=$(basename "$ex")
  echo "== examples/$name"
  go run "./examples/$name"
done
