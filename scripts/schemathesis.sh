#!/usr/bin/env bash
# Hostile input against the running engine: schemathesis generates requests from
# /openapi.json (valid and invalid ones), a hook signs each of them per SPEC §2, and the run
# fails on any 5xx, any undocumented status code or content type, and any response that does
# not match its documented schema.
#
#   bash scripts/run.sh            # the engine on :8080, and .local/admin.json
#   bash scripts/schemathesis.sh   # MAX_EXAMPLES=N (per operation), BASE_URL, KEY_FILE, SEED
# The operations on one existing key (rotate, revoke, set its rate) are left out: fed the
# key ids GET /admin/keys lists, they would revoke or throttle the keys the later checks sign
# with. ingress/tests/api/admin.rs covers them.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
KEY_FILE="${KEY_FILE:-.local/admin.json}"
MAX_EXAMPLES="${MAX_EXAMPLES:-100}"
SCHEMATHESIS_VERSION="4.32.5"
VENV=".local/venv-schemathesis"
REPORT_DIR=".local/schemathesis"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

[ -f "$KEY_FILE" ] || { say "no key file $KEY_FILE: start the engine with scripts/run.sh"; exit 1; }
curl -fsS "$BASE_URL/readyz" >/dev/null || { say "the engine at $BASE_URL is not ready"; exit 1; }

say "schemathesis $SCHEMATHESIS_VERSION against $BASE_URL/openapi.json ($MAX_EXAMPLES examples per operation)"
mkdir -p "$REPORT_DIR"
# Keeps schemathesis' crash cache out of the work tree.
cat > "$REPORT_DIR/schemathesis.toml" <<TOML
[cache]
directory = "$PWD/$REPORT_DIR/cache"
TOML
seed_args=()
[ -n "${SEED:-}" ] && seed_args=(--seed "$SEED")
XYZ_KEY_FILE="$KEY_FILE" SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py \
  "$VENV/bin/schemathesis" --config-file "$REPORT_DIR/schemathesis.toml" run "$BASE_URL/openapi.json" \
    --url "$BASE_URL" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --workers 2 \
    --request-timeout 40 \
    --generation-database none \
    --exclude-path-regex '^/admin/keys/' \
    --report junit --report-dir "$REPORT_DIR" \
    --no-color \
    "${seed_args[@]}"
