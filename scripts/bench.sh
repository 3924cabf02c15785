#!/usr/bin/env bash
# The benchmark behind BENCHMARKS.md: every series RUNS times on the release build, medians
# printed at the end, every raw JSON line kept in .local/bench/<time>.jsonl.
#
#   scripts/bench.sh                 # RUNS=3 REQUESTS=6000 USERS=500
#   QUICK=1 scripts/bench.sh         # the ceilings, end to end with 2 worker processes (plain
#                                    # and mixed) and on the clusters: the ratios, in minutes
#   CLUSTER=0 scripts/bench.sh       # without the cluster series
#   BASELINE=6c0a883 scripts/bench.sh  # also that commit's engine, interleaved with this one:
#                                    # CPU per approved contract as a ratio (issue 28)
#   BASELINE=6c0a883 AB_ONLY=1 scripts/bench.sh  # that A/B alone
#
# At the end scripts/plot_bench.py draws the run into docs/bench/throughput.svg and
# docs/bench/accept-latency.svg (matplotlib in .local/venv-plot, installed on first use).
#
# Series: the SQL ceilings (one contract per transaction, and batched as the worker batches);
# end to end (closed loop) with 1, 2 and 4 worker processes, with each process's CPU share;
# end to end with 2 processes on the mixed load (30 % of the contracts refunded, racing their
# payments) with the merchant's webhooks received and verified by the load generator, and again
# with a merchant that never polls and learns every outcome from its webhooks; a bulk burst of
# 50,000 checkouts on a key with the default rate limit;
# ingress-only acceptance with the workers stopped; one worker process draining that backlog
# alone (its CPU and MariaDB's per command); accept latency in open loop at half of the
# measured peak (on the 2-worker engine, and again after the ingress-only backlog); the floor
# under accept latency (each round trip an acceptance makes, timed alone on the idle engine, and
# the whole acceptance at 50 requests/s); end to end on the clusters of scripts/cluster.sh
# (three RabbitMQ and three Galera nodes on this same machine, the engine's clients on node
# lists), plain and mixed, as a ratio to the single-node engine measured in the same run.
#
# Every benchmark starts from the same place: its own engine (state in .local/bench-engine)
# on a database created empty for it (xyz_bench), so figures do not drift as a development
# database grows. The development engine is stopped first (same ports); start it again with
# scripts/run.sh. For the run MariaDB's buffer pool is 2 GiB (the default 128 MiB is smaller
# than the tables after a few runs, and the benchmark would measure the disk); the old size
# is restored at the end, and the benchmark's engine stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

RUNS="${RUNS:-3}"
REQUESTS="${REQUESTS:-6000}"
USERS="${USERS:-500}"
OUT="$PWD/.local/bench/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p .local/bench .local/logs
LOADGEN=target/release/loadgen
cargo build --release -q --bins

own_engine_env .local/bench-engine xyz_bench
STATE=$ENGINE_STATE
# Its own Redis keys and queues too, so nothing of the development engine leaks in.
export REDIS_PREFIX=xyzbench AMQP_PREFIX=xyzbench
# One ingress process behind nginx: on two cores a second process only splits the batches of
# lookups and commands in two (with one: approved +9 %, accepted +12 %; BENCHMARKS.md).
export INGRESSES="${INGRESSES:-1}"
# The load generator's webhook receiver listens on 127.0.0.1.
export WEBHOOK_ALLOW_LOOPBACK=1
ENGINE_STATE=.local bash scripts/stop.sh >/dev/null
bash scripts/stop.sh >/dev/null
fresh_engine_database

# The cluster series' nodes, made afresh for each benchmark (the ports are the development
# cluster's: that one must be down).
BENCH_CLUSTER=.local/bench-cluster
QUICK="${QUICK:-0}"
# The engine stops (and stop.sh takes MariaDB out of the CPU group) before the pool shrinks.
restore() {
  bash scripts/stop.sh >/dev/null 2>&1 || true
  ENGINE_STATE=.local/bench-ab bash scripts/stop.sh >/dev/null 2>&1 || true
  if [ -n "${BASELINE_DIR:-}" ]; then
    (cd "$BASELINE_DIR" && ENGINE_STATE=.local/bench-ab bash scripts/stop.sh >/dev/null 2>&1) || true
  fi
  if [ "${CLUSTER:-1}" = 1 ]; then
    CLUSTER_STATE="$BENCH_CLUSTER" bash scripts/cluster.sh down >/dev/null 2>&1 || true
  fi
  buffer_pool_restore
}
trap restore EXIT
buffer_pool_for_benchmark

