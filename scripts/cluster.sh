#!/usr/bin/env bash
# The engine on clusters, on this one machine: three RabbitMQ nodes (the command queue a
# quorum queue with a member on each) and three MariaDB Galera nodes (every node takes
# writes), then nginx, the ingresses and the workers of scripts/run.sh pointed at both. It is
# how the engine's failover between nodes is exercised without containers; the `cluster`
# profile of docker-compose.yml is the same topology, sharing cluster/galera.cnf and
# cluster/rabbitmq.conf with this script (`check-compose` compares the two).
#
# The machine's own MariaDB (3306), RabbitMQ (rabbit@localhost, 5672) and Redis are not
# touched, except that the cluster's engine keeps its claims in that Redis (own prefix).
# Everything else lives under CLUSTER_STATE (.local/cluster).
#
#   scripts/cluster.sh up                 start what is not running (idempotent), then the engine
#   scripts/cluster.sh down               stop the engine, then all six nodes, cleanly
#   scripts/cluster.sh status             membership and health; exits non-zero when unhealthy
#   scripts/cluster.sh kill-node rabbit|galera N    SIGKILL one node (fault tests)
#   scripts/cluster.sh start-node rabbit|galera N   start one node; it rejoins its cluster
#   scripts/cluster.sh stop-node rabbit|galera N    stop one node cleanly
#   scripts/cluster.sh check-compose      the compose profile agrees with cluster/ and this script
#
# Nodes (N = 1, 2, 3):
#   RabbitMQ xyzcN@localhost: AMQP 127.0.0.1:570N, distribution 2570N, no management listener
#   Galera galera-N: SQL 127.0.0.1:331N (root, no password, like the machine's server),
#     group communication 457N, IST 458N, SST 459N
#   engine: nginx :8180, ingresses :8181 :8182, worker metrics :9181 :9182, database
#     xyz_cluster, Redis and AMQP prefix xyzc
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CLUSTER_STATE=$(realpath -m "${CLUSTER_STATE:-.local/cluster}")
NODES=(1 2 3)
# Which nodes the engine's URL lists name (CLUSTER_ENGINE_NODES="1" gives single URLs).
read -r -a ENGINE_NODES <<<"${CLUSTER_ENGINE_NODES:-1 2 3}"
CLUSTER_HTTP_PORT="${CLUSTER_HTTP_PORT:-8180}"
CLUSTER_DB_NAME="${CLUSTER_DB_NAME:-xyz_cluster}"
CLUSTER_PREFIX="${CLUSTER_PREFIX:-xyzc}"
# The engine's state (keys, pid files, logs): relative, as run.sh and stop.sh take it.
ENGINE_DIR=$(realpath -m --relative-to=. "$CLUSTER_STATE/engine")

rabbit_name() { echo "xyzc$1@localhost"; }
rabbit_amqp_port() { echo $((5700 + $1)); }
rabbit_dir() { echo "$CLUSTER_STATE/rabbit-$1"; }
galera_port() { echo $((3310 + $1)); }
galera_dir() { echo "$CLUSTER_STATE/galera-$1"; }
GALERA_GCOMM="gcomm://127.0.0.1:4571,127.0.0.1:4572,127.0.0.1:4573"

# --- RabbitMQ ---------------------------------------------------------------------------------

# rabbitmqctl (Debian's wrapper: it runs as the rabbitmq user, with the machine's Erlang
# cookie, which the cluster's nodes share) against one node of the cluster, never the
# machine's own.
rctl() { local n=$1; shift; rabbitmqctl -n "$(rabbit_name "$n")" "$@"; }

# The broker application runs on the node.
rabbit_running() { rctl "$1" -q status >/dev/null 2>&1; }
# The node's Erlang VM answers, running or paused: with pause_minority a node left alone
# (its peers stopped or unreachable) stops its broker application and waits for them.
rabbit_alive() { rctl "$1" -q ping >/dev/null 2>&1; }

# The node's own config: cluster/rabbitmq.conf and its listener. Its own env file, plugins
# file and advanced config, so nothing of the machine's node (/etc/rabbitmq) applies.
rabbit_configure() {
  local n=$1 dir
  dir=$(rabbit_dir "$n")
  mkdir -p "$dir/mnesia" "$dir/log"
  {
    cat cluster/rabbitmq.conf
    echo
    echo "# This node (scripts/cluster.sh)."
    echo "listeners.tcp.default = 127.0.0.1:$(rabbit_amqp_port "$n")"
  } > "$dir/rabbitmq.conf"
  echo '[].' > "$dir/enabled_plugins"
  : > "$dir/rabbitmq-env.conf"
  chown -R rabbitmq:rabbitmq "$dir"
}

