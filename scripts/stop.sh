#!/usr/bin/env bash
# Stops the engine processes scripts/run.sh started (SIGTERM: they finish in-flight work).
set -euo pipefail
cd "$(dirname "$0")/.."
for f in .local/*.pid; do
  [ -f "$f" ] || continue
  kill "$(cat "$f")" 2>/dev/null && echo "stopped $(basename "$f" .pid)" || true
  rm -f "$f"
done
