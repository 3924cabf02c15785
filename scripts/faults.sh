#!/usr/bin/env bash
# Fault harness: a steady mixed load of transactions, payments and refunds runs through
# nginx while, one at a time, a fault is injected for real. After each fault and a recovery
# window, the load generator verifies against MySQL: every 202 reached a final status, SPEC
# §9's equation holds exactly for every user and tenor, no external id has two contracts,
# payments or refunds; and its webhook receiver verified every delivery's signature and got
# every final call of the merchant at least once, and nothing else. It touches the machine's shared services, so it runs alone, after the other
# tests, and a trap restores every service even when it fails.
#
#   scripts/faults.sh            short form (CI): every fault once, small load
#   scripts/faults.sh --long     long form: more load per fault (RELIABILITY.md's figures)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

MODE="${1:---short}"
case "$MODE" in
  --short) REQUESTS=400; RATE=60 ;;
  --long) REQUESTS=6000; RATE=200 ;;
  *) echo "usage: $0 [--short|--long]" >&2; exit 2 ;;
esac
ONLY="${FAULTS:-worker_kill worker_restarts ingress_kill rabbit_app rabbit_restart rabbit_alarm mariadb_restart mariadb_freeze mariadb_down redis_flush redis_restart poison}"
fault_harness_lock

mariadb_up() { mariadb-admin -uroot ping >/dev/null 2>&1; }
redis_up() { redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }
rabbit_up() { rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
wait_for() { for _ in $(seq 1 "$2"); do "$1" && return 0; sleep 1; done; return 1; }
# The broker's memory watermark as `set_vm_memory_high_watermark` takes it back: a fraction,
# or `absolute <bytes>`.
watermark() {
  rabbitmqctl -q eval 'vm_memory_monitor:get_vm_memory_high_watermark().' 2>/dev/null |
    sed -E 's/^\{absolute, *([0-9]+)\}$/absolute \1/'
}
WATERMARK=$(watermark || true)
WATERMARK=${WATERMARK:-0.4}
# shellcheck disable=SC2086 # `absolute <bytes>` is two arguments.
set_watermark() { rabbitmqctl -q set_vm_memory_high_watermark $1 >/dev/null; }

restore() {
  local code=$?
  say "restoring services"
  signal_shared_mariadb CONT
  set_watermark "$WATERMARK" 2>/dev/null || true
  mariadb_up || { start_shared_mariadb; wait_for mariadb_up 60 || true; }
  redis_up || { redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log; wait_for redis_up 30 || true; }
  rabbit_up || rabbitmqctl -q start_app >/dev/null 2>&1 || true
  rabbit_up || { rabbitmqctl -q shutdown >/dev/null 2>&1 || true; rabbitmq-server -detached >/dev/null 2>&1 || true; wait_for rabbit_up 90 || true; }
  bash scripts/stop.sh >/dev/null 2>&1 || true
  fault_harness_unlock
  exit "$code"
}
trap restore EXIT

say "starting the engine"
fault_engine_env
bash scripts/run.sh >/dev/null
engine_env
mkdir -p "$STATE/faults"

dlq_depth() { rabbitmqctl -q list_queues name messages 2>/dev/null | awk '$1=="xyz.commands.dlq"{print $2}'; }

# Ten worker restarts under load, 1 s apart, the two workers in turn, each killed (kill -9) and
# stopped (SIGTERM) in turn: every restart hands deliveries back to the broker, and none of
# those valid commands may reach the dead-letter queue.
worker_restarts() {
  local n w pid signal
  for n in $(seq 1 10); do
    w=$(((n % 2) + 1))
    if [ $((n % 4)) -lt 2 ]; then signal=KILL; else signal=TERM; fi
    pid=$(cat "$STATE/worker-$w.pid")
    say "restart $n of 10: worker $w, SIG$signal"
    kill -s "$signal" "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    start_worker "$w"
    sleep 1
  done
}

inject() {
  case "$1" in
    worker_kill)
      kill -9 "$(cat "$STATE/worker-1.pid")"; sleep 3; start_worker 1 ;;
    worker_restarts)
      worker_restarts ;;
    ingress_kill)
      kill -9 "$(cat "$STATE/ingress-1.pid")"; sleep 5; start_ingress 1 ;;
    rabbit_app)
      rabbitmqctl -q stop_app; sleep 8; rabbitmqctl -q start_app ;;
    rabbit_alarm)
      # A memory alarm: the broker blocks every publishing connection (connection.blocked),
      # so publishes neither fail nor confirm; the ingress answers 503 within its timeouts.
      set_watermark 0.0001; sleep 10; set_watermark "$WATERMARK" ;;
    rabbit_restart)
      # shutdown waits for the node's OS process to exit, so the new one starts clean.
      rabbitmqctl -q shutdown >/dev/null 2>&1 || true
      rabbitmq-server -detached >/dev/null 2>&1 || true; wait_for rabbit_up 90 ;;
    mariadb_restart)
      mariadb-admin -uroot shutdown; sleep 3
      start_shared_mariadb; wait_for mariadb_up 60 ;;
    mariadb_down)
      # A long outage: audit rows pile up in each ingress's channel, then its spill file;
      # answering never waits on them.
      mariadb-admin -uroot shutdown; sleep 60
      start_shared_mariadb; wait_for mariadb_up 60 ;;
    mariadb_freeze)
      signal_shared_mariadb STOP; sleep 10; signal_shared_mariadb CONT ;;
    redis_flush)
      redis-cli -h 127.0.0.1 FLUSHALL >/dev/null ;;
    redis_restart)
      redis-cli -h 127.0.0.1 shutdown nosave >/dev/null 2>&1 || true; sleep 2
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
      wait_for redis_up 30 ;;
    poison)
      "$BIN/loadgen" poison ;;
    *) echo "unknown fault $1" >&2; return 2 ;;
  esac
}

