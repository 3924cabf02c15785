#!/usr/bin/env bash
# Rebuilds the engine image after a source change and recreates only the engine's containers
# of this compose project (what the seed's rebuild.sh did, safely):
#   1. builds the image (only the changed layers: dependencies stay cached);
#   2. applies new migrations (`xyzctl migrate`: the migrate service, recreated on the new image);
#   3. recreates ingress-1, then ingress-2, each once the other serves (nginx keeps answering),
#      reloading nginx after each so it resolves the new container's address;
#   4. recreates the workers, keeping their current number (SIGTERM: they finish what they
#      hold);
#   5. removes the image the engine ran before, when nothing uses it any more.
# MariaDB, Redis, RabbitMQ and their data are left as they are. Nothing outside the compose
# project "xyz-multifinance" is touched: no prune, no global clean-up.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=xyz-multifinance
ENV_FILE=.env
WAIT_SECONDS="${WAIT_SECONDS:-180}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'rebuild.sh: %s\n' "$*" >&2; exit 1; }
compose() { docker compose -p "$PROJECT" -f docker-compose.yml --env-file "$ENV_FILE" "$@"; }

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin (v2) is missing"
[ -f "$ENV_FILE" ] || die "no $ENV_FILE: run scripts/install.sh first"
compose config --quiet || die "$ENV_FILE is incomplete (see the message above)"
[ -n "$(compose ps -q mariadb)" ] || die "the stack is not running: run scripts/install.sh first"

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

reload_nginx() {
  if [ -n "$(compose ps -q --status running nginx)" ]; then
    say "reloading nginx (re-resolves ingress-1 and ingress-2)"
    compose exec -T nginx nginx -s reload
  fi
}

# The image the engine runs now, to remove it afterwards if the build replaced it.
image=$(compose config --images | grep -m1 '^xyz-multifinance:' || true)
old_image_id=""
[ -n "$image" ] && old_image_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)

say "building the engine image ${image:-}"
compose build migrate ingress-1 ingress-2 worker

say "applying migrations (xyzctl migrate)"
# A fresh migrate container on the new image, in the foreground; its exit code is ours.
compose up --no-deps --no-build --force-recreate --abort-on-container-exit \
  --exit-code-from migrate migrate

for svc in ingress-1 ingress-2; do
  say "recreating $svc"
  compose up -d --no-deps --no-build "$svc"
  wait_healthy "$svc"
  reload_nginx
done

workers=$(compose ps -q worker | wc -l | tr -d ' ')
[ "$workers" -ge 1 ] || workers=1
say "recreating the workers ($workers)"
compose up -d --no-deps --no-build --scale "worker=$workers" worker

if [ -n "$old_image_id" ]; then
  new_image_id=$(docker image inspect -f '{{.Id}}' "$image")
  if [ "$new_image_id" != "$old_image_id" ]; then
    say "removing the previous engine image ${old_image_id#sha256:} (if no container uses it)"
    docker image rm "$old_image_id" >/dev/null 2>&1 || say "  still in use; left in place"
  fi
fi

compose ps
say "done: the engine runs the new build"
