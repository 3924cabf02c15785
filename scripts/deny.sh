#!/usr/bin/env bash
# Supply-chain check: `cargo deny check` (advisories, bans, licenses, sources) against deny.toml.
#
# Where the RustSec advisory database comes from:
#  - a snapshot at ../shared/advisory-db (beside the repository root; ADVISORY_DB_SNAPSHOT names
#    another directory) when there is one: read offline, nothing fetched (below);
#  - otherwise cargo-deny's usual way: it fetches the database from db-urls (GitHub) into
#    db-path. Where that host cannot be reached (a machine whose network reaches only the
#    package registries), the script says so and skips the advisories check, still running
#    bans, licenses and sources, and exits 0: no network is not a finding. A fetch that fails
#    while the host answers, or any finding, fails the run as before.
#
# The snapshot: cargo-deny keeps each advisory database as a git checkout at
# <db-path>/<name>-<hash>, where db-path is set in deny.toml and <name>-<hash> is derived from
# the database URL. With --offline it fetches nothing: it reads the advisories from
# <checkout>/crates/**.md and takes the time of the last fetch from the modification time of
# <checkout>/.git/FETCH_HEAD, refusing a database older than `maximum-db-staleness`. The
# snapshot is plain files (no .git), so this script lays out that checkout itself: `crates` is a
# symlink to the snapshot's crates/ and .git/FETCH_HEAD names the snapshot's commit, dated with
# the snapshot's own date from its SNAPSHOT file. The online path removes that layout first
# (cargo-deny would take it for a broken git checkout) and lets cargo-deny clone in its place.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# Pinned: builds with the toolchain here (rust-version 1.88) and the checkout name below is
# what this version derives from the URL in deny.toml.
DENY_VERSION=0.20.2
# deny.toml: db-path, relative to the repository root (this directory).
DB_ROOT=target/cargo-deny/advisory-dbs
# The directory cargo-deny 0.20.2 opens for db-urls = ["https://github.com/RustSec/advisory-db"]
# (an xxhash64 of the lower-cased URL). If the version or the URL changes, run
# `cargo deny -L debug --offline check advisories` and take the name from its
# "Opening advisory database at '...'" line.
DB_DIR_NAME=advisory-db-3157b0e258782691

# Where the online path fetches from: deny.toml's db-urls (kept in step by hand, like the name).
DB_URL=https://github.com/RustSec/advisory-db

root="$(pwd -P)"
snapshot="${ADVISORY_DB_SNAPSHOT:-$(cd "$root/.." && pwd -P)/shared/advisory-db}"
db="$DB_ROOT/$DB_DIR_NAME"
checks=(advisories bans licenses sources)

ensure_cargo_deny() {
  if [ "$(cargo deny --version 2>/dev/null || true)" != "cargo-deny $DENY_VERSION" ]; then
    say "installing cargo-deny $DENY_VERSION (cargo install --locked)"
    cargo install --locked cargo-deny --version "$DENY_VERSION"
  fi
  say "using $(cargo deny --version)"
}

# cargo-deny reads the whole crate graph (every platform) through `cargo metadata`, and with
# --frozen it may not download: fetch the crates of Cargo.lock from crates.io first.
fetch_crates() {
  say "cargo fetch --locked (the crates of Cargo.lock, every platform)"
  if ! cargo fetch --locked; then
    say "cargo fetch could not reach the registry: using the crates already in cargo's cache"
    cargo fetch --locked --offline
  fi
}

# Every finding, without inclusion graphs (two dozen duplicate-version warnings would print
# thousands of lines), then the summary per check. On failure the errors are shown again with
# the path that pulls each offending crate into the workspace. Offline: the advisory database
# is in place (laid out from the snapshot, or fetched just before).
run_checks() {
  say "cargo deny --frozen check $*"
  if ! cargo deny --frozen check --show-stats --hide-inclusion-graph "$@"; then
    say "supply-chain check FAILED; the errors again, each with the path that pulls the crate in:"
    cargo deny --frozen -L error check "$@" || true
    echo "error: cargo deny check failed (see above)" >&2
    exit 1
  fi
}