rabbit_start() {
  local n=$1 dir
  dir=$(rabbit_dir "$n")
  if rabbit_alive "$n"; then say "rabbit $n ($(rabbit_name "$n")) already running"; return; fi
  say "starting rabbit $n ($(rabbit_name "$n"), AMQP :$(rabbit_amqp_port "$n"))"
  rabbit_configure "$n"
  # The rabbitmq user's HOME holds the machine's cookie: one cookie for every node.
  # In the background, its output to its log only (nothing left holding this script's own).
  (cd "$dir" && exec setsid runuser -u rabbitmq -- env \
    HOME=/var/lib/rabbitmq \
    RABBITMQ_NODENAME="$(rabbit_name "$n")" \
    RABBITMQ_DIST_PORT=$((25700 + n)) \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/rabbit.pid" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    /usr/lib/rabbitmq/bin/rabbitmq-server) >"$dir/log/startup.log" 2>&1 </dev/null &
}

# Waits until the node's broker application runs (a restarted node of a cluster first waits
# for its peers' tables).
rabbit_wait() {
  local n=$1
  for _ in $(seq 1 180); do
    rctl "$n" -q await_startup --timeout 5 >/dev/null 2>&1 && return 0
    sleep 1
  done
  say "rabbit $n did not start; see $(rabbit_dir "$n")/log"
  return 1
}

# Nodes 2 and 3 join node 1 once; a node that is a member stays one across restarts.
rabbit_join() {
  local n=$1 first
  first=$(rabbit_name 1)
  if rctl "$n" -q cluster_status --formatter json 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if sys.argv[1] in json.load(sys.stdin)["disk_nodes"] else 1)' "$first"; then
    return
  fi
  say "rabbit $n joins $first"
  rctl "$n" -q stop_app
  rctl "$n" -q reset
  rctl "$n" -q join_cluster "$first"
  rctl "$n" -q start_app
}

rabbit_stop() {
  local n=$1 dir
  dir=$(rabbit_dir "$n")
  rabbit_alive "$n" || return 0
  say "stopping rabbit $n"
  rctl "$n" -q stop "$dir/rabbit.pid"
}

rabbit_kill() {
  local pid
  pid=$(cat "$(rabbit_dir "$1")/rabbit.pid" 2>/dev/null) || { say "rabbit $1: no pid file"; return 1; }
  say "kill -9 rabbit $1 (pid $pid)"
  kill -9 "$pid"
}

# --- Galera -----------------------------------------------------------------------------------

# SQL on one node, over TCP to its own port (never the machine's socket).
gsql() { local n=$1; shift; mariadb --protocol=tcp -h 127.0.0.1 -P "$(galera_port "$n")" -uroot -N -B "$@"; }
gstatus() { gsql "$1" -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | awk '{print $2}'; }

galera_pid() { cat "$(galera_dir "$1")/mariadbd.pid" 2>/dev/null; }
galera_running() { local pid; pid=$(galera_pid "$1") && kill -0 "$pid" 2>/dev/null; }
galera_primary() { [ "$(gstatus "$1" wsrep_cluster_status)" = Primary ]; }

# The node's my.cnf: cluster/galera.cnf, then what is this node's alone. Started with
# --defaults-file, so the machine's /etc/mysql configuration does not apply.
galera_configure() {
  local n=$1 dir shared_opts
  dir=$(galera_dir "$n")
  mkdir -p "$dir/data" "$dir/tmp"
  shared_opts=$(sed -n 's/^wsrep_provider_options *= *"\(.*\)"$/\1/p' cluster/galera.cnf)
  cat > "$dir/my.cnf" <<CNF
# Node $n of scripts/cluster.sh's Galera cluster: the shared settings, then its own.
!include $PWD/cluster/galera.cnf

[mariadbd]
user = mysql
datadir = $dir/data
tmpdir = $dir/tmp
socket = $dir/mariadbd.sock
pid_file = $dir/mariadbd.pid
log_error = $dir/error.log
bind_address = 127.0.0.1
port = $(galera_port "$n")
wsrep_node_name = galera-$n
wsrep_node_address = 127.0.0.1:$((4570 + n))
wsrep_cluster_address = $GALERA_GCOMM
wsrep_sst_receive_address = 127.0.0.1:$((4590 + n))
wsrep_provider_options = "$shared_opts; gmcast.listen_addr=tcp://127.0.0.1:$((4570 + n)); ist.recv_addr=127.0.0.1:$((4580 + n))"

[client]
socket = $dir/mariadbd.sock
CNF
  chown -R mysql:mysql "$dir"
}

