#!/usr/bin/env bash
# Node loss under load: scripts/faults.sh's mixed load (transactions, payments, refunds,
# webhooks) through the engine of scripts/cluster.sh, on three RabbitMQ and three Galera
# nodes, while a node is killed (SIGKILL) or stopped and then started again. After each
# fault loadgen verifies against MySQL: every 202 final, SPEC §9's equation exact for every
# user and tenor, no external id applied twice, every webhook owed received. No engine process
# may have died or been restarted: each one fails over by itself. A probe measures the
# recovery: from the fault, the seconds until a checkout sent after it was accepted (202)
# and until one was decided (its status final).
#
#   scripts/cluster_faults.sh          short form (CI): the command queue's leader killed,
#                                      then the Galera node the workers write to
#   scripts/cluster_faults.sh --long   those two, then one node of each stopped at once;
#                                      more load (RELIABILITY.md's figures)
#   FAULTS="galera_writer_kill" scripts/cluster_faults.sh --long   some faults only
#
# It brings the clusters and their engine up (scripts/cluster.sh up; ENGINE_PROFILE as
# there) and takes them down on every exit. The machine's own MariaDB and RabbitMQ are not
# touched; its Redis only by the engine, under its own prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

MODE="${1:---short}"
case "$MODE" in
  --short) RATE=20; LOAD_SECS=40; DEFAULT_FAULTS="rabbit_leader_kill galera_writer_kill" ;;
  --long) RATE=30; LOAD_SECS=120; DEFAULT_FAULTS="rabbit_leader_kill galera_writer_kill both_stop" ;;
  *) echo "usage: $0 [--short|--long]" >&2; exit 2 ;;
esac
REQUESTS=$((RATE * LOAD_SECS))
ONLY="${FAULTS:-$DEFAULT_FAULTS}"
# A node stays down at least this long, so the load runs on the two others for a while, and at
# most until the engine accepts and decides again, or RECOVERY_LIMIT_SECS have passed (a
# failure).
DOWN_SECS="${DOWN_SECS:-10}"
RECOVERY_LIMIT_SECS="${RECOVERY_LIMIT_SECS:-60}"
# What scripts/cluster.sh uses.
CLUSTER_STATE=$(realpath -m "${CLUSTER_STATE:-.local/cluster}")
export CLUSTER_STATE
HTTP="http://127.0.0.1:${CLUSTER_HTTP_PORT:-8180}"
DB_NAME="${CLUSTER_DB_NAME:-xyz_cluster}"
QUEUE="${CLUSTER_PREFIX:-xyzc}.commands"
read -r -a ENGINE_NODES <<<"${CLUSTER_ENGINE_NODES:-1 2 3}"
STATE="$CLUSTER_STATE/engine"
BIN="target/${ENGINE_PROFILE:-release}"
FAULT_DIR="$CLUSTER_STATE/faults"

fault_harness_lock

