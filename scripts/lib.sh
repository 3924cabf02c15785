# Shared helpers for the scripts: sourced, not run.
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Starts MariaDB, Redis and RabbitMQ the way this machine does when one is not answering.
ensure_services() {
  if ! mariadb-admin -uroot ping >/dev/null 2>&1; then
    say "starting MariaDB"
    start_shared_mariadb
    for _ in $(seq 1 60); do mariadb-admin -uroot ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    say "starting RabbitMQ"
    rabbitmq-server -detached || true
    for _ in $(seq 1 90); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  ensure_broker_dead_lettering
  mariadb-admin -uroot ping >/dev/null
  redis-cli -h 127.0.0.1 ping >/dev/null
  rabbitmq-diagnostics -q ping >/dev/null
  say "MariaDB, Redis and RabbitMQ are up"
}

# The machine's own MariaDB server is the one of its pid file: scripts/cluster.sh's Galera
# nodes run the same /usr/sbin/mariadbd, so a match by name (start-stop-daemon without
# --pidfile, pkill -x) would take them for it.
SHARED_MARIADB_PID_FILE=/run/mysqld/mysqld.pid
start_shared_mariadb() {
  start-stop-daemon --start --oknodo --background --pidfile "$SHARED_MARIADB_PID_FILE" --exec /usr/sbin/mariadbd
}
# The machine's MariaDB server's pid (nothing when it is not running).
shared_mariadb_pid() { cat "$SHARED_MARIADB_PID_FILE" 2>/dev/null || true; }
# Sends a signal to the machine's MariaDB server only.
signal_shared_mariadb() { # signal
  local pid
  pid=$(shared_mariadb_pid)
  [ -n "$pid" ] || return 0
  kill -s "$1" "$pid" 2>/dev/null || true
}

# RabbitMQ 3.10 can lose the supervisor of its quorum queues' dead-letter workers when
# queues are deleted while consumers still use them (test runs delete hundreds): every new
# quorum queue with dead-lettering then fails to start (INTERNAL_ERROR) until the broker's
# application restarts. It happens after two test runs back to back.
ensure_broker_dead_lettering() {
  if [ "$(engine_rabbitmqctl -q eval 'whereis(rabbit_fifo_dlx_sup).' 2>/dev/null)" = undefined ]; then
    say "RabbitMQ lost its dead-letter supervisor: restarting its application"
    engine_rabbitmqctl -q stop_app && engine_rabbitmqctl -q start_app
  fi
}

# rabbitmqctl against the engine's broker: the machine's node, or the node named by
# ENGINE_RABBITMQ_NODE (scripts/cluster.sh: a node of its cluster).
engine_rabbitmqctl() { rabbitmqctl ${ENGINE_RABBITMQ_NODE:+-n "$ENGINE_RABBITMQ_NODE"} "$@"; }

# A command queue declared by an earlier release keeps its x-delivery-limit (quorum-queue
# arguments are fixed, and a policy cannot raise one on RabbitMQ 3.x). Run while the engine
# is stopped: one that stays empty and unused is deleted, and the workers declare it anew
# with the limit of rabbitmq/definitions.json (which a test holds equal to
# shared/src/amqp.rs); otherwise it is left as it is, with a warning (docs/operations.md,
# "Dead letters"). `delete_queue --if-empty` cannot do the check: quorum queues refuse it
# (3.10), and rabbitmqctl still exits 0.
recreate_outdated_command_queue() { # prefix
  local queue="$1.commands" want row
  want=$(python3 -c 'import json
d = json.load(open("rabbitmq/definitions.json"))
print(next(q["arguments"]["x-delivery-limit"] for q in d["queues"] if q["name"] == "xyz.commands"))')
  row=$(queue_row "$queue")
  [ -n "$row" ] || return 0
  case "$row" in *"\"x-delivery-limit\",$want}"*) return 0 ;; esac
  # A quorum queue's counts are refreshed every few seconds: empty and unused twice, 6 s
  # apart, with nothing publishing, is empty.
  say "$queue has another delivery limit than $want: recreating it if it stays empty and unused"
  if queue_idle "$row" && sleep 6 && queue_idle "$(queue_row "$queue")"; then
    engine_rabbitmqctl -q delete_queue "$queue" >/dev/null
    say "$queue deleted: the workers declare it anew"
  else
    say "WARNING: $queue holds commands or has consumers; it is used as it is until recreated (docs/operations.md, \"Dead letters\")"
  fi
}