galera_init() {
  local n=$1 dir
  dir=$(galera_dir "$n")
  galera_configure "$n"
  [ -d "$dir/data/mysql" ] && return
  say "galera $n: new data directory"
  # root@localhost/127.0.0.1 without a password, as on the machine's server.
  mariadb-install-db --defaults-file="$dir/my.cnf" --user=mysql --auth-root-authentication-method=normal \
    --skip-test-db --wsrep-on=OFF >"$dir/install.log" 2>&1 ||
    { say "mariadb-install-db failed; see $dir/install.log"; return 1; }
}

galera_start() { # N [--wsrep-new-cluster]
  local n=$1 dir
  dir=$(galera_dir "$n")
  if galera_running "$n"; then say "galera $n already running"; return; fi
  galera_init "$n"
  local args=() position
  [ -n "${2:-}" ] && args+=("$2")
  # After a crash the node tells the cluster where its data ends, so that it gets only the
  # write sets it missed (IST) instead of a full copy (SST).
  if grep -q '^seqno: *-1' "$dir/data/grastate.dat" 2>/dev/null; then
    position=$(galera_recover "$n")
    [ "$position" != -1 ] && args+=("--wsrep_start_position=$position")
  fi
  say "starting galera $n (:$(galera_port "$n"))${args[*]:+ ${args[*]}}"
  setsid /usr/sbin/mariadbd --defaults-file="$dir/my.cnf" "${args[@]}" >>"$dir/mariadbd.out" 2>&1 </dev/null &
}

# Waits until the node is Synced in a primary component (a joiner first receives an SST or
# IST).
galera_wait() {
  local n=$1
  for _ in $(seq 1 300); do
    if [ "$(gstatus "$n" wsrep_local_state_comment)" = Synced ] && galera_primary "$n"; then return 0; fi
    sleep 1
  done
  say "galera $n is not synced; see $(galera_dir "$n")/error.log"
  return 1
}