record() { # series, then the JSON lines on stdin
  python3 -c '
import json, sys
series = sys.argv[1]
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        d["series"] = series
        print(json.dumps(d))' "$1" >> "$OUT"
}

# The load generator's keys get room above the default 1000/s (burst 60000), which acceptance
# exceeds for longer than a burst: the benchmark measures the engine, not the limiter.
# Run in another tree (ab_run), it starts that tree's engine with that tree's xyzctl.
engine() { # worker processes
  WORKERS="$1" bash scripts/run.sh > .local/logs/bench-run.log 2>&1
  # Warm-up (lib.sh): 1127 prepares in a first run of 6000 requests, 436 in the second.
  loadgen_room_and_warmup
}

# A merchant's bulk checkout: BULK_REQUESTS checkouts as fast as 256 connections send them,
# from a key of its own with the deployment's default rate limit (a fresh key each run, so
# each starts with the whole burst). Every call must end final, none answered 429 or 5xx; the
# drain is the workers' decided commands per second over the burst.
BULK_REQUESTS="${BULK_REQUESTS:-50000}"
bulk_burst() {
  say "bulk burst: $BULK_REQUESTS checkouts, 256 connections, a key with the default limits ($RUNS runs)"
  local i key
  for i in $(seq 1 "$RUNS"); do
    key="$ENGINE_STATE/burst-$i.json"
    (engine_env; "$BIN/xyzctl" keys create --name "burst-$(date +%s)-$i" --role merchant \
      --database-url "$LOADGEN_DATABASE_URL" > "$key")
    sleep 3 # the ingresses reload keys every ~2 s
    LOADGEN_MERCHANT_KEY_FILE="$key" "$LOADGEN" run --requests "$BULK_REQUESTS" --users 2000 \
      --concurrency 256 --payment-share 0 2>/dev/null | record bulk-burst || true
  done
}

# BASELINE=<git ref>: the plain closed loop on that commit's engine and on this one, run after
# run, both driven by this load generator: each program's CPU per approved contract, and the
# total's ratio. The baseline is built in a worktree of its own (.local/baseline/<commit>, its
# own target directory). Each side starts every run the same way: its tree's scripts/run.sh on
# a database created empty for the run, so neither carries a book the other has not (the
# series above leave a million installments in xyz_bench).
ab_run() { # tree directory, series name
  (
    cd "$1"
    own_engine_env .local/bench-ab xyz_bench_ab
    fresh_engine_database
    mkdir -p .local/logs
    LOADGEN="$OLDPWD/$LOADGEN"
    engine 2
    # A baseline's schema may predate what this load generator verifies: the A/B measures.
    "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" --no-verify 2>/dev/null |
      record "$2" || say "a run of $2 failed; its engine's logs are in $1/$ENGINE_STATE/logs"
    bash scripts/stop.sh >/dev/null
  )
}
baseline_series() {
  local sha
  sha=$(git rev-parse --short "$BASELINE^{commit}")
  BASELINE_DIR=.local/baseline/$sha
  [ -d "$BASELINE_DIR" ] || git worktree add --detach "$BASELINE_DIR" "$sha" >/dev/null
  say "building the baseline $sha (release, in $BASELINE_DIR)"
  (cd "$BASELINE_DIR" && cargo build --release -q --bins)
  bash scripts/stop.sh >/dev/null
  for _ in $(seq 1 "$RUNS"); do
    say "the plain closed loop on the baseline $sha, then on this engine"
    ab_run "$BASELINE_DIR" "e2e-baseline-$sha"
    ab_run . e2e-current
  done
}
# AB_ONLY=1 (with BASELINE): the A/B alone, none of the series below.
if [ "${AB_ONLY:-0}" = 1 ] && [ -z "${BASELINE:-}" ]; then
  echo "AB_ONLY=1 needs BASELINE=<commit>" >&2
  exit 2