# A queue's row from rabbitmqctl: name, messages, consumers, arguments.
queue_row() { { engine_rabbitmqctl -q list_queues name messages consumers arguments 2>/dev/null || true; } | awk -v q="$1" '$1 == q'; }

# Whether a queue_row has no message and no consumer.
queue_idle() { [ "$(awk '{print $2 " " $3}' <<<"$1")" = "0 0" ]; }

# Installs Debian packages that are missing.
ensure_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The virtualenv with the Standard Webhooks reference library the webhook tests verify
# signatures with (ingress/tests/api/webhooks.rs finds it at .local/venv-test, or at
# XYZ_TEST_PYTHON). Created when missing; a venv that has the library is left alone.
ensure_test_venv() {
  local venv=.local/venv-test
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    return
  fi
  ensure_packages python3-venv
  say "creating $venv with the standardwebhooks reference library (pip)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q standardwebhooks
}

# Engine processes, as scripts/run.sh starts them (STATE, BIN, HTTP_PORT and the database
# variables set by the caller). The fault harness restarts a killed one the same way.
# Workers run at nice 10 (WORKER_NICE): their decisions are asynchronous, while a merchant
# waits for every acceptance; on shared cores the ingress path goes first (BENCHMARKS.md).
# WORKER_METRICS_BASE moves the metrics ports of a second engine (scripts/cluster.sh).
# Each worker process runs one tokio thread too (WORKER_THREADS): its work is waiting on
# MySQL, RabbitMQ and the webhook receivers, and a second thread mostly adds wake-ups (the
# mixed load, one thread against two, in BENCHMARKS.md). More throughput comes from more
# processes.
start_worker() {
  local i=$1
  METRICS_ADDR=127.0.0.1:$((${WORKER_METRICS_BASE:-9100} + i)) \
    TOKIO_WORKER_THREADS="${WORKER_THREADS:-1}" \
    nohup nice -n "${WORKER_NICE:-10}" "$BIN/worker" >>"$STATE/logs/worker-$i.log" 2>&1 &
  echo $! > "$STATE/worker-$i.pid"
}

# Waits up to 10 s for $1/readyz to answer 200.
wait_ready() {
  for _ in $(seq 1 50); do curl -fs -o /dev/null "$1/readyz" && return 0; sleep 0.2; done
  return 1
}

# Each ingress runs one tokio thread (INGRESS_THREADS; tokio reads TOKIO_WORKER_THREADS):
# on two cores shared with everything else, a second thread mostly adds wake-ups between the
# two. Measured at half of peak: the ingress's CPU −8 %, accept p99 8.8 vs 10.3 ms, the peak
# unchanged (BENCHMARKS.md). More throughput comes from more processes.
start_ingress() {
  local i=$1
  INGRESS_ID=ingress-$i LISTEN_ADDR=127.0.0.1:$((HTTP_PORT + i)) \
    AUDIT_SPILL_PATH="$STATE/audit-spill-$i.jsonl" \
    TOKIO_WORKER_THREADS="${INGRESS_THREADS:-1}" \
    nohup "$BIN/ingress" >>"$STATE/logs/ingress-$i.log" 2>&1 &
  echo $! > "$STATE/ingress-$i.pid"
}