# Which node starts a cluster none of whose nodes runs: the one Galera marked safe to
# bootstrap (the last to leave cleanly), else the most advanced (after a crash of all of
# them, their positions recovered from InnoDB). A node without data starts node 1's new one.
galera_bootstrap_node() {
  local n state best=1 best_seqno=-2 seqno
  for n in "${NODES[@]}"; do
    state="$(galera_dir "$n")/data/grastate.dat"
    [ -f "$state" ] || continue
    if grep -q '^safe_to_bootstrap: *1' "$state"; then echo "$n"; return; fi
    seqno=$(sed -n 's/^seqno: *//p' "$state")
    if [ "$seqno" = -1 ]; then seqno=$(galera_recover "$n"); seqno=${seqno##*:}; fi
    if [ "$seqno" -gt "$best_seqno" ]; then best=$n; best_seqno=$seqno; fi
  done
  echo "$best"
}

# The position (uuid:seqno) of the last commit a crashed node's InnoDB holds, as
# mysqld_safe finds it (mariadbd --wsrep-recover); grastate.dat says seqno -1 after a crash.
galera_recover() {
  local n=$1 dir
  dir=$(galera_dir "$n")
  rm -f "$dir/recover.log"
  /usr/sbin/mariadbd --defaults-file="$dir/my.cnf" --wsrep-recover --log-error="$dir/recover.log" >/dev/null 2>&1 || true
  sed -n 's/.*WSREP: Recovered position: *\([^ ]*:-\{0,1\}[0-9]*\).*/\1/p' "$dir/recover.log" | tail -1 | grep . || echo -1
}

# A primary component again. When nodes still run but lost their majority (two of three
# killed: the survivor is non-Primary and refuses queries), the most advanced of them becomes
# one (pc.bootstrap) and the others join it: a node started with --wsrep-new-cluster beside
# them would found a second cluster with another history. The survivors hold every commit
# (a write set is delivered to every member before its commit returns). Only when none runs
# does a stopped node start a new cluster.
galera_bootstrap() {
  local n seqno best="" best_seqno=-2 running=0
  for n in "${NODES[@]}"; do
    galera_running "$n" || continue
    running=1
    seqno=$(gstatus "$n" wsrep_last_committed)
    [ -n "$seqno" ] && [ "$seqno" -gt "$best_seqno" ] && { best=$n; best_seqno=$seqno; }
  done
  if [ -n "$best" ]; then
    say "no Galera node is in a primary component: galera $best (running, seqno $best_seqno) becomes one"
    gsql "$best" -e "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"
    galera_wait "$best"
    return
  fi
  if [ "$running" = 1 ]; then
    say "Galera nodes run but none answers; see $CLUSTER_STATE/galera-*/error.log"
    return 1
  fi
  n=$(galera_bootstrap_node)
  say "no Galera node is running: galera $n starts the cluster"
  [ -f "$(galera_dir "$n")/data/grastate.dat" ] &&
    sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$(galera_dir "$n")/data/grastate.dat"
  galera_start "$n" --wsrep-new-cluster
  galera_wait "$n"
  # The SST (mariabackup) logs in as the OS user of mariadbd, through unix_socket; created
  # once here, it replicates to every node.
  gsql "$n" -e "CREATE USER IF NOT EXISTS 'mysql'@'localhost' IDENTIFIED VIA unix_socket;
    GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'mysql'@'localhost';"
}

# A running node in a primary component, for a node that (re)joins: it gets IST or SST.
galera_any_primary() {
  local n
  for n in "${NODES[@]}"; do galera_running "$n" && galera_primary "$n" && return 0; done
  return 1
}

galera_stop() {
  local n=$1 pid
  galera_running "$n" || return 0
  pid=$(galera_pid "$n")
  say "stopping galera $n"
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  say "galera $n did not stop in 120 s"
  return 1
}

galera_kill() {
  local pid
  pid=$(galera_pid "$1") || { say "galera $1: no pid file"; return 1; }
  say "kill -9 galera $1 (pid $pid)"
  kill -9 "$pid"
}

# --- the engine -------------------------------------------------------------------------------

# The list forms (comma-separated, one URL per node) are what the ingress and the worker take
# for failover; with CLUSTER_ENGINE_NODES="1" the engine gets single URLs to node 1, for a
# build whose clients take one URL only.
engine_vars() {
  local n amqp="" hosts="" first=${ENGINE_NODES[0]}
  for n in "${ENGINE_NODES[@]}"; do
    amqp+="${amqp:+,}amqp://guest:guest@127.0.0.1:$(rabbit_amqp_port "$n")/%2f"
    hosts+="${hosts:+,}127.0.0.1:$(galera_port "$n")"
  done
  # DDL and keys go to one node (Galera replicates them); rabbitmqctl in run.sh to one too.
  local migration="mysql://root@127.0.0.1:$((3310 + first))/$CLUSTER_DB_NAME"
  local rabbit_node="xyzc$first@localhost"
  export ENGINE_STATE="$ENGINE_DIR" HTTP_PORT="$CLUSTER_HTTP_PORT" DB_NAME="$CLUSTER_DB_NAME" \
    REDIS_PREFIX="$CLUSTER_PREFIX" AMQP_PREFIX="$CLUSTER_PREFIX" AMQP_URL="$amqp" \
    ENGINE_DB_HOSTS="$hosts" MIGRATION_DATABASE_URL="$migration" \
    ENGINE_RABBITMQ_NODE="$rabbit_node" WORKER_METRICS_BASE=9180
}

engine_start() {
  engine_vars
  say "the engine on the clusters: AMQP_URL=$AMQP_URL, database hosts $ENGINE_DB_HOSTS"
  bash scripts/run.sh
  say "the engine runs on the clusters; stop it and them with scripts/cluster.sh down"
}

engine_stop() {
  [ -d "$ENGINE_DIR" ] || return 0
  ENGINE_STATE="$ENGINE_DIR" bash scripts/stop.sh
}

# --- commands ---------------------------------------------------------------------------------

cmd_up() {
  ensure_packages galera-4 mariadb-backup rsync socat lsof python3-yaml
  mkdir -p "$CLUSTER_STATE"
  # RabbitMQ: every node at once (a node of a cluster that was stopped waits for its peers),
  # then the ones not yet members join node 1.
  local n
  for n in "${NODES[@]}"; do rabbit_start "$n"; done
  for n in "${NODES[@]}"; do rabbit_wait "$n"; done
  for n in 2 3; do rabbit_join "$n"; done
  # Galera: a cluster is started by one node, the others join it one at a time (each
  # receives a state transfer before the next asks for one).
  galera_any_primary || galera_bootstrap
  for n in "${NODES[@]}"; do
    galera_running "$n" && continue
    galera_start "$n"
    galera_wait "$n"
  done
  cmd_status_clusters
  if [ "${CLUSTER_ENGINE:-1}" = 1 ]; then engine_start; fi
}

cmd_down() {
  engine_stop
  local n
  # The last Galera node to stop is marked safe to bootstrap: node 1, which `up` starts first.
  for n in 3 2 1; do galera_stop "$n"; done
  for n in 3 2 1; do rabbit_stop "$n"; done
  say "cluster stopped (state kept in $CLUSTER_STATE)"
}

cmd_status_clusters() {
  local n healthy=0 running=() any=""
  echo "RabbitMQ"
  for n in "${NODES[@]}"; do
    if rabbit_running "$n"; then
      running+=("$n")
      echo "  rabbit $n  $(rabbit_name "$n")  :$(rabbit_amqp_port "$n")  running"
    else
      echo "  rabbit $n  $(rabbit_name "$n")  :$(rabbit_amqp_port "$n")  DOWN"
      healthy=1
    fi
  done
  if [ ${#running[@]} -gt 0 ]; then
    any=${running[0]}
    rctl "$any" -q cluster_status --formatter json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("  members:", " ".join(sorted(s["disk_nodes"])))
print("  running:", " ".join(sorted(s["running_nodes"])))
print("  alarms:", s.get("alarms") or "none")
sys.exit(0 if len(s["running_nodes"]) == 3 and not s.get("alarms") else 1)' || healthy=1
    echo "  quorum queues ($CLUSTER_PREFIX.*): name, leader, members, online"
    rctl "$any" -q list_queues name type leader members online --formatter json | python3 -c '
import json, sys
prefix = sys.argv[1] + "."
for q in json.load(sys.stdin):
    if q["name"].startswith(prefix) and q.get("type") == "quorum":
        print("   ", q["name"], q["leader"], ",".join(q["members"]), ",".join(q["online"]))' "$CLUSTER_PREFIX"
  fi
  echo "Galera"
  for n in "${NODES[@]}"; do
    if galera_running "$n" && gsql "$n" -e 'SELECT 1' >/dev/null 2>&1; then
      local size state status
      size=$(gstatus "$n" wsrep_cluster_size)
      state=$(gstatus "$n" wsrep_local_state_comment)
      status=$(gstatus "$n" wsrep_cluster_status)
      echo "  galera $n  :$(galera_port "$n")  $state, $status, cluster size $size"
      [ "$size" = 3 ] && [ "$state" = Synced ] && [ "$status" = Primary ] || healthy=1
    else
      echo "  galera $n  :$(galera_port "$n")  DOWN"
      healthy=1
    fi
  done
  return "$healthy"
}

cmd_status() {
  local healthy=0
  cmd_status_clusters || healthy=1
  echo "Engine ($ENGINE_DIR)"
  if compgen -G "$ENGINE_DIR/*.pid" >/dev/null; then
    if curl -fs -o /dev/null "http://127.0.0.1:$CLUSTER_HTTP_PORT/readyz"; then
      echo "  http://127.0.0.1:$CLUSTER_HTTP_PORT ready"
    else
      echo "  http://127.0.0.1:$CLUSTER_HTTP_PORT NOT READY"
      healthy=1
    fi
  else
    echo "  not running"
  fi
  [ "$healthy" = 0 ] && echo "healthy" || echo "UNHEALTHY"
  return "$healthy"
}

node_arg() { # kind N
  case "$1" in rabbit | galera) ;; *) echo "usage: $0 $CMD rabbit|galera N" >&2; exit 2 ;; esac
  case "${2:-}" in 1 | 2 | 3) ;; *) echo "usage: $0 $CMD rabbit|galera N (1, 2 or 3)" >&2; exit 2 ;; esac
}