cleanup() {
  local code=$?
  [ -n "${PROBE:-}" ] && kill "$PROBE" 2>/dev/null
  say "taking the clusters down"
  bash scripts/cluster.sh down || true
  fault_harness_unlock
  exit "$code"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

mkdir -p "$FAULT_DIR"
say "clusters and their engine up (scripts/cluster.sh up, ${ENGINE_PROFILE:-release} build)"
fault_engine_env
up_from=$(now_ms)
bash scripts/cluster.sh up >"$FAULT_DIR/up.log"
echo "cluster up in $(( ($(now_ms) - up_from) / 1000 )) s"

# Every node of the Galera cluster, for loadgen's verification and xyzctl.
DB_NODES=""
for n in 1 2 3; do DB_NODES+="${DB_NODES:+,}mysql://root@127.0.0.1:$((3310 + n))/$DB_NAME"; done
export LOADGEN_BASE_URL="$HTTP" LOADGEN_ADMIN_KEY_FILE="$STATE/admin.json" \
  LOADGEN_MERCHANT_KEY_FILE="$STATE/merchant.json" LOADGEN_DATABASE_URL="$DB_NODES"

# --- where to strike --------------------------------------------------------------------------

# The RabbitMQ node (1, 2 or 3) that leads the command queue, asked of any running node.
command_queue_leader() {
  local n leader
  for n in 1 2 3; do
    leader=$(rabbitmqctl -n "xyzc$n@localhost" -q list_queues name leader 2>/dev/null |
      awk -v q="$QUEUE" '$1 == q {print $2}') || continue
    [ -n "$leader" ] && { sed -n 's/^xyzc\([0-9]\)@.*/\1/p' <<<"$leader"; return; }
  done
  return 1
}

# The Galera node (1, 2 or 3) the workers write to: their xyz_db_node gauge is its index in
# DATABASE_URL's list.
db_writer() {
  local i index first=""
  for i in 1 2; do
    index=$(curl -fs "http://127.0.0.1:$((9180 + i))/metrics" | awk '$1 == "xyz_db_node" {print $2}')
    [ -n "$index" ] || { say "worker $i has no xyz_db_node"; return 1; }
    [ -z "$first" ] || [ "$index" = "$first" ] || say "the workers write to different nodes ($first, $index): the first's is struck"
    first=${first:-$index}
  done
  echo "${ENGINE_NODES[$first]}"
}

# --- the recovery probe -----------------------------------------------------------------------

# A checkout every 0.25 s (at most 12 in flight), each with its own external id, sent once
# by its own merchant key (so that loadgen's webhook receiver hears nothing of it) and polled
# until decided. Lines in $PROBES: "accepted <sent ms> <answered ms> <HTTP status>", then
# "decided <sent ms> <decided ms>".
probe_once() { # id
  local sent answer status call_id
  sent=$(now_ms)
  answer=$(timeout 40 "$BIN/xyzctl" call --external-id "probe-$RUN-$1" POST /transaction "$PROBE_BODY" 2>/dev/null) || true
  status=$(head -n 1 <<<"$answer")
  echo "accepted $sent $(now_ms) ${status:-none}" >>"$PROBES"
  [ "$status" = 202 ] || return 0
  call_id=$(sed -n 's/.*"api_call_id": "\([^"]*\)".*/\1/p' <<<"$answer" | head -n 1)
  for _ in $(seq 1 240); do
    sleep 0.5
    if timeout 10 "$BIN/xyzctl" call GET "/status/$call_id" 2>/dev/null | grep -Eq '"status": "(APPROVED|REJECTED)"'; then
      echo "decided $sent $(now_ms)" >>"$PROBES"
      return 0
    fi
  done
}

probe_loop() {
  local n=0
  trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM
  while :; do
    if [ "$(jobs -rp | wc -l)" -lt 12 ]; then n=$((n + 1)); probe_once "$n" & fi
    sleep 0.25
  done
}

# "<accepted> <decided>": seconds from $1 (ms) until the first probe sent since was accepted,
# and until the first one sent since was decided; "-" for what has not happened yet.
recovery() { # since-ms
  awk -v t="$1" '
    $1 == "accepted" && $2 >= t && $4 == 202 && (a == "" || $3 < a) { a = $3 }
    $1 == "decided" && $2 >= t && (d == "" || $3 < d) { d = $3 }
    END {
      printf "%s %s\n", (a == "" ? "-" : sprintf("%.1f", (a - t) / 1000)), (d == "" ? "-" : sprintf("%.1f", (d - t) / 1000))
    }' "$PROBES"
}

# Waits, after a fault at $1 (ms), until probes sent since were accepted and decided, and at
# least DOWN_SECS. Non-zero when that takes over RECOVERY_LIMIT_SECS: the struck node is still
# down then, so the engine did not fail over by itself.
await_recovery() { # since-ms
  local elapsed
  while :; do
    elapsed=$(($(now_ms) - $1))
    if [[ "$(recovery "$1")" != *-* ]] && [ "$elapsed" -ge $((DOWN_SECS * 1000)) ]; then return 0; fi
    if [ "$elapsed" -gt $((RECOVERY_LIMIT_SECS * 1000)) ]; then
      say "no probe was accepted and decided within $RECOVERY_LIMIT_SECS s"
      return 1
    fi
    sleep 0.25
  done
}

# Both clusters complete again: three RabbitMQ nodes running, three Galera nodes Synced.
await_clusters() {
  for _ in $(seq 1 120); do bash scripts/cluster.sh status >/dev/null 2>&1 && return 0; sleep 1; done
  bash scripts/cluster.sh status || true
  return 1
}

say "recovery probe: its own merchant key, the demo user's tenor 6"
if [ ! -f "$STATE/probe.json" ]; then
  # Keys are written on one node (the clusters are complete here); Galera replicates them.
  (set -a; source "$STATE/keys.env"; set +a
    MIGRATION_DATABASE_URL="${DB_NODES%%,*}" "$BIN/xyzctl" keys create --name recovery-probe --role merchant) >"$STATE/probe.json.new"
  mv "$STATE/probe.json.new" "$STATE/probe.json"
fi
CLIENT_ID=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_id"])' "$STATE/probe.json")
CLIENT_SECRET=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["secret"])' "$STATE/probe.json")
BASE_URL="$HTTP"
export CLIENT_ID CLIENT_SECRET BASE_URL
PROBE_USER=$(sed -n 's/^Demo user: *//p' "$FAULT_DIR/up.log")
PROBE_BODY="{\"user_id\":\"$PROBE_USER\",\"otr\":1000,\"admin_fee\":100,\"harga_aset\":900,\"bunga_persen\":2.5,\"tenor\":6,\"nama_aset\":\"recovery probe\"}"
RUN=$(date +%s)
PROBES="$FAULT_DIR/probes-$RUN.txt"
: >"$PROBES"
probe_loop &
PROBE=$!
# The ingresses load the new key within a few seconds.
DOWN_SECS=0 await_recovery "$(now_ms)"

