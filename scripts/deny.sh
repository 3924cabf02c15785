#!/usr/bin/env bash
# Supply-chain check: `cargo deny check` (advisories, bans, licenses, sources) against deny.toml,
# reading the RustSec advisory database from the snapshot at ../shared/advisory-db (beside the
# repository root) with no network access to any advisory database.
#
# cargo-deny keeps each advisory database as a git checkout at <db-path>/<name>-<hash>, where
# db-path is set in deny.toml and <name>-<hash> is derived from the database URL. With --offline
# it fetches nothing: it reads the advisories from <checkout>/crates/**.md and takes the time of
# the last fetch from the modification time of <checkout>/.git/FETCH_HEAD, refusing a database
# older than `maximum-db-staleness`. The snapshot is plain files (no .git), so this script lays
# out that checkout itself: `crates` is a symlink to the snapshot's crates/ and .git/FETCH_HEAD
# names the snapshot's commit, dated with the snapshot's own date from its SNAPSHOT file.
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

root="$(pwd -P)"
snapshot="$(cd "$root/.." && pwd -P)/shared/advisory-db"

say "supply-chain check of $root"
if [ ! -f "$snapshot/SNAPSHOT" ] || [ ! -d "$snapshot/crates" ]; then
  echo "error: no RustSec advisory-database snapshot at $snapshot" >&2
  echo "       (expected ../shared/advisory-db beside the repository, with SNAPSHOT and crates/)" >&2
  exit 1
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

if [ "$(cargo deny --version 2>/dev/null || true)" != "cargo-deny $DENY_VERSION" ]; then
  say "installing cargo-deny $DENY_VERSION (cargo install --locked)"
  cargo install --locked cargo-deny --version "$DENY_VERSION"
fi
say "using $(cargo deny --version)"

# Lay out the checkout cargo-deny expects, anew on every run, pointing at the snapshot.
db="$DB_ROOT/$DB_DIR_NAME"
say "laying out $db -> $snapshot (offline, no fetch)"
rm -rf "$db"
mkdir -p "$db/.git"
ln -s "$snapshot/crates" "$db/crates"
cp "$snapshot/SNAPSHOT" "$db/SNAPSHOT"
printf '%s\t\tbranch '\''main'\'' of https://github.com/RustSec/advisory-db (snapshot %s)\n' \
  "$snap_commit" "$snapshot" > "$db/.git/FETCH_HEAD"
touch -d "$snap_date" "$db/.git/FETCH_HEAD"

# cargo-deny reads the whole crate graph (every platform) through `cargo metadata`, and with
# --offline it may not download: fetch the crates of Cargo.lock from crates.io first.
say "cargo fetch --locked (the crates of Cargo.lock, every platform)"
cargo fetch --locked

# Every finding, without inclusion graphs (two dozen duplicate-version warnings would print
# thousands of lines), then the summary per check. On failure the errors are shown again with
# the path that pulls each offending crate into the workspace.
checks=(advisories bans licenses sources)
say "cargo deny --frozen check ${checks[*]}"
if ! cargo deny --frozen check --show-stats --hide-inclusion-graph "${checks[@]}"; then
  say "supply-chain check FAILED; the errors again, each with the path that pulls the crate in:"
  cargo deny --frozen -L error check "${checks[@]}" || true
  echo "error: cargo deny check failed (see above)" >&2
  exit 1
fi
say "supply-chain check passed"
