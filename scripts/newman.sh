#!/usr/bin/env bash
# Runs the Postman collection (XYZ-MultiFinance.postman_collection.json) with newman against the
# locally started engine (scripts/run.sh): the main story, every request signed per SPEC §2.
#
#   bash scripts/newman.sh                      # BASE_URL defaults to http://127.0.0.1:8080
#   BASE_URL=http://127.0.0.1:9080 bash scripts/newman.sh
#
# newman comes from the npm registry, pinned, into .local/newman (installed once). The keys are
# the demo keys scripts/run.sh created (.local/admin.json, .local/merchant.json); they are put in
# a runtime environment file under .local/newman, never in the committed environment file.
# Exits non-zero when any assertion fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

NEWMAN_VERSION=6.2.2
PREFIX=.local/newman
NEWMAN="$PREFIX/node_modules/.bin/newman"
COLLECTION=XYZ-MultiFinance.postman_collection.json
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
RUNTIME_ENV="$PREFIX/runtime.postman_environment.json"

command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
if [ ! -x "$NEWMAN" ] || [ "$("$NEWMAN" --version 2>/dev/null)" != "$NEWMAN_VERSION" ]; then
  say "installing newman@$NEWMAN_VERSION from the npm registry into $PREFIX"
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "newman@$NEWMAN_VERSION"
fi
say "newman $("$NEWMAN" --version), node $(node --version)"

for f in .local/admin.json .local/merchant.json; do
  [ -f "$f" ] || { say "$f is missing: start the engine with scripts/run.sh first"; exit 1; }
done

say "writing $RUNTIME_ENV (base_url $BASE_URL, keys from .local/admin.json and .local/merchant.json)"
umask 077
node - "$BASE_URL" .local/admin.json .local/merchant.json XYZ-MultiFinance.postman_environment.json "$RUNTIME_ENV" <<'JS'
const fs = require('fs');
const [baseUrl, adminFile, merchantFile, template, out] = process.argv.slice(2);
const key = (file) => {
  const k = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!k.client_id || !k.secret) throw new Error(`${file} has no client_id and secret`);
  return k;
};
const admin = key(adminFile), merchant = key(merchantFile);
const env = JSON.parse(fs.readFileSync(template, 'utf8'));
const values = { base_url: baseUrl, admin_client_id: admin.client_id, admin_secret: admin.secret,
                 merchant_client_id: merchant.client_id, merchant_secret: merchant.secret };
for (const [k, v] of Object.entries(values)) {
  const entry = env.values.find((e) => e.key === k);
  if (!entry) throw new Error(`${template} has no variable ${k}`);
  entry.value = v;
  entry.enabled = true;
}
env.name = `${env.name} (scripts/newman.sh)`;
fs.writeFileSync(out, JSON.stringify(env, null, 2) + '\n', { mode: 0o600 });
JS

say "waiting for $BASE_URL/readyz"
wait_ready "$BASE_URL" || { say "the engine at $BASE_URL is not ready"; exit 1; }

say "newman run $COLLECTION -e $RUNTIME_ENV"
"$NEWMAN" run "$COLLECTION" -e "$RUNTIME_ENV" \
  --timeout-request 45000 \
  --reporters cli,junit --reporter-junit-export "$PREFIX/junit.xml"
say "newman: every assertion passed (JUnit report in $PREFIX/junit.xml)"
