#!/usr/bin/env bash
# An A/B of one engine setting on the benchmark's mixed load (refunds racing payments,
# webhooks on): for each pair of runs, a fresh database and a fresh 2-worker engine with the
# setting at A, then at B (the order alternates between pairs), the same warm-up as
# scripts/bench.sh, one `loadgen run`; prints each run's approved contracts per second, its
# end-to-end p50 (request to decision) and the workers' CPU over the run (clock ticks, user +
# system, from /proc), then the medians.
#
#   scripts/ab_env.sh WORKER_THREADS 1 2            # 4 pairs
#   PAIRS=6 scripts/ab_env.sh WORKER_BATCH_LINGER_MS 5 20
#   LOAD="--requests 6000 --users 500" scripts/ab_env.sh WORKER_LANES 4 2   # the plain load
#   LOAD="--requests 1000 --users 100 --rate 50" scripts/ab_env.sh …         # latency at 50/s
#   LOAD_B="--requests 6000 --users 500 --refund-share 0.3" scripts/ab_env.sh - hooks no-hooks
#                    # two loads on the same engine: VARIABLE `-` sets nothing, and LOAD_A or
#                    # LOAD_B replace LOAD on their side (here: the mixed load without webhooks)
#
# Any variable scripts/run.sh or the binaries read can be the setting. The development
# engine is stopped first (same ports); start it again with scripts/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

[ $# = 3 ] || { echo "usage: $0 VARIABLE A B" >&2; exit 2; }
VAR=$1 A=$2 B=$3
PAIRS="${PAIRS:-4}"
LOAD="${LOAD:---requests 6000 --users 500 --refund-share 0.3 --webhooks}"
LOADGEN=target/release/loadgen
cargo build --release -q --bins

own_engine_env .local/ab-engine xyz_ab
export REDIS_PREFIX=xyzab AMQP_PREFIX=xyzab INGRESSES=1 WEBHOOK_ALLOW_LOOPBACK=1
ENGINE_STATE=.local bash scripts/stop.sh >/dev/null
bash scripts/stop.sh >/dev/null
trap 'bash scripts/stop.sh >/dev/null 2>&1 || true; buffer_pool_restore' EXIT
buffer_pool_for_benchmark
mkdir -p .local/logs

# The workers' CPU so far: user + system clock ticks of every worker process.
worker_ticks() {
  local total=0 f
  for f in "$ENGINE_STATE"/worker-*.pid; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat")))
  done
  echo "$total"
}

results=$(mktemp)
for pair in $(seq 1 "$PAIRS"); do
  order=("$A" "$B")
  [ $((pair % 2)) = 0 ] && order=("$B" "$A")
  for value in "${order[@]}"; do
    bash scripts/stop.sh >/dev/null 2>&1
    fresh_engine_database
    setting=()
    [ "$VAR" != - ] && setting=("$VAR=$value")
    env "${setting[@]}" WORKERS=2 bash scripts/run.sh > .local/logs/ab-env-run.log 2>&1 ||
      { tail .local/logs/ab-env-run.log; exit 1; }
    loadgen_room_and_warmup
    side_load=$LOAD
    [ "$value" = "$A" ] && side_load="${LOAD_A:-$LOAD}"
    [ "$value" = "$B" ] && side_load="${LOAD_B:-$LOAD}"
    read -r -a load <<< "$side_load"
    before=$(worker_ticks)
    # A run whose checks fail still prints its figures and exits non-zero: it is shown with
    # its exit status rather than ending the A/B without a word.
    exit_status=0
    report=$("$LOADGEN" run "${load[@]}" 2>/dev/null) || exit_status=$?
    after=$(worker_ticks)
    measured=$(python3 -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line)
        bad = d.get("invariant_violations")
        print(d["approved_contracts_per_sec_end_to_end"], d["e2e_p50_ms"], bad)' <<< "$report")
    label="$VAR=$value"
    [ "$VAR" = - ] && label=$value
    if [ -z "$measured" ]; then
      echo "pair $pair  $label: the load generator printed no figures (exit $exit_status)" >&2
      exit 1
    fi
    read -r approved p50 bad <<< "$measured"
    echo "pair $pair  $label  approved/s $approved  e2e p50 $p50 ms" \
      " worker ticks $((after - before))  violations $bad  loadgen exit $exit_status"
    echo "$value $approved $p50 $((after - before))" >> "$results"
  done
done
python3 - "$results" "$VAR" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    value, rate, p50, ticks = line.split()
    runs.setdefault(value, []).append((float(rate), float(p50), int(ticks)))
for value, rs in runs.items():
    for i, what in ((0, "approved/s"), (1, "e2e p50 ms"), (2, "worker ticks")):
        xs = [r[i] for r in rs]
        label = value if sys.argv[2] == "-" else f"{sys.argv[2]}={value}"
        print(f"{label}: {what} median {statistics.median(xs):.1f}"
              f" {sorted(round(x, 1) for x in xs)}")
PY
rm -f "$results"
