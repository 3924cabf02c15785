#!/usr/bin/env bash
# Close of business on a book of INSTALLMENTS installments (default 1,000,000): seeds its own
# database with SQL alone, closes one date that finds every installment on a fee day (due the
# day before, 31 or 61 days before), and prints rows/s as one JSON line.
#
#   scripts/cob_bench.sh                          # seed xyz_cob_bench, run COB, report rows/s
#   COB_DB=xyz_cob_x INSTALLMENTS=2000000 COB_CHUNK=5000 scripts/cob_bench.sh
#   LOADGEN_ARGS="run …" scripts/cob_bench.sh     # the pipeline without and during COB
#
# With LOADGEN_ARGS the engine must run on the same database (DB_NAME=$COB_DB scripts/run.sh).
# Each of RUNS rounds (default 1) then runs `target/release/loadgen $LOADGEN_ARGS` alone (the
# baseline), and for each COB_DUTY_PERCENT in DUTIES (default "100 50") reseeds and runs it
# again with COB started 2 s into it; one JSON line per round and duty gives COB's rows/s and
# the load's figures both ways, with their ratios (during ÷ without).
#
# MariaDB's buffer pool is set to 2 GiB for the run (as scripts/bench.sh does: the default
# 128 MiB is a fraction of a book of a million installments, and the run would measure the
# disk), and set back at the end.
# Size the load to outlast COB (an open loop, e.g. `run --requests 15000 --rate 500 --users
# 200`). The seeded contracts belong to one user of their own, so the engine's users are
# untouched apart from sharing the server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DB="${COB_DB:-xyz_cob_bench}"
N="${INSTALLMENTS:-1000000}"
CHUNK="${COB_CHUNK:-2000}"
ROOT_URL="${ROOT_URL:-mysql://root@127.0.0.1:3306}"
XYZCTL="${XYZCTL:-target/release/xyzctl}"
MYSQL=(mysql -h 127.0.0.1 -u root)
STATE_DIR="$(mktemp -d)"
restore() {
  buffer_pool_restore
  rm -rf "$STATE_DIR"
}
trap restore EXIT
buffer_pool_for_benchmark
[[ -x "$XYZCTL" ]] || cargo build --release -p xyzctl -p loadgen

[[ "$DB" =~ ^[A-Za-z0-9_]+$ ]] || { echo "COB_DB must be [A-Za-z0-9_]" >&2; exit 2; }
MIGRATION_DATABASE_URL="$ROOT_URL/$DB" "$XYZCTL" migrate >/dev/null

# Every installment's due date is D-1, D-31 or D-61 for D = the date closed below, so the one
# COB run charges all of them; the day before D is marked closed so the run is that date alone.
D="$(TZ=Asia/Jakarta date -d 'yesterday' +%F)"
CONTRACTS=$(( (N + 5) / 6 ))
seed() {
  echo "seeding $DB: $CONTRACTS contracts × 6 installments" >&2
  start=$(date +%s.%N)
  "${MYSQL[@]}" "$DB" <<SQL
SET SESSION sql_mode = 'STRICT_ALL_TABLES';
DELETE FROM business_dates;
DROP TEMPORARY TABLE IF EXISTS digits;
CREATE TEMPORARY TABLE digits (d INT PRIMARY KEY);
INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);
DROP TABLE IF EXISTS cob_bench_seq;
CREATE TABLE cob_bench_seq (n INT PRIMARY KEY);
INSERT INTO cob_bench_seq
  SELECT a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 100000*g.d + 1000000*h.d
  FROM digits a, digits b, digits c, digits e, digits f, digits g, digits h
  WHERE a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 100000*g.d + 1000000*h.d < $CONTRACTS;
INSERT IGNORE INTO users (user_id, user_status, nik_ciphertext, nik_key_id, nik_blind_index, nik_masked,
  full_name, legal_name, tempat_lahir, tanggal_lahir, gaji, foto_ktp, foto_selfie, created_by, api_call_id,
  created_at, updated_at)
  VALUES ('USR_cob_bench', 'ACTIVE', x'00', 'bench', UNHEX(SHA2('cob_bench', 256)), '3171********0001',
  'Bench', 'Bench', 'Jakarta', '1990-01-01', 1, 'https://x', 'https://x', 'bench', 'API_CALL_cob_bench',
  NOW(6), NOW(6));