declare -A RESULT
failed=0
for fault in $ONLY; do
  say "fault: $fault (load: $REQUESTS requests at $RATE/s)"
  dlq_before=$(dlq_depth)
  fault_load "$STATE/faults/$fault" "$REQUESTS" "$RATE" &
  load=$!
  log_from=$(( $(wc -l <"$STATE/logs/nginx-access.log") + 1 ))
  sleep 3
  inject "$fault"
  if wait "$load"; then RESULT[$fault]=held; else RESULT[$fault]=FAILED; failed=1; fi
  if ! slowest_request_within_deadline "$STATE/logs/nginx-access.log" "$log_from"; then
    RESULT[$fault]="FAILED (a request took ${SLOWEST} s)"; failed=1
  fi
  if [ "$fault" = poison ]; then
    # A quorum queue's message count is refreshed every few seconds (statistics interval):
    # wait for it to show the dead-lettered messages rather than read a stale figure.
    for _ in $(seq 1 20); do
      dlq_after=$(dlq_depth)
      [ "$((dlq_after - ${dlq_before:-0}))" -ge 3 ] && break
      sleep 1
    done
    if [ "$((dlq_after - ${dlq_before:-0}))" -lt 3 ]; then RESULT[$fault]="FAILED (dead-letter queue grew by $((dlq_after - ${dlq_before:-0})))"; failed=1; fi
    "$BIN/xyzctl" dlq replay --all >/dev/null
  fi
  if [ "$fault" = worker_restarts ]; then
    # Read after the statistics interval, so a dead-lettered message would show.
    sleep 6
    dlq_after=$(dlq_depth)
    if [ "$((${dlq_after:-0} - ${dlq_before:-0}))" -ne 0 ]; then
      RESULT[$fault]="FAILED ($((${dlq_after:-0} - ${dlq_before:-0})) valid commands dead-lettered)"; failed=1
    fi
  fi
  # Nothing but the killed process needed a restart: the others reconnected by themselves.
  for p in $(engine_processes_dead); do RESULT[$fault]="FAILED ($p died)"; failed=1; done
  tail -n 1 "$STATE/faults/$fault.json" || true
done

say "results"
for fault in $ONLY; do printf '%-16s %s\n' "$fault" "${RESULT[$fault]}"; done
# The plain closing line: passed/failed counts.
passed=0; total=0
for fault in $ONLY; do total=$((total + 1)); [ "${RESULT[$fault]}" = held ] && passed=$((passed + 1)); done
echo "faults: $passed passed, $((total - passed)) failed"
exit "$failed"