fi

if [ "${AB_ONLY:-0}" != 1 ]; then
say "SQL ceilings ($RUNS runs)"
for _ in $(seq 1 "$RUNS"); do
  "$LOADGEN" sql-ceiling --seconds 3 --batch 1,32 --concurrency 1,2,4,8,16 --require-durable \
    2>/dev/null | record sql-ceiling
done

# The open loop at half of the peak runs on the engine that measured the peak (2 worker
# processes), before the ingress-only series leaves a backlog of ~18,000 commands whose drain
# and page flushing stall the disk for seconds; it runs again after that drain, reported apart.
open_loop() { # series name
  local peak half
  peak=$(python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
e2e = [r["approved_contracts_per_sec_end_to_end"] for r in rows if r["series"] == "e2e-workers-2"]
print(int(statistics.median(e2e) / 0.8))  # requests/s: contracts are 80 % of the requests
PY
)
  half=$((peak / 2))
  say "open loop at half of the peak ($half requests/s of $peak), $1 ($RUNS runs)"
  for _ in $(seq 1 "$RUNS"); do
    # With the machine's own delays beside it: time stolen by the host, and how long each
    # program's threads waited for a core.
    python3 scripts/cpu_share.py -- "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" \
      --rate "$half" 2>.local/bench/cpu.txt | record "$1"
    grep '^{' .local/bench/cpu.txt | record "cpu-$1"
  done
}

if [ "$QUICK" = 1 ]; then WORKER_SET="2"; else WORKER_SET="2 1 4"; fi
for workers in $WORKER_SET; do
  say "end to end, closed loop, $workers worker process(es) ($RUNS runs)"
  engine "$workers"
  if [ "$workers" = 2 ] && [ "$QUICK" != 1 ]; then
    # What the accept path cannot go below on this machine: each round trip an acceptance
    # makes, timed alone on the idle engine (loadgen floor).
    say "the floor: an acceptance's round trips, one at a time, engine idle ($RUNS runs)"
    for _ in $(seq 1 "$RUNS"); do
      "$LOADGEN" floor 2>/dev/null | record floor
    done
    # The same round trips 20 ms apart, as requests arrive at 50/s: between two the cores go
    # idle, and on a virtual machine waking an idle core goes through the host (on a slow
    # 2-vCPU machine the broker's confirm p99 was 7-30 ms at 20 ms gaps against 2-7 ms at 1 ms).
    for _ in $(seq 1 "$RUNS"); do
      "$LOADGEN" floor --samples 300 --gap-ms 20 2>/dev/null | record floor-gap-20
    done
    # The whole acceptance on an almost idle engine: where its p99 starts before any load.
    say "open loop at 50 requests/s ($RUNS runs)"
    for _ in $(seq 1 "$RUNS"); do
      "$LOADGEN" run --requests 1000 --users 100 --rate 50 2>/dev/null | record open-loop-50
    done
  fi
  for _ in $(seq 1 "$RUNS"); do
    python3 scripts/cpu_share.py -- "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" \
      2>.local/bench/cpu.txt | record "e2e-workers-$workers"
    grep '^{' .local/bench/cpu.txt | record "cpu-workers-$workers"
  done
  if [ "$workers" = 2 ]; then
    say "end to end, closed loop, 2 worker processes, refunds in the mix and webhooks on ($RUNS runs)"
    for _ in $(seq 1 "$RUNS"); do
      "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" --refund-share 0.3 --webhooks \
        2>/dev/null | record e2e-workers-2-mixed
    done
    say "the same mixed load, the merchant learning outcomes from webhooks only, never polling ($RUNS runs)"
    for _ in $(seq 1 "$RUNS"); do
      "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" --refund-share 0.3 --webhooks \
        --no-poll 2>/dev/null | record e2e-workers-2-hooks-only
    done
    bulk_burst
    [ "$QUICK" = 1 ] && continue
    open_loop open-loop-half-peak
    # The same engine with the workers and MariaDB in a CPU group of low weight
    # (scripts/lib.sh, offpath_group): what it gives the accept path at half of peak (the
    # same rate as above), and what it costs at peak.
    if offpath_group on; then
      say "the workers and MariaDB in a CPU group of weight ${OFFPATH_CPU_SHARES:-2}"
      for _ in $(seq 1 "$RUNS"); do
        "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" 2>/dev/null |
          record "e2e-workers-2-offpath-group"
      done
      open_loop open-loop-half-peak-offpath-group
    else
      say "no writable cpu cgroup: the low-weight group series are skipped"
    fi
    offpath_group off
  fi