INSERT IGNORE INTO transactions (nomor_kontrak, user_id, merchant_id, external_id, api_call_id, tanggal_kontrak,
  tanggal_update, otr, admin_fee, harga_aset, pokok, bunga_persen, jumlah_bunga, jumlah_cicilan, cicilan_bulanan,
  tenor, nama_aset)
  SELECT CONCAT('KTR_cob_', LPAD(n, 8, '0')), 'USR_cob_bench', 'bench', CONCAT('cob-', n),
    CONCAT('API_CALL_cob_', LPAD(n, 8, '0')), '$D' - INTERVAL 200 DAY, '$D' - INTERVAL 200 DAY,
    600, 0, 600, 600, 0, 0, 600, 100, 6, 'Bench'
  FROM cob_bench_seq;
INSERT IGNORE INTO monthly_billings (billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor,
  harga_cicilan, terbayar, status, tanggal_tagihan)
  SELECT CONCAT('BIL_cob_', LPAD(s.n, 8, '0'), '_', k.d), CONCAT('KTR_cob_', LPAD(s.n, 8, '0')), 'USR_cob_bench',
    k.d, 'Bench', 6, 100, 0, 'UNPAID', '$D' - INTERVAL (1 + 30 * (k.d MOD 3)) DAY
  FROM cob_bench_seq s JOIN digits k ON k.d BETWEEN 1 AND 6;
-- A clean slate for a rerun: no fees, nothing processed, the day before D closed.
UPDATE monthly_billings SET denda = 0, denda_terbayar = 0, overdue_since = NULL, cob_through = NULL
  WHERE user_id = 'USR_cob_bench';
INSERT INTO business_dates VALUES ('$D' - INTERVAL 1 DAY, NOW(6));
DROP TABLE cob_bench_seq;
SQL
  echo "seeded in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
}

# COB through D on the seeded book (with COB_DUTY_PERCENT=$1 when given); sets COB_ROWS and
# COB_SECS.
close() {
  COB_ROWS=$("${MYSQL[@]}" -N "$DB" -e "SELECT COUNT(*) FROM monthly_billings WHERE tanggal_tagihan < '$D' AND terbayar + dibatalkan < harga_cicilan")
  local start out
  start=$(date +%s.%N)
  out=$(env ${1:+COB_DUTY_PERCENT=$1} MIGRATION_DATABASE_URL="$ROOT_URL/$DB" COB_CHUNK="$CHUNK" \
    "$XYZCTL" close-of-business --date "$D")
  COB_SECS=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$out" >&2
}

# The load's JSON report (the last line loadgen prints).
load() {
  # shellcheck disable=SC2086
  "$LOADGEN" $LOADGEN_ARGS | tail -n 1
}

if [[ -z "${LOADGEN_ARGS:-}" ]]; then
  seed
  close
  printf '{"installments":%s,"chunk":%s,"seconds":%.2f,"rows_per_second":%.0f}\n' \
    "$COB_ROWS" "$CHUNK" "$COB_SECS" "$(echo "$COB_ROWS / $COB_SECS" | bc -l)"
  exit 0
fi

LOADGEN="${LOADGEN:-target/release/loadgen}"
for round in $(seq 1 "${RUNS:-1}"); do
  echo "round $round: the load alone" >&2
  without=$(load)
  for duty in ${DUTIES:-100 50}; do
    seed
    echo "round $round: the load with COB (COB_DUTY_PERCENT=$duty) started 2 s into it" >&2
    load > "$STATE_DIR/during.json" &
    pid=$!
    sleep 2
    close "$duty"
    wait "$pid"
    python3 - "$without" "$STATE_DIR/during.json" "$COB_ROWS" "$COB_SECS" "$CHUNK" "$duty" <<'PY'
import json, sys
without = json.loads(sys.argv[1])
during = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
rows, secs, chunk, duty = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
keys = ["accepted_per_sec", "decided_per_sec_end_to_end", "accept_p50_ms", "accept_p99_ms",
        "e2e_p50_ms", "e2e_p99_ms", "invariant_violations", "unexpected_5xx"]
out = {"installments": rows, "chunk": chunk, "duty_percent": duty, "seconds": round(secs, 2),
       "rows_per_second": round(rows / secs),
       "without_cob": {k: without.get(k) for k in keys},
       "during_cob": {k: during.get(k) for k in keys}}
out["ratio"] = {k: round(during[k] / without[k], 3) for k in keys[:6] if without.get(k)}
print(json.dumps(out))
PY
  done
done
