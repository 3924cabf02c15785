#!/usr/bin/env bash
# Stops the engine processes scripts/run.sh started (SIGTERM: they finish in-flight work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# MariaDB and the workers back in the CPU groups they came from (OFFPATH_CPU_SHARES, run.sh).
STATE="${ENGINE_STATE:-.local}" offpath_group off
pids=()
for f in "${ENGINE_STATE:-.local}"/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null && { echo "stopping $(basename "$f" .pid)"; pids+=("$pid"); } || true
  rm -f "$f"
done
# They finish what they hold (workers within 10 s); wait so their ports are free again.
for _ in $(seq 1 150); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