done

# The same closed loops on the clusters, on this same machine: six nodes where the series
# above have one broker and one database, so the ratio to the single-node engine is what the
# replication costs here (every commit certified by three nodes, every message written by
# three), not what more machines give (SCALING.md).
if [ "${CLUSTER:-1}" = 1 ]; then
  say "end to end on the clusters: 3 RabbitMQ and 3 Galera nodes, 2 worker processes ($RUNS runs)"
  bash scripts/stop.sh >/dev/null
  CLUSTER_STATE="$BENCH_CLUSTER" bash scripts/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$BENCH_CLUSTER"
  (
    export CLUSTER_STATE="$BENCH_CLUSTER" ENGINE_PROFILE=release
    bash scripts/cluster.sh up > .local/logs/bench-cluster.log 2>&1
    export LOADGEN_BASE_URL=http://127.0.0.1:8180
    export LOADGEN_ADMIN_KEY_FILE="$BENCH_CLUSTER/engine/admin.json"
    export LOADGEN_MERCHANT_KEY_FILE="$BENCH_CLUSTER/engine/merchant.json"
    export LOADGEN_DATABASE_URL="mysql://root@127.0.0.1:3311/xyz_cluster,mysql://root@127.0.0.1:3312/xyz_cluster,mysql://root@127.0.0.1:3313/xyz_cluster"
    loadgen_room_and_warmup "mysql://root@127.0.0.1:3311/xyz_cluster"
    for _ in $(seq 1 "$RUNS"); do
      "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" 2>/dev/null | record e2e-workers-2-cluster
      "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" --refund-share 0.3 --webhooks \
        2>/dev/null | record e2e-workers-2-cluster-mixed
    done
  )
  CLUSTER_STATE="$BENCH_CLUSTER" bash scripts/cluster.sh down >/dev/null 2>&1 || true
fi

if [ "$QUICK" != 1 ]; then
say "ingress only: workers stopped ($RUNS runs)"
engine 2
for i in 1 2; do kill "$(cat "$ENGINE_STATE/worker-$i.pid")" 2>/dev/null || true; done
sleep 2
for _ in $(seq 1 "$RUNS"); do
  "$LOADGEN" run --requests "$REQUESTS" --users "$USERS" --payment-share 0 --no-verify \
    --wait-timeout-secs 1 2>/dev/null | record ingress-only || true
done
# The backlog the ingress-only runs left is drained by one worker process alone: its CPU and
# MariaDB's per command, with nothing else running (the worker's cost, not the machine's
# noise, is what this series compares between versions).
say "drain: one worker process applies that backlog"
drain_backlog() {
  local expected pid mpid t0 w0 m0 done_n
  expected=$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(sum(r.get("counts", {}).get("accepted", 0) for r in rows if r["series"] == "ingress-only"))' "$OUT")
  (engine_env; start_worker 1)
  pid=$(cat "$ENGINE_STATE/worker-1.pid"); mpid=$(shared_mariadb_pid)
  ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  t0=$(date +%s.%N); w0=$(ticks "$pid"); m0=$(ticks "$mpid")
  for _ in $(seq 1 1200); do
    # (Nothing yet while the worker starts its metrics listener.)
    done_n=$(curl -fs 127.0.0.1:9101/metrics | awk '/^xyz_batch_size_sum/ {print int($2)}' || true)
    [ "${done_n:-0}" -ge "$expected" ] && break
    sleep 0.1
  done
  python3 -c '
import json, os, sys, time
n, expected, w, m = int(sys.argv[1] or 0), int(sys.argv[2]), int(sys.argv[4]), int(sys.argv[5])
secs = time.time() - float(sys.argv[3])
hz = os.sysconf("SC_CLK_TCK")
print(json.dumps({"commands": n, "expected": expected, "secs": round(secs, 3),
                  "commands_per_sec": round(n / secs, 1) if secs else None,
                  "worker_cpu_ms_per_command": round(1000 * w / hz / n, 4) if n else None,
                  "mariadb_cpu_ms_per_command": round(1000 * m / hz / n, 4) if n else None}))' \
    "${done_n:-0}" "$expected" "$t0" \
    "$(($(ticks "$pid") - w0))" "$(($(ticks "$mpid") - m0))" | record drain-1-worker
}
drain_backlog
engine 2
open_loop open-loop-after-backlog
fi

