#!/usr/bin/env bash
# The operator console in a real browser: headless Chromium (Debian's chromium and
# chromium-driver, nothing downloaded at run time) driven by Selenium from PyPI in
# .local/venv-console, against the running engine (scripts/run.sh first; CONSOLE_BASE_URL
# names another one). Screenshots in target/console-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SELENIUM_VERSION="4.51.0"
VENV=".local/venv-console"

ensure_packages chromium chromium-driver
if ! "$VENV/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  say "installing selenium $SELENIUM_VERSION in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"
fi

if [ -z "${CONSOLE_BASE_URL:-}" ]; then
  # The engine scripts/run.sh started: its URL, its database and its keys for xyzctl.
  engine_env
  export CONSOLE_BASE_URL="http://127.0.0.1:$HTTP_PORT" CONSOLE_DATABASE="$DB_NAME"
fi
export XYZCTL="${XYZCTL:-target/${ENGINE_PROFILE:-release}/xyzctl}"
# Selenium must use the driver given, never fetch one.
export SE_OFFLINE=true
mkdir -p target/console-test
curl -fsS "$CONSOLE_BASE_URL/readyz" >/dev/null || { say "the engine at $CONSOLE_BASE_URL is not ready"; exit 1; }
say "the console in headless Chromium against $CONSOLE_BASE_URL"
"$VENV/bin/python" scripts/console_test.py