# The variables every engine process reads, from .local/keys.env (made by run.sh).
# ENGINE_STATE names another state directory (keys, pid files, logs) for a second engine on
# its own database, as scripts/bench.sh runs one.
engine_env() {
  STATE="${ENGINE_STATE:-.local}"
  # ENGINE_PROFILE=debug reuses the test build (CI) instead of a second, release build.
  PROFILE="${ENGINE_PROFILE:-release}"
  BIN="target/$PROFILE"
  HTTP_PORT="${HTTP_PORT:-8080}"
  set -a; source "$STATE/keys.env"; set +a
  DB_NAME="${DB_NAME:-xyz}"
  APP_USER="${APP_DB_USER:-xyz_app}"
  APP_PASSWORD="${APP_DB_PASSWORD:-xyz_app_local}"
  # The engine reaches a local MariaDB through its unix socket when there is one: loopback
  # TCP costs both ends kernel time on every statement (on two cores the difference was within
  # the noise, BENCHMARKS.md). DB_SOCKET= forces TCP.
  DB_SOCKET="${DB_SOCKET-/run/mysqld/mysqld.sock}"
  # ENGINE_DB_HOSTS (host:port,host:port,…; scripts/cluster.sh) names the servers instead:
  # one URL each, comma-separated, the list the engine fails over along.
  if [ -n "${ENGINE_DB_HOSTS:-}" ]; then
    local host urls=""
    for host in ${ENGINE_DB_HOSTS//,/ }; do
      urls+="${urls:+,}mysql://$APP_USER:$APP_PASSWORD@$host/$DB_NAME"
    done
    export DATABASE_URL="$urls"
  elif [ -n "$DB_SOCKET" ] && [ -S "$DB_SOCKET" ]; then
    export DATABASE_URL="mysql://$APP_USER:$APP_PASSWORD@localhost/$DB_NAME?socket=$DB_SOCKET"
  else
    export DATABASE_URL="mysql://$APP_USER:$APP_PASSWORD@127.0.0.1:3306/$DB_NAME"
  fi
  export MIGRATION_DATABASE_URL="${MIGRATION_DATABASE_URL:-mysql://root@127.0.0.1:3306/$DB_NAME}"
}

# Builds every binary of the workspace in the profile engine_env chose.
build_engine() {
  if [ "$PROFILE" = release ]; then cargo build --release --bins -q; else cargo build --bins -q; fi
}

# The workers and MariaDB in a CPU group of low weight: on shared cores the accept path
# (nginx, ingress, Redis, RabbitMQ) gets a core first, and the asynchronous work takes what is
# left. Per-thread nice did not do this (a group of many threads still wins its share);
# the group did: accept p99 at half of peak 10.8 → 5.8 ms on a fast machine, at the price of
# the decisions' latency (end-to-end p50 ~25 → ~280 ms); little gain on a slow one
# (BENCHMARKS.md).
# OFFPATH_CPU_SHARES is its weight against 1024 for every other program (cgroup v1
# cpu.shares; on cgroup v2 cpu.weight, scaled to its default 100). Each process moved in is
# written down with the group it came from, and `offpath_group off` moves it back.
# Returns non-zero when there is no writable cpu controller (the engine runs as before).
offpath_group() { # on|off
  local name dir root origins pid from
  name="xyz-offpath-$(basename "$(realpath -m "$STATE")")"
  origins="$STATE/offpath-origins"
  if [ -d /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/cpu ]; then
    root=/sys/fs/cgroup/cpu
  elif [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -w /sys/fs/cgroup ] &&
    grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    root=/sys/fs/cgroup
  else
    [ "$1" = on ] && return 1 || return 0
  fi
  dir="$root/$name"
  if [ "$1" = on ]; then
    local shares="${OFFPATH_CPU_SHARES:-2}"
    mkdir -p "$dir" || return 1
    if [ "$root" = /sys/fs/cgroup/cpu ]; then
      echo "$shares" > "$dir/cpu.shares" || return 1
    else
      echo +cpu > "$root/cgroup.subtree_control" 2>/dev/null || true
      echo $(((shares * 100 + 1023) / 1024)) > "$dir/cpu.weight" || return 1
    fi
    for pid in $(cat "$STATE"/worker-*.pid 2>/dev/null) $(shared_mariadb_pid); do
      grep -qx "$pid .*" "$origins" 2>/dev/null && continue
      from=$(offpath_cgroup_of "$pid" "$root") || continue
      [ "$from" = "/$name" ] && continue
      echo "$pid $from" >> "$origins"
      echo "$pid" > "$dir/cgroup.procs" || return 1
    done
  else
    if [ -f "$origins" ]; then
      while read -r pid from; do
        [ -d "$root$from" ] || from=/
        echo "$pid" > "$root${from%/}/cgroup.procs" 2>/dev/null || true
      done < "$origins"
      rm -f "$origins"
    fi
    if [ -d "$dir" ]; then
      # Anything still inside (a worker started into it by a restart) goes to the root.
      for pid in $(cat "$dir/cgroup.procs"); do echo "$pid" > "$root/cgroup.procs" 2>/dev/null || true; done
      rmdir "$dir" 2>/dev/null || true
    fi
  fi
}

# The cpu cgroup (relative to the controller's root) a process is in.
offpath_cgroup_of() { # pid root
  if [ "$2" = /sys/fs/cgroup/cpu ]; then
    awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3; exit}' "/proc/$1/cgroup" 2>/dev/null
  else
    awk -F: '$1 == "0" {print $3; exit}' "/proc/$1/cgroup" 2>/dev/null
  fi
}

