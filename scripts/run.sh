#!/usr/bin/env bash
# Starts the whole engine locally: services ensured, database and app user created,
# migrations applied, nginx in front of two ingresses, two workers, demo keys and a demo user
# printed.
# Safe to run again: it restarts the engine's processes and keeps the data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

STATE="${ENGINE_STATE:-.local}"
mkdir -p "$STATE/logs"
ensure_services
ensure_packages nginx curl

# Keys for data at rest: generated once per checkout, kept in .local (never committed).
if [ ! -f "$STATE/keys.env" ]; then
  say "generating local master and blind-index keys in $STATE/keys.env"
  umask 077
  {
    echo "MASTER_KEYS=local1=$(head -c 32 /dev/urandom | base64)"
    echo "MASTER_KEY_ID=local1"
    echo "BLIND_INDEX_KEY=$(head -c 32 /dev/urandom | base64)"
    echo "APP_DB_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  } > "$STATE/keys.env"
fi
engine_env

say "building the binaries ($PROFILE)"
build_engine

say "migrating $DB_NAME"
"$BIN/xyzctl" migrate
say "app user $APP_USER: data rights only (no DDL)"
"$BIN/xyzctl" grant-app-user --user "$APP_USER" --password "$APP_PASSWORD"

# Demo keys exist before the ingresses start, so their first key load has them.
if [ ! -f "$STATE/admin.json" ]; then
  "$BIN/xyzctl" keys create --name platform --role admin > "$STATE/admin.json"
  "$BIN/xyzctl" keys create --name demo-merchant --role merchant > "$STATE/merchant.json"
  chmod 600 "$STATE"/*.json
fi

say "stopping engine processes from an earlier run"
bash scripts/stop.sh >/dev/null
# nginx listens with reuseport: an engine of another state directory (a benchmark's, a
# profile's) still on these ports would silently take part of every client's connections.
for port in $(seq "$HTTP_PORT" $((HTTP_PORT + ${INGRESSES:-2}))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "port $port is taken by another process (another engine? stop it with ENGINE_STATE=<its state directory> scripts/stop.sh)"
    exit 1
  fi
done
recreate_outdated_command_queue "${AMQP_PREFIX:-xyz}"

for i in $(seq 1 "${WORKERS:-2}"); do start_worker "$i"; done
if [ -n "${OFFPATH_CPU_SHARES:-}" ]; then
  say "the workers and MariaDB in a CPU group of weight $OFFPATH_CPU_SHARES (of 1024)"
  offpath_group on || say "no writable cpu cgroup here: the workers run at nice ${WORKER_NICE:-10} only"
fi
for i in $(seq 1 "${INGRESSES:-2}"); do start_ingress "$i"; done

say "nginx on :$HTTP_PORT in front of the ingresses on :$((HTTP_PORT + 1)) and :$((HTTP_PORT + 2))"
mkdir -p "$STATE/nginx"
sed -e "s/server ingress-1:8080/server 127.0.0.1:$((HTTP_PORT + 1))/" \
    -e "s/server ingress-2:8080/server 127.0.0.1:$((HTTP_PORT + 2))/" \
    -e "s/listen 8080 reuseport/listen 127.0.0.1:$HTTP_PORT reuseport/" nginx.conf |
  if [ "${INGRESSES:-2}" = 1 ]; then sed '/server 127.0.0.1:'$((HTTP_PORT + 2))'/d'; else cat; fi > "$STATE/nginx/nginx.conf"
nohup nginx -c "$PWD/$STATE/nginx/nginx.conf" -g "pid $PWD/$STATE/nginx/nginx.pid; daemon off;" \
  >"$STATE/logs/nginx-access.log" 2>"$STATE/logs/nginx-error.log" &
echo $! > "$STATE/nginx.pid"

BASE_URL="http://127.0.0.1:$HTTP_PORT"
# Every ingress on its own port, then nginx: through nginx alone the first ready ingress
# would answer for all (round robin), and a check right after could land on one still
# connecting to the broker (503).
for port in $(seq $((HTTP_PORT + 1)) $((HTTP_PORT + ${INGRESSES:-2}))) "$HTTP_PORT"; do
  wait_ready "http://127.0.0.1:$port" || { say "engine not ready (:$port/readyz); see $STATE/logs"; exit 1; }
done

ADMIN_ID=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_id"])' "$STATE/admin.json")
ADMIN_SECRET=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["secret"])' "$STATE/admin.json")

say "demo: creating a user"
USER_ID=""
for attempt in 1 2 3 4 5; do
  NIK="3201$(date +%s%N | tail -c 13)"
  USER_JSON=$(CLIENT_ID=$ADMIN_ID CLIENT_SECRET=$ADMIN_SECRET BASE_URL=$BASE_URL \
    "$BIN/xyzctl" call --external-id "demo-user-$NIK" POST /create-user "{\"nik\":\"$NIK\",\"full_name\":\"Budi Santoso\",\"legal_name\":\"Budi Santoso\",\"tempat_lahir\":\"Bandung\",\"tanggal_lahir\":\"1997-03-02\",\"gaji\":12000000,\"foto_ktp\":\"https://cdn.example.com/ktp.jpg\",\"foto_selfie\":\"https://cdn.example.com/selfie.jpg\",\"limit_one_month\":100000,\"limit_two_month\":300000,\"limit_three_month\":500000,\"limit_sixth\":10000000}" || true)
  echo "$USER_JSON"
  # xyzctl call prints the status on its first line, then the body.
  USER_ID=$(echo "$USER_JSON" | python3 -c 'import json,sys
status, body = sys.stdin.read().split("\n", 1)
print(json.loads(body)["message_data"]["user_id"] if status.strip() == "201" else "")' || true)
  [ -n "$USER_ID" ] && break
  sleep 2
done
[ -n "$USER_ID" ] || { say "the demo user could not be created; see $STATE/logs"; exit 1; }

cat <<TXT

The engine is running: nginx on $BASE_URL in front of two ingresses, ${WORKERS:-2} workers.
Logs in $STATE/logs, keys in $STATE.
Demo admin key:    $(cat "$STATE/admin.json")
Demo merchant key: $(cat "$STATE/merchant.json")
Demo user:         $USER_ID

Try a checkout with the merchant key (xyzctl call signs as docs/api.md says):
  CLIENT_ID=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_id"])' "$STATE/merchant.json") \\
  CLIENT_SECRET=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["secret"])' "$STATE/merchant.json") \\
  BASE_URL=$BASE_URL $BIN/xyzctl call --wait 5 \\
  POST /transaction '{"user_id":"$USER_ID","otr":1000,"admin_fee":100,"harga_aset":900,"bunga_persen":2.5,"tenor":3,"nama_aset":"Kulkas 2 Pintu"}'
Stop everything: scripts/stop.sh
TXT
