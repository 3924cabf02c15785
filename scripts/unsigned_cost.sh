#!/usr/bin/env bash
# What an unsigned flood costs the engine, as a ratio measured in one run: the engine's CPU
# per refused unsigned request (a ~64 KiB body of thousands of keys, a made-up signature)
# against its CPU per accepted checkout (`loadgen run`, closed loop). Both are every engine
# program's CPU while the load was sent (nginx, ingresses, Redis, RabbitMQ, workers, MariaDB;
# the load generator excluded), read from /proc.
#
#   scripts/unsigned_cost.sh                 # against the engine scripts/run.sh starts
#   LOADGEN=path/to/loadgen NO_START=1 …     # against an engine already running on :8080
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

REQUESTS="${REQUESTS:-3000}"
LOADGEN="${LOADGEN:-target/${ENGINE_PROFILE:-release}/loadgen}"
OUT=".local/unsigned-cost-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p .local
if [ -z "${NO_START:-}" ]; then
  say "engine up"
  bash scripts/run.sh >/dev/null
fi
[ -x "$LOADGEN" ] || cargo build --release -q -p loadgen

say "accepted checkouts: loadgen run --requests $REQUESTS"
"$LOADGEN" run --requests "$REQUESTS" --users 200 | tail -1 >> "$OUT"
say "unsigned flood: loadgen unsigned --requests $REQUESTS"
"$LOADGEN" unsigned --requests "$REQUESTS" | tail -1 >> "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
run, flood = rows[0], rows[1]
accepted = run["counts"]["accepted"]
checkout_ms = run["engine_cpu_ms_per_accepted"]
unsigned_ms = flood["engine_cpu_ms_per_request"]
print(f"engine CPU per accepted checkout: {checkout_ms:.3f} ms ({accepted} accepted)")
print(f"engine CPU per refused unsigned 64 KiB request: {unsigned_ms:.3f} ms (statuses {flood['statuses']})")
print(f"ratio unsigned / checkout: {unsigned_ms / checkout_ms:.2f}")
PY
say "raw lines in $OUT"