# --- fault harnesses: scripts/faults.sh (one server of each), scripts/cluster_faults.sh ------

# One fault harness at a time on this machine: the single-server one stops the Redis the
# cluster's engine also uses, and each would count the other's outages as its own faults.
# A pid file rather than flock: the services a harness starts would inherit flock's
# descriptor and hold the lock after it. A pid that no longer runs holds nothing.
FAULT_HARNESS_LOCK=/tmp/xyz-fault-harness.pid
fault_harness_lock() {
  local pid
  if ! (set -o noclobber; echo $$ >"$FAULT_HARNESS_LOCK") 2>/dev/null; then
    pid=$(cat "$FAULT_HARNESS_LOCK" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      say "another fault harness runs on this machine (pid $pid, $FAULT_HARNESS_LOCK)"
      exit 1
    fi
    echo $$ >"$FAULT_HARNESS_LOCK"
  fi
}
# In the harness's exit trap.
fault_harness_unlock() { [ "$(cat "$FAULT_HARNESS_LOCK" 2>/dev/null)" != $$ ] || rm -f "$FAULT_HARNESS_LOCK"; }

# For the engine a harness starts: the load generator's webhook receiver listens on
# 127.0.0.1, and a failed delivery is retried within seconds, not on the production schedule
# of minutes and hours.
fault_engine_env() {
  export WEBHOOK_ALLOW_LOOPBACK=1 WEBHOOK_RETRY_SCHEDULE="${WEBHOOK_RETRY_SCHEDULE:-1,2,4,8,15,30,60}"
}

# A harness's load: signed transactions, payments and refunds through nginx (open loop, 5
# users, 20 % of the contracts refunded, 429/503 retried with the same external id like a
# merchant, a webhook receiver of its own); once every call is final, loadgen verifies the
# invariants against MySQL and exits non-zero on a violation. Its report goes to
# <prefix>.json (the last line is the JSON summary), its log to <prefix>.log. The engine's
# URL, keys and database are LOADGEN_BASE_URL, LOADGEN_*_KEY_FILE and LOADGEN_DATABASE_URL
# (unset: the engine of scripts/run.sh).
fault_load() { # report-prefix requests rate
  "$BIN/loadgen" run --requests "$2" --rate "$3" --users 5 --max-attempts 400 \
    --wait-timeout-secs 240 --refund-share 0.2 --webhooks --webhook-wait-secs 180 >"$1.json" 2>"$1.log"
}

# No request may take longer than the ingress's deadline (REQUEST_TIMEOUT_MS; nginx's request
# time adds its own milliseconds, hence the second of slack). Prints the slowest request of
# nginx's access log from a line on, and sets SLOWEST to it; non-zero past the deadline.
slowest_request_within_deadline() { # access-log first-line
  local deadline=$(( ${REQUEST_TIMEOUT_MS:-35000} / 1000 + 1 ))
  # nginx flushes its access log every second.
  sleep 2
  SLOWEST=$(tail -n +"$2" "$1" | grep -o '"request_time":[0-9.]*' | cut -d: -f2 | sort -g | tail -n 1)
  echo "slowest request through nginx: ${SLOWEST:-none} s (deadline ${deadline} s)"
  [ -z "$SLOWEST" ] || awk -v t="$SLOWEST" -v d="$deadline" 'BEGIN { exit (t > d) }'
}

# The engine's processes (scripts/run.sh's pid files in $STATE) that do not run, one a line.
engine_processes_dead() {
  local p
  for p in worker-1 worker-2 ingress-1 ingress-2 nginx; do
    kill -0 "$(cat "$STATE/$p.pid" 2>/dev/null)" 2>/dev/null || echo "$p"
  done
}

# A benchmark's buffer pool: 2 GiB for the run (the default 128 MiB is smaller than what a run
# reads, and the run would measure the disk); buffer_pool_restore sets back the size found.
# Stop the engine before restoring: a worker still committing while InnoDB withdraws pages ran
# out of room for its row locks (error 1206).
buffer_pool_for_benchmark() {
  BENCH_OLD_POOL=$(mariadb -uroot -N -e "SELECT @@innodb_buffer_pool_size")
  mariadb -uroot -e "SET GLOBAL innodb_buffer_pool_size = 2147483648"
}
buffer_pool_restore() {
  if [ -n "${BENCH_OLD_POOL:-}" ]; then
    mariadb -uroot -e "SET GLOBAL innodb_buffer_pool_size = $BENCH_OLD_POOL" 2>/dev/null || true
  fi
}

# A measuring script's engine of its own: its state directory ($1) and database ($2), with the
# load generator's keys and database following them (scripts/run.sh writes the keys there).
own_engine_env() { # state-dir database
  export ENGINE_STATE=$1 DB_NAME=$2
  export LOADGEN_ADMIN_KEY_FILE="$ENGINE_STATE/admin.json"
  export LOADGEN_MERCHANT_KEY_FILE="$ENGINE_STATE/merchant.json"
  export LOADGEN_DATABASE_URL="mysql://root@127.0.0.1:3306/$DB_NAME"
}

# That engine's database created empty, and no keys of an earlier one left (run.sh makes
# new ones), so a run starts with no book the previous one left.
fresh_engine_database() {
  mariadb -uroot -e "DROP DATABASE IF EXISTS $DB_NAME; CREATE DATABASE $DB_NAME"
  rm -f "$ENGINE_STATE"/*.json
  mkdir -p "$ENGINE_STATE/logs"
}

# For a benchmark's engine: gives the load generator's keys (LOADGEN_ADMIN_KEY_FILE,
# LOADGEN_MERCHANT_KEY_FILE) room above the default rate limit, since a benchmark measures the
# engine, not the limiter; waits for the ingresses to reload keys (every ~2 s); then sends an
# unrecorded warm-up with $LOADGEN: fresh processes prepare each shape of the workers'
# multi-row statements once per connection, which a long-running engine has long done.
# $1: the database xyzctl writes the keys to (default LOADGEN_DATABASE_URL).
loadgen_room_and_warmup() {
  local url="${1:-$LOADGEN_DATABASE_URL}" f id
  for f in "$LOADGEN_ADMIN_KEY_FILE" "$LOADGEN_MERCHANT_KEY_FILE"; do
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$f")
    target/release/xyzctl keys set-rate "$id" --per-second 20000 --burst 40000 \
      --database-url "$url" >/dev/null
  done
  sleep 3
  "$LOADGEN" run --requests 2000 --users 200 --no-verify >/dev/null 2>&1 || true
}