cmd_start_node() {
  node_arg "$@"
  if [ "$1" = rabbit ]; then
    rabbit_start "$2"
    rabbit_wait "$2"
  elif galera_any_primary; then
    # Joins the running nodes (IST when their gcache still holds what it missed, else SST);
    # never --wsrep-new-cluster, which would split the cluster in two.
    galera_start "$2"
    galera_wait "$2"
  else
    galera_bootstrap
    galera_start "$2"
    galera_wait "$2"
  fi
}

cmd_kill_node() { node_arg "$@"; "${1}_kill" "$2"; }
cmd_stop_node() { node_arg "$@"; "${1}_stop" "$2"; }

# The compose profile against cluster/ and this script: the same files mounted, the same
# number of nodes, and URL lists naming every node.
cmd_check_compose() {
  ensure_packages python3-yaml
  python3 - docker-compose.yml <<'PY'
import re, sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
services = compose["services"]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
nodes = [1, 2, 3]
peers = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = (\S+)$",
                   open("cluster/rabbitmq-compose.conf").read(), re.M)
check(peers == [f"rabbit@rabbit-{n}" for n in nodes], f"cluster/rabbitmq-compose.conf peers {peers}")
for n in nodes:
    r = services.get(f"rabbit-{n}")
    check(r is not None, f"no service rabbit-{n}")
    if r:
        check(r.get("profiles") == ["cluster"], f"rabbit-{n} not in the cluster profile only")
        check(r.get("hostname") == f"rabbit-{n}", f"rabbit-{n}: hostname")
        vols = r.get("volumes", [])
        check(any(v.startswith("./cluster/rabbitmq.conf:") for v in vols), f"rabbit-{n} does not mount cluster/rabbitmq.conf")
        check(any(v.startswith("./cluster/rabbitmq-compose.conf:") for v in vols), f"rabbit-{n} does not mount cluster/rabbitmq-compose.conf")
        check("RABBITMQ_ERLANG_COOKIE" in r.get("environment", {}), f"rabbit-{n}: no RABBITMQ_ERLANG_COOKIE")
    g = services.get(f"galera-{n}")
    check(g is not None, f"no service galera-{n}")
    if g:
        check(g.get("profiles") == ["cluster"], f"galera-{n} not in the cluster profile only")
        check(any(v.startswith("./cluster/galera.cnf:") for v in g.get("volumes", [])), f"galera-{n} does not mount cluster/galera.cnf")
        cmd = " ".join(map(str, g.get("command", [])))
        check(f"--wsrep_cluster_address=gcomm://{','.join(f'galera-{m}' for m in nodes)}" in cmd,
              f"galera-{n}: wsrep_cluster_address does not list galera-1..3")