say "supply-chain check of $root"
if [ ! -f "$snapshot/SNAPSHOT" ] || [ ! -d "$snapshot/crates" ]; then
  say "no RustSec advisory-database snapshot at $snapshot (SNAPSHOT and crates/):"
  say "  fetching the advisory database online from $DB_URL, as cargo-deny does by default"
  ensure_cargo_deny
  fetch_crates
  # A layout left by an offline run is not a git checkout: cargo-deny must clone afresh.
  if [ -L "$db/crates" ]; then
    say "removing $db (laid out from a snapshot by an earlier run)"
    rm -rf "$db"
  fi
  fetch_log="$DB_ROOT/fetch.log"
  mkdir -p "$DB_ROOT"
  if cargo deny fetch db >"$fetch_log" 2>&1; then
    say "advisory database fetched into $db"
    run_checks "${checks[@]}"
    say "supply-chain check passed (advisories from $DB_URL, fetched now)"
    exit 0
  fi
  host="${DB_URL#https://}"
  host="${host%%/*}"
  ensure_packages curl
  if probe=$(curl -sS -o /dev/null --max-time 15 "https://$host/" 2>&1); then
    # The host answers, so this is not a missing network: a real failure.
    cat "$fetch_log" >&2
    echo "error: cargo deny could not fetch the advisory database from $DB_URL although $host answers (see above)" >&2
    exit 1
  fi
  reason=$(printf '%s' "$probe" | sed -E 's/^curl: \([0-9]+\) //' | head -n 1)
  say "SKIPPED: the advisories check. $host cannot be reached from this machine ($reason),"
  say "  so the database cannot be fetched, and there is no snapshot at $snapshot. cargo-deny said:"
  sed 's/^/    /' "$fetch_log" | tail -n 5 >&2
  say "  To check advisories offline, put a RustSec advisory-db snapshot (a SNAPSHOT file naming"
  say "  its commit and date, and crates/) there, or set ADVISORY_DB_SNAPSHOT to one."
  run_checks bans licenses sources
  say "supply-chain check passed for bans, licenses and sources; advisories NOT checked (no network, no snapshot)"
  exit 0
fi
snap_commit="$(awk '$1 == "commit" { print $2 }' "$snapshot/SNAPSHOT")"
snap_date="$(awk '$1 == "date" { print $2 }' "$snapshot/SNAPSHOT")"
if [ -z "$snap_commit" ] || [ -z "$snap_date" ] || ! date -d "$snap_date" >/dev/null 2>&1; then
  echo "error: $snapshot/SNAPSHOT does not name a commit and a date:" >&2
  cat "$snapshot/SNAPSHOT" >&2
  exit 1
fi
n_advisories="$(find -L "$snapshot/crates" -name '*.md' | wc -l)"
if [ "$n_advisories" -eq 0 ]; then
  echo "error: no advisories under $snapshot/crates" >&2
  exit 1
fi
age_days=$(( ( $(date +%s) - $(date -d "$snap_date" +%s) ) / 86400 ))
say "advisory database: snapshot $snapshot"
say "  commit $snap_commit, dated $snap_date ($age_days days old), $n_advisories advisory files"

ensure_cargo_deny

# Lay out the checkout cargo-deny expects, anew on every run, pointing at the snapshot.
say "laying out $db -> $snapshot (offline, no fetch)"
rm -rf "$db"
mkdir -p "$db/.git"
ln -s "$snapshot/crates" "$db/crates"
cp "$snapshot/SNAPSHOT" "$db/SNAPSHOT"
printf '%s\t\tbranch '\''main'\'' of https://github.com/RustSec/advisory-db (snapshot %s)\n' \
  "$snap_commit" "$snapshot" > "$db/.git/FETCH_HEAD"
touch -d "$snap_date" "$db/.git/FETCH_HEAD"

fetch_crates
run_checks "${checks[@]}"
say "supply-chain check passed"