fi # AB_ONLY
if [ -n "${BASELINE:-}" ]; then baseline_series; fi

say "medians (raw lines in $OUT)"
python3 - "$OUT" <<'PY'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(series, key):
    vals = [r[key] for r in rows if r["series"] == series and r.get(key) is not None]
    return (statistics.median(vals), vals) if vals else (None, [])
def window_cpu(series, what):
    """The load generator's own reading of the machine while it sent (load_window_cpu)."""
    cpu = [r["load_window_cpu"] for r in rows if r["series"] == series and r.get("load_window_cpu")]
    if not cpu:
        return
    shares = [c["share_percent"] for c in cpu]
    keys = sorted({k for c in shares for k in c}, key=lambda k: -statistics.median(c.get(k, 0) for c in shares))
    print(f"   CPU {what} (median, % of 2 cores): busy {statistics.median(c['busy_percent'] for c in cpu):.1f} "
          f"{[c['busy_percent'] for c in cpu]}, stolen by the host {[c['steal_percent'] for c in cpu]}; " + ", ".join(
              f"{k} {statistics.median(c.get(k, 0) for c in shares):.1f}" for k in keys))
def cpu_per_contract(series):
    """Each engine program's CPU per approved contract at peak, in µs (median of the runs):
    its share of the cores while the load was sent, over the approved contracts per second."""
    runs = [r for r in rows if r["series"] == series and r.get("load_window_cpu")
            and r.get("approved_contracts_per_sec_end_to_end")]
    if not runs:
        return None, {}
    cores = os.cpu_count()
    per = [{k: v / 100 * cores * 1e6 / r["approved_contracts_per_sec_end_to_end"]
            for k, v in r["load_window_cpu"]["share_percent"].items() if k not in ("loadgen", "other")}
           for r in runs]
    keys = sorted({k for p in per for k in p}, key=lambda k: -statistics.median(p.get(k, 0) for p in per))
    return statistics.median(sum(p.values()) for p in per), {k: statistics.median(p.get(k, 0) for p in per) for k in keys}
def print_cpu_per_contract(series):
    total, each = cpu_per_contract(series)
    if total is not None:
        print(f"   CPU per approved contract at peak (median, µs): total {total:.0f}: " +
              ", ".join(f"{k} {v:.0f}" for k, v in each.items()))
    return total
ceil = [r for r in rows if r["series"] == "sql-ceiling"]
single = statistics.median(r["single_contract_ceiling_per_sec"] for r in ceil) if ceil else float("nan")
if ceil:
    batched = statistics.median(max(b["contracts_per_sec"] for b in r["best"] if b["batch"] == 32) for r in ceil)
    print(f"SQL ceiling, one contract per transaction: median {single:.0f}/s "
          f"({[round(r['single_contract_ceiling_per_sec']) for r in ceil]})")
    print(f"SQL ceiling, 32 per transaction:           median {batched:.0f}/s")