# --- the faults -------------------------------------------------------------------------------

# Strikes, waits for the engine to accept and decide again, brings the node(s) back and waits
# for both clusters to be complete. Sets FAULT_AT (ms), STRUCK, RECOVERED (0 when the engine
# did not recover within RECOVERY_LIMIT_SECS) and BACK_SECS.
inject() {
  local r g back_from
  RECOVERED=1
  case "$1" in
    rabbit_leader_kill)
      r=$(command_queue_leader); STRUCK="rabbit $r (leader)"
      FAULT_AT=$(now_ms); bash scripts/cluster.sh kill-node rabbit "$r"
      await_recovery "$FAULT_AT" || RECOVERED=0
      back_from=$(now_ms); bash scripts/cluster.sh start-node rabbit "$r" ;;
    galera_writer_kill)
      g=$(db_writer); STRUCK="galera $g (writer)"
      FAULT_AT=$(now_ms); bash scripts/cluster.sh kill-node galera "$g"
      await_recovery "$FAULT_AT" || RECOVERED=0
      back_from=$(now_ms); bash scripts/cluster.sh start-node galera "$g" ;;
    both_stop)
      r=$(command_queue_leader); g=$(db_writer); STRUCK="rabbit $r + galera $g"
      FAULT_AT=$(now_ms)
      bash scripts/cluster.sh stop-node rabbit "$r" & local stopping=$!
      bash scripts/cluster.sh stop-node galera "$g"; wait "$stopping"
      await_recovery "$FAULT_AT" || RECOVERED=0
      back_from=$(now_ms)
      bash scripts/cluster.sh start-node rabbit "$r" & local starting=$!
      bash scripts/cluster.sh start-node galera "$g"; wait "$starting" ;;
    *) echo "unknown fault $1" >&2; return 2 ;;
  esac
  await_clusters
  BACK_SECS=$(( ($(now_ms) - back_from) / 1000 ))
}

# The figures of loadgen's summary (the report's last line) the table shows.
load_figures() { # report.json
  tail -n 1 "$1" | python3 -c 'import json, sys
s = json.loads(sys.stdin.read())
c, w = s["counts"], s.get("webhooks") or {}
print("%d/%d final, %d violations, %s webhooks missing, %d retries, accept p99 %s ms" % (
    c["accepted"], c["accepted"] - c["never_final"], s["invariant_violations"],
    w.get("missing_calls", "?"), s["retries"], s["accept_p99_ms"]))' 2>/dev/null || echo "no summary"
}

declare -A RESULT ROW
failed=0
for fault in $ONLY; do
  await_clusters
  say "fault: $fault (load: $REQUESTS requests at $RATE/s)"
  pids=$(cat "$STATE"/{worker-1,worker-2,ingress-1,ingress-2,nginx}.pid)
  log_from=$(( $(wc -l <"$STATE/logs/nginx-access.log") + 1 ))
  fault_load "$FAULT_DIR/$fault" "$REQUESTS" "$RATE" &
  load=$!
  sleep 5
  inject "$fault"
  read -r accepted decided <<<"$(recovery "$FAULT_AT")"
  echo "$fault: $STRUCK; accepted again after $accepted s, decided again after $decided s; nodes back in $BACK_SECS s"
  if wait "$load"; then RESULT[$fault]=held; else RESULT[$fault]=FAILED; failed=1; fi
  if ! slowest_request_within_deadline "$STATE/logs/nginx-access.log" "$log_from"; then
    RESULT[$fault]="FAILED (a request took ${SLOWEST} s)"; failed=1
  fi
  for p in $(engine_processes_dead); do RESULT[$fault]="FAILED ($p died)"; failed=1; done
  [ "$(cat "$STATE"/{worker-1,worker-2,ingress-1,ingress-2,nginx}.pid)" = "$pids" ] ||
    { RESULT[$fault]="FAILED (an engine process was restarted)"; failed=1; }
  if [ "$RECOVERED" = 0 ]; then
    RESULT[$fault]="FAILED (not accepted and decided again within $RECOVERY_LIMIT_SECS s, the node down)"; failed=1
  fi
  ROW[$fault]=$(printf '%-20s %-22s %8s s %8s s %6s s  %s' "$fault" "$STRUCK" "$accepted" "$decided" "$BACK_SECS" "$(load_figures "$FAULT_DIR/$fault.json")")
done

say "results (probe: a checkout every 0.25 s; load: accepted/final, invariant violations, webhooks)"
printf '%-20s %-22s %10s %10s %8s  %s\n' fault struck "accepted" "decided" "back" "load"
for fault in $ONLY; do echo "${ROW[$fault]:-$fault}  ${RESULT[$fault]:-not run}"; done
passed=0; total=0
for fault in $ONLY; do total=$((total + 1)); [ "${RESULT[$fault]:-}" = held ] && passed=$((passed + 1)); done
echo "cluster faults: $passed passed, $((total - passed)) failed"
exit "$failed"
