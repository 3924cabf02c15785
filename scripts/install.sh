#!/usr/bin/env bash
# Installs and starts the engine with docker compose (what the seed's install.sh did, safely):
#   1. checks that docker and its compose plugin are there and the engine answers;
#   2. creates .env from .env.example with freshly generated secrets if there is no .env
#      (an existing .env is never touched);
#   3. builds the engine image and starts the stack: MariaDB, Redis, RabbitMQ, the database
#      users (db-init), the migrations (migrate), two ingresses, a worker and nginx;
#   4. waits until everything is healthy and the migrations succeeded;
#   5. creates a demo admin key and a demo merchant key once (kept in .local/, mode 600) and
#      prints them.
# Safe to run again: it starts what is missing and keeps the data, the .env and the keys.
# It only touches the containers, networks and volumes of the compose project
# "xyz-multifinance".
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=xyz-multifinance
ENV_FILE=.env
STATE=.local
WAIT_SECONDS="${WAIT_SECONDS:-300}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
compose() { docker compose -p "$PROJECT" -f docker-compose.yml --env-file "$ENV_FILE" "$@"; }

# ---- 1. prerequisites --------------------------------------------------------------------------
command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker compose version >/dev/null 2>&1 ||
  die "the docker compose plugin (v2) is missing: install docker-compose-plugin (\`docker compose version\` must work)"
docker info >/dev/null 2>&1 ||
  die "the Docker engine does not answer (is it running, and may this user use it?)"
say "using $(docker compose version | head -n1), project $PROJECT"

# ---- 2. .env -----------------------------------------------------------------------------------
rand_hex() { head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }
rand_b64() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }

if [ -f "$ENV_FILE" ]; then
  say "keeping the existing $ENV_FILE"
else
  say "creating $ENV_FILE from .env.example with freshly generated secrets"
  key_id=$(sed -n 's/^MASTER_KEY_ID=\([A-Za-z0-9_-]*\)$/\1/p' .env.example)
  [ -n "$key_id" ] || die ".env.example has no MASTER_KEY_ID value"
  umask 077
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ "$line" =~ ^([A-Z][A-Z0-9_]*)=$ ]]; then
      name=${BASH_REMATCH[1]}
      case "$name" in
        *_PASSWORD) line="$name=$(rand_hex 24)" ;;
        MASTER_KEYS) line="$name=$key_id=$(rand_b64 32)" ;;
        BLIND_INDEX_KEY) line="$name=$(rand_b64 32)" ;;
        RABBITMQ_ERLANG_COOKIE) line="$name=$(rand_hex 24)" ;;
        *) die ".env.example leaves $name empty and install.sh does not know how to generate it" ;;
      esac
      say "  generated $name"
    fi
    printf '%s\n' "$line"
  done <.env.example >"$tmp"
  # noclobber: if a .env appeared meanwhile, it wins and this one is dropped.
  (set -o noclobber; cat "$tmp" >"$ENV_FILE") || die "$ENV_FILE appeared meanwhile; not overwritten"
  rm -f "$tmp"
  trap - EXIT
  chmod 600 "$ENV_FILE"
  say "wrote $ENV_FILE (mode 600): keep it secret, never commit it"
fi
compose config --quiet || die "$ENV_FILE is incomplete (see the message above)"

# ---- 3. build and start ------------------------------------------------------------------------
say "building the engine image (the first build compiles every dependency: several minutes)"
compose build

say "starting the stack (db-init and migrate run first; the engine starts after them)"
if ! compose up -d; then
  say "start-up failed; the one-shots' logs:"
  compose logs --no-color --tail 50 db-init migrate >&2 || true
  die "docker compose up failed"
fi

# ---- 4. wait -----------------------------------------------------------------------------------
container_state() {
  local id
  id=$(compose ps -a -q "$1" | head -n1)
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}:{{.State.ExitCode}}{{end}}' "$id"
}

wait_healthy() {
  local svc=$1 deadline=$((SECONDS + WAIT_SECONDS)) state
  while :; do
    state=$(container_state "$svc")
    [ "$state" = healthy ] && { say "$svc is healthy"; return 0; }
    if [ "$SECONDS" -ge "$deadline" ]; then
      compose logs --no-color --tail 50 "$svc" >&2 || true
      die "$svc is not healthy after ${WAIT_SECONDS}s (state: $state)"
    fi
    sleep 3
  done
}

for svc in mariadb redis rabbitmq; do wait_healthy "$svc"; done
for svc in db-init migrate; do
  state=$(container_state "$svc")
  if [ "$state" != "exited:0" ]; then
    compose logs --no-color --tail 50 "$svc" >&2 || true
    die "$svc did not complete successfully (state: $state)"
  fi
done
say "migrations applied (xyzctl migrate, as the migration user):"
compose logs --no-color --no-log-prefix migrate | tail -n 3 >&2
for svc in ingress-1 ingress-2 nginx; do wait_healthy "$svc"; done
say "readiness through nginx (MySQL, Redis, RabbitMQ seen by an ingress):"
compose exec -T nginx curl -fsS http://127.0.0.1:8080/readyz >&2 || die "the engine is not ready"
echo >&2

# ---- 5. demo keys ------------------------------------------------------------------------------
# xyzctl runs inside an ingress container, as the application user (creating a key is an
# INSERT), with the same master keys as the ingresses.
xyzctl() {
  # shellcheck disable=SC2016 # $DATABASE_URL expands inside the container
  compose exec -T ingress-1 sh -c 'exec xyzctl --database-url "$DATABASE_URL" "$@"' xyzctl "$@"
}
client_id_of() { sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' "$1"; }

mkdir -p "$STATE"
chmod 700 "$STATE"
existing_keys=$(xyzctl keys list)
for pair in "platform admin" "demo-merchant merchant"; do
  read -r name role <<<"$pair"
  file="$STATE/docker-$role.json"
  if [ -s "$file" ] && grep -F "\"$(client_id_of "$file")\"" <<<"$existing_keys" | grep -qF '"revoked_at":null'; then
    say "demo $role key already exists ($file)"
    continue
  fi
  say "creating the demo $role key ($name)"
  (umask 077; xyzctl keys create --name "$name" --role "$role" >"$file.tmp")
  mv "$file.tmp" "$file"
done

http_port=$(sed -n 's/^HTTP_PORT=\([0-9]*\)$/\1/p' "$ENV_FILE")
http_port=${http_port:-8080}
cat <<TXT

The engine runs: http://127.0.0.1:$http_port (nginx → ingress-1, ingress-2 → RabbitMQ → worker).
Demo admin key:    $(cat "$STATE/docker-admin.json")
Demo merchant key: $(cat "$STATE/docker-merchant.json")
(kept in $STATE/docker-*.json, mode 600; the secret cannot be read back from the database)

Send signed requests with xyzctl call, e.g.:
  CLIENT_ID=… CLIENT_SECRET=… BASE_URL=http://127.0.0.1:$http_port \\
    cargo run -q -p xyzctl -- call GET /users/USR_…/limits

More workers:    docker compose -p $PROJECT up -d --scale worker=4
After a change:  scripts/rebuild.sh
Logs:            docker compose -p $PROJECT logs -f ingress-1 worker
Observability:   docker compose -p $PROJECT --profile observability up -d
Stop:            docker compose -p $PROJECT stop      (down -v would also delete the data)
TXT