plain2, _ = med("e2e-workers-2", "approved_contracts_per_sec_end_to_end")
for w in (1, 2, 4, "2-mixed", "2-hooks-only", "2-offpath-group", "2-cluster", "2-cluster-mixed"):
    s = f"e2e-workers-{w}"
    if not any(r["series"] == s for r in rows):
        continue
    a, av = med(s, "approved_contracts_per_sec_end_to_end")
    acc, _ = med(s, "accepted_per_sec")
    p99, _ = med(s, "accept_p99_ms")
    viol = sum(r["invariant_violations"] + r["unexpected_5xx"] for r in rows if r["series"] == s)
    print(f"{w} worker process(es): approved {a:.0f}/s {[round(v) for v in av]}, accepted {acc:.0f}/s, "
          f"accept p99 {p99:.1f} ms, ratio to the single-contract ceiling {a / single:.2f}, "
          f"violations+5xx {viol}")
    if "cluster" in str(w) and plain2:
        print(f"   ratio to the single-node engine's 2-process figure of this run: {a / plain2:.2f}")
    hooks = [r["webhooks"] for r in rows if r["series"] == s and r.get("webhooks")]
    if hooks:
        refunds = [r["refunds"]["approved"] for r in rows if r["series"] == s and r.get("refunds")]
        print(f"   refunds approved {refunds}; webhooks: deliveries {[h['deliveries'] for h in hooks]}, "
              f"missing {sum(h['missing_calls'] for h in hooks)}, unexpected "
              f"{sum(h['unexpected_events'] for h in hooks)}, bad signatures "
              f"{sum(h['bad_signatures'] for h in hooks)}, lag p99 ms {[h['lag_p99_ms'] for h in hooks]}")
    window_cpu(s, "while sending (the peak)")
    print_cpu_per_contract(s)
    cpu = [r["cpu_share_percent"] for r in rows if r["series"] == f"cpu-workers-{w}"]
    if cpu:
        keys = sorted({k for c in cpu for k in c}, key=lambda k: -statistics.median(c.get(k, 0) for c in cpu))
        print("   CPU share over the whole run, polling and verification included (median, % of 2 cores): " + ", ".join(
            f"{k} {statistics.median(c.get(k, 0) for c in cpu):.1f}" for k in keys))
        steal = [r.get("steal_percent") for r in rows if r["series"] == f"cpu-workers-{w}"]
        print(f"   stolen by the host %: {steal}")
for series, gap in (("floor", "1 ms"), ("floor-gap-20", "20 ms")):
    floor = [r for r in rows if r["series"] == series]
    for key, what in (("broker_confirm_ms", "broker confirm"), ("redis_ms", "Redis command"),
                      ("http_healthz_ms", "HTTP via nginx"), ("thread_wake_round_trip_ms", "two thread wake-ups")) if floor else ():
        print(f"floor, {what} (engine idle, one at a time, {gap} apart): p50 "
              f"{statistics.median(r[key]['p50'] for r in floor):.2f} ms, p99 "
              f"{statistics.median(r[key]['p99'] for r in floor):.2f} ms {[r[key]['p99'] for r in floor]}")
for r in (r for r in rows if r["series"] == "bulk-burst"):
    c = r["counts"]
    print(f"bulk burst: {c['accepted']} of {c['requests']} accepted, {c['never_final']} never final, "
          f"429 answers {r['errors_by_status'].get('429', 0)} (+{r['status_poll_errors_by_status'].get('429', 0)} "
          f"on polls), 5xx {r['unexpected_5xx']}, violations {r['invariant_violations']}; accepted "
          f"{r['accepted_per_sec']:.0f}/s, drained at {r['decided_per_sec_end_to_end']:.0f} commands/s "
          f"in {r['duration_secs']:.1f} s, {r['approved_contracts_per_sec_end_to_end'] / single:.2f}x the "
          f"single-contract ceiling")
for base in sorted({r["series"] for r in rows if r["series"].startswith("e2e-baseline-")}):
    b, bv = med(base, "approved_contracts_per_sec_end_to_end")
    c, cv = med("e2e-current", "approved_contracts_per_sec_end_to_end")
    print(f"A/B, plain closed loop, run after run: {base[len('e2e-baseline-'):]} {b:.0f}/s "
          f"{[round(v) for v in bv]}, this engine {c:.0f}/s {[round(v) for v in cv]}")
    print("  baseline:")
    tb = print_cpu_per_contract(base)
    print("  this engine:")
    tc = print_cpu_per_contract("e2e-current")
    if tb and tc:
        print(f"  CPU per approved contract, this engine / baseline: {tc / tb:.2f} (target 0.50)")
