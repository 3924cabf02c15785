#!/usr/bin/env bash
# Runs every test: unit and property tests, then the integration tests against the real
# MariaDB, Redis and RabbitMQ (each test on its own database, queue names and key prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_services
ensure_packages nginx
ensure_test_venv
command -v cargo-nextest >/dev/null || { say "installing cargo-nextest"; cargo install --locked cargo-nextest; }

# Integration tests create one database per test on this server (root, local socket).
export DATABASE_URL="${TEST_DATABASE_URL:-mysql://root@127.0.0.1:3306/xyz_test}"
# #[sqlx::test] connects to this database first, then makes one per test beside it.
mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS xyz_test"
export RUST_LOG="${RUST_LOG:-warn}"

say "removing queues left by earlier interrupted test runs"
# (grep finds none on a clean machine: that is not a failure.)
{ rabbitmqctl -q list_queues name 2>/dev/null || true; } | { grep -E '^t_[0-9a-f]{12}\.' || true; } | while read -r q; do
  rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
done

say "supply chain: cargo deny (advisories from the RustSec snapshot in ../shared/advisory-db, else fetched online)"
bash scripts/deny.sh

say "building every binary (process tests start real workers)"
cargo build --workspace --bins -q

say "unit, property and integration tests"
cargo nextest run --workspace --no-fail-fast -E 'not binary(faults)' "$@"

say "fault tests (they stop shared services, so they run alone, last)"
ensure_broker_dead_lettering
cargo nextest run --workspace --no-fail-fast -E 'binary(faults)' --test-threads 1 "$@"

# The whole engine, as scripts/run.sh starts it (nginx, two ingresses, two workers), on the
# test build: hostile input from its own OpenAPI document, a load-generator smoke run with
# its invariant checks, then every fault once under load.
export ENGINE_PROFILE=debug
# The smoke run's webhook receiver listens on 127.0.0.1: allowed for this test engine only.
export WEBHOOK_ALLOW_LOOPBACK=1
say "engine up for the end-to-end checks"
bash scripts/run.sh >/dev/null
say "schemathesis against /openapi.json (every request signed)"
bash scripts/schemathesis.sh
say "load generator smoke run (invariants verified against MySQL)"
# Refunds racing payments, webhooks received and verified, and limit changes racing the
# debits; limits low enough that some cuts fall below what is used (LIMIT_BELOW_USED).
target/debug/loadgen run --requests 300 --users 5 --wait-timeout-secs 120 --refund-share 0.3 --webhooks \
  --limit-changes 30 --limit 40000000
say "load generator's floor probe (broker, Redis, HTTP round trips; it cleans up after itself)"
target/debug/loadgen floor --samples 50
say "Postman collection with newman (the main story, every request signed)"
bash scripts/newman.sh
say "operator console in headless Chromium (screenshots in target/console-test/)"
bash scripts/console_test.sh
say "API guide: every snippet of docs/api.md (curl, Python, Node.js, Go) against the engine"
bash scripts/doc_snippets.sh
say "fault harness, short form"
bash scripts/faults.sh --short
say "node loss in a cluster, short form (three RabbitMQ and three Galera nodes of scripts/cluster.sh, alone, last)"
bash scripts/cluster_faults.sh --short