for name in ("cluster-ingress-1", "cluster-ingress-2", "cluster-worker"):
    s = services.get(name)
    check(s is not None, f"no service {name}")
    if not s:
        continue
    check(s.get("profiles") == ["cluster"], f"{name} not in the cluster profile only")
    env = s.get("environment", {})
    db = env.get("DATABASE_URL", "").split(",")
    amqp = env.get("AMQP_URL", "").split(",")
    check([re.search(r"@([^:/]+)", u).group(1) for u in db] == [f"galera-{n}" for n in nodes], f"{name}: DATABASE_URL does not list galera-1..3")
    check([re.search(r"@([^:/]+)", u).group(1) for u in amqp] == [f"rabbit-{n}" for n in nodes], f"{name}: AMQP_URL does not list rabbit-1..3")
for e in errors:
    print("check-compose:", e, file=sys.stderr)
if errors:
    sys.exit(1)
print("check-compose: the cluster profile matches cluster/ (3 RabbitMQ, 3 Galera nodes, engine URL lists)")
PY
}

CMD="${1:-}"
shift || true
case "$CMD" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  start-node) cmd_start_node "$@" ;;
  stop-node) cmd_stop_node "$@" ;;
  kill-node) cmd_kill_node "$@" ;;
  check-compose) cmd_check_compose ;;
  *) echo "usage: $0 up|down|status|start-node|stop-node|kill-node|check-compose" >&2; exit 2 ;;
esac
