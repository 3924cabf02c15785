#!/usr/bin/env bash
# Where the engine's CPU goes, function by function. Runs the benchmark's engine (2 worker
# processes, release build, its own database xyz_profile and state .local/profile-engine),
# warms it up, then records one closed-loop load with `perf record` over the whole machine
# (the software clock, every core, kernel included) and prints each program's share of the
# samples and the hottest functions of each engine program.
#
#   scripts/profile.sh                      # the plain load: 6000 requests, 500 users
#   MIXED=1 scripts/profile.sh              # the mixed load: refunds and webhooks
#   TOP=40 scripts/profile.sh               # more functions per program
#   STATEMENTS=1 scripts/profile.sh         # also every SQL statement of the engine, by shape
#                                           # (MariaDB's general log; it slows MariaDB a little)
#
# The recording stays in .local/profile/<time>.data: `perf report -i FILE` browses it. The
# development engine is stopped first (same ports); start it again with scripts/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages linux-perf

REQUESTS="${REQUESTS:-6000}"
USERS="${USERS:-500}"
TOP="${TOP:-15}"
OUT=".local/profile/$(date -u +%Y%m%dT%H%M%SZ).data"
mkdir -p .local/profile .local/logs
cargo build --release -q --bins
LOADGEN=target/release/loadgen

own_engine_env .local/profile-engine xyz_profile
export REDIS_PREFIX=xyzprofile AMQP_PREFIX=xyzprofile INGRESSES=1 WEBHOOK_ALLOW_LOOPBACK=1
ENGINE_STATE=.local bash scripts/stop.sh >/dev/null
bash scripts/stop.sh >/dev/null
trap 'bash scripts/stop.sh >/dev/null 2>&1 || true' EXIT
fresh_engine_database

say "starting the engine (2 worker processes)"
WORKERS=2 bash scripts/run.sh > .local/logs/profile-run.log 2>&1
loadgen_room_and_warmup

load=(run --requests "$REQUESTS" --users "$USERS")
[ "${MIXED:-0}" = 1 ] && load+=(--refund-share 0.3 --webhooks)
say "recording: loadgen ${load[*]}"
redis-cli CONFIG RESETSTAT >/dev/null
mariadb_status() { mariadb -uroot -N -e "SHOW GLOBAL STATUS" > "$1"; }
mariadb_status .local/profile/status-before.txt
# Written by the server, so in a directory its own user may write to.
GENERAL_LOG="/tmp/xyz-profile-$(basename "${OUT%.data}").general.log"
if [ "${STATEMENTS:-0}" = 1 ]; then
  mariadb -uroot -e "SET GLOBAL general_log = 0; SET GLOBAL log_output = 'FILE';
    SET GLOBAL general_log_file = '$GENERAL_LOG'; SET GLOBAL general_log = 1"
fi
perf record -a -e cpu-clock -F 999 -o "$OUT" -- "$LOADGEN" "${load[@]}" 2>/dev/null |
  tee .local/profile/run.jsonl | python3 -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line)
        print("approved contracts/s end to end:", d.get("approved_contracts_per_sec_end_to_end"))
        c = d.get("counts", {})
        print("requests:", c.get("requests"), " approved contracts:", c.get("approved_contracts"))'

[ "${STATEMENTS:-0}" = 1 ] && mariadb -uroot -e "SET GLOBAL general_log = 0"
mariadb_status .local/profile/status-after.txt
say "MariaDB: what the load changed (SHOW GLOBAL STATUS, after minus before)"
python3 - .local/profile/status-before.txt .local/profile/status-after.txt <<'PY'
import sys
def read(path):
    out = {}
    for line in open(path):
        name, _, value = line.rstrip("\n").partition("\t")
        try:
            out[name] = int(value)
        except ValueError:
            pass
    return out
before, after = read(sys.argv[1]), read(sys.argv[2])
wanted = ("Com_insert", "Com_update", "Com_select", "Com_delete", "Com_commit", "Com_begin",
          "Com_stmt_execute", "Handler_write", "Handler_update", "Handler_delete",
          "Handler_read_key", "Handler_read_next", "Innodb_rows_inserted", "Innodb_rows_updated",
          "Innodb_rows_read", "Innodb_os_log_written", "Innodb_data_fsyncs", "Questions")
for name in wanted:
    if name in after:
        print(f"  {name:24} {after[name] - before.get(name, 0):>12}")
PY
say "Redis: calls per command over the load (INFO commandstats)"
redis-cli INFO commandstats | tr -d '\r' | grep '^cmdstat_' |
  sed -E 's/^cmdstat_([a-z|]+):calls=([0-9]+),usec=([0-9]+),usec_per_call=([0-9.]+).*/\1 \2 \3 \4/' |
  sort -k3 -n -r | awk '{printf "  %-12s calls %9d  usec %9d  usec/call %6.2f\n", $1, $2, $3, $4}'
if [ "${STATEMENTS:-0}" = 1 ]; then
  say "MariaDB: the engine's statements by shape (general log $GENERAL_LOG)"
  contracts=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        print(json.loads(line).get("counts", {}).get("approved_contracts", 0))' .local/profile/run.jsonl)
  python3 scripts/statement_census.py "$GENERAL_LOG" "$contracts" "$TOP"
fi
say "share of the samples by program and binary"
perf report -i "$OUT" --sort comm,dso --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | sed -n 1,20p
# The servers by process name; the engine's own binaries by their code (their threads are all
# named tokio-rt-worker, the load generator's too).
for filter in "--comms mariadbd" "--comms beam.smp" "--comms redis-server" "--comms nginx" \
  "--dsos ingress" "--dsos worker"; do
  say "${filter#--* }: hottest functions (percent of all samples)"
  # shellcheck disable=SC2086 # the filter is an option and its value
  perf report -i "$OUT" $filter --sort dso,sym --stdio 2>/dev/null |
    grep -v -e '^#' -e '^$' | sed -n "1,${TOP}p" || true
done
say "recording kept in $OUT"