acc, av = med("ingress-only", "accepted_per_sec")
p99, _ = med("ingress-only", "accept_p99_ms")
if acc is not None:
    print(f"ingress only (workers stopped): accepted {acc:.0f}/s {[round(v) for v in av]}, accept p99 {p99:.1f} ms")
for r in (r for r in rows if r["series"] == "drain-1-worker"):
    print(f"drain of the ingress-only backlog by one worker process: {r['commands']} of "
          f"{r['expected']} commands at {r['commands_per_sec']}/s; CPU per command: worker "
          f"{r['worker_cpu_ms_per_command']} ms, MariaDB {r['mariadb_cpu_ms_per_command']} ms")
for series in ("open-loop-50", "open-loop-half-peak", "open-loop-half-peak-offpath-group", "open-loop-after-backlog"):
    p99, pv = med(series, "accept_p99_ms")
    p50, _ = med(series, "accept_p50_ms")
    rate = [r["rate"] for r in rows if r["series"] == series][:1]
    if p99 is not None:
        e2e50, _ = med(series, "e2e_p50_ms")
        e2e99, _ = med(series, "e2e_p99_ms")
        print(f"{series} at {rate} requests/s: accept p99 median {p99:.1f} ms "
              f"{[round(v, 1) for v in pv]}, p50 {p50:.1f} ms; end to end p50 {e2e50:.0f} ms, p99 {e2e99:.0f} ms")
        window_cpu(series, "while sending")
        cpu = [r for r in rows if r["series"] == f"cpu-{series}"]
        if cpu:
            waits = [r.get("run_queue_wait", {}) for r in cpu]
            groups = sorted({g for w in waits for g in w})
            print("   waited for a core, us per time slice (median): " + ", ".join(
                f"{g} {statistics.median(w[g]['us_per_slice'] for w in waits if g in w):.0f}"
                for g in groups))
# The target is a ratio to this engine's own accept p99 at 50 requests/s in the same run
# (BENCHMARKS.md, target 3): the machine's idle tail is the yardstick, not an absolute time.
half, _ = med("open-loop-half-peak", "accept_p99_ms")
idle, _ = med("open-loop-50", "accept_p99_ms")
if half is not None and idle:
    ratio = half / idle
    print(f"accept p99 target (half of peak <= 1.25x the p99 at 50/s): {half:.1f} ms against "
          f"{idle:.1f} ms, {ratio:.2f}x, {'met' if ratio <= 1.25 else 'missed'}")
grouped, _ = med("open-loop-half-peak-offpath-group", "accept_p99_ms")
if grouped is not None and idle:
    print(f"   with the workers and MariaDB in the CPU group: {grouped:.1f} ms, {grouped / idle:.2f}x")
PY

# The figures: matplotlib in a virtualenv of its own, made once (as schemathesis.sh does), so
# the system's Python stays untouched. A failure here costs the plots, never the results.
PLOT_VENV=.local/venv-plot
MATPLOTLIB_VERSION=3.10.9
plots() {
  if ! "$PLOT_VENV/bin/python" -c "import matplotlib, sys; sys.exit(matplotlib.__version__ != '$MATPLOTLIB_VERSION')" 2>/dev/null; then
    say "installing matplotlib $MATPLOTLIB_VERSION in $PLOT_VENV"
    python3 -m venv "$PLOT_VENV" || return 1
    "$PLOT_VENV/bin/pip" install --quiet --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION" || return 1
  fi
  local machine
  machine="$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  "$PLOT_VENV/bin/python" scripts/plot_bench.py "$OUT" --out docs/bench --note "$machine"
}
if [ "$QUICK" = 1 ] || [ "${AB_ONLY:-0}" = 1 ]; then
  say "QUICK or AB_ONLY: no plots (docs/bench keeps the last full run's)"
elif svgs=$(plots); then
  say "plots of $OUT: ${svgs//$'\n'/, }"
else
  say "plots not drawn (matplotlib unavailable?); the results are in $OUT"
fi
