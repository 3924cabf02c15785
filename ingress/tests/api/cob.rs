//! Close of business (SPEC §12), run as the real `xyzctl close-of-business` against this
//! test's database with future dates allowed: overdue marking, late fees on days 1, 31 and 61
//! up to the cap, payments that pay fees first, refunds that leave fees owed, the runner lock,
//! bad dates, and `GET /business-date`.

use crate::helpers::*;
use chrono::NaiveDate;
use serde_json::Value;
use std::process::Output;
use tokio::process::Command as Process;

const LIMITS: [&str; 4] = ["100000", "300000", "500000", "10000000"];

pub(crate) async fn xyzctl(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    // XYZCTL_BIN names another build of the CLI (a target dir shared by several checkouts).
    let exe = std::env::current_exe().expect("test binary");
    let bin = std::env::var_os("XYZCTL_BIN").map_or_else(
        || {
            exe.parent()
                .and_then(|d| d.parent())
                .expect("target dir")
                .join("xyzctl")
        },
        std::path::PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} missing: build xyzctl first",
        bin.display()
    );
    let mut cmd = Process::new(bin);
    cmd.env("MIGRATION_DATABASE_URL", database_url(&app.pool))
        .env("RUST_LOG", "error")
        .env_remove("ALLOW_FUTURE_COB")
        .env_remove("LATE_FEE_PERCENT")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("xyzctl runs")
}

/// Closes through `date` with future dates allowed, as tests and drills do.
pub(crate) async fn close(app: &TestApp, date: NaiveDate, percent: &str) -> Value {
    let date = date.to_string();
    let out = xyzctl(
        app,
        &["close-of-business", "--date", &date, "--allow-future"],
        &[("ALLOW_FUTURE_COB", "1"), ("LATE_FEE_PERCENT", percent)],
    )
    .await;
    assert!(
        out.status.success(),
        "close-of-business {date}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("one line")).expect("JSON line")
}

async fn read_contract(app: &TestApp, nomor: &str) -> Value {
    let r = app.get(&app.admin, &format!("/contracts/{nomor}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data().clone()
}

pub(crate) fn due_date(contract: &Value, k: usize) -> NaiveDate {
    contract["tagihan"][k]["tanggal_tagihan"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .expect("tanggal_tagihan")
}

pub(crate) fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

async fn business_date(app: &TestApp) -> Value {
    let r = app.get(&app.admin, "/business-date").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data()["last_closed"].clone()
}

#[sqlx::test(migrations = "../migrations")]
async fn an_installment_is_overdue_the_day_after_its_due_date_and_charged_on_days_1_31_61(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 1).await;
    assert_eq!(business_date(&app).await, Value::Null);
    let user = app.create_user(LIMITS).await;
    let c = contract(&app, &user, "1000.00", "0", "0", 1).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let due = due_date(&c, 0);

    close(&app, due, "1").await;
    let t = read_contract(&app, &nomor).await["tagihan"][0].clone();
    assert_eq!(
        (t["denda"].as_str(), t["hari_terlambat"].as_u64()),
        (Some("0.00"), Some(0))
    );
    assert_eq!(business_date(&app).await, due.to_string());

    close(&app, due + days(1), "1").await;
    let t = read_contract(&app, &nomor).await["tagihan"][0].clone();
    assert_eq!(t["denda"], "10.00");
    assert_eq!(t["hari_terlambat"], 1);

    let again = close(&app, due + days(1), "1").await;
    assert_eq!(again["already_closed"], true);
    assert_eq!(
        read_contract(&app, &nomor).await["tagihan"][0]["denda"],
        "10.00"
    );

    for (day, denda) in [
        (30, "10.00"),
        (31, "20.00"),
        (60, "20.00"),
        (61, "30.00"),
        (90, "30.00"),
    ] {
        close(&app, due + days(day), "1").await;
        let t = read_contract(&app, &nomor).await["tagihan"][0].clone();
        assert_eq!(t["denda"], denda, "day {day}");
        assert_eq!(t["hari_terlambat"], day, "day {day}");
    }
    assert_eq!(business_date(&app).await, (due + days(90)).to_string());
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn fees_never_pass_the_installment_price(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 1).await;
    let user = app.create_user(LIMITS).await;
    let c = contract(&app, &user, "1000.00", "0", "0", 1).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let due = due_date(&c, 0);
    for (day, denda) in [
        (1, "400.00"),
        (31, "800.00"),
        (61, "1000.00"),
        (91, "1000.00"),
    ] {
        close(&app, due + days(day), "40").await;
        let t = read_contract(&app, &nomor).await["tagihan"][0].clone();
        assert_eq!(t["denda"], denda, "day {day}");
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_payment_pays_the_fee_first_and_restores_only_the_installment_part(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 1).await;
    let user = app.create_user(LIMITS).await;
    let c = contract(&app, &user, "1000.00", "0", "0", 1).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let due = due_date(&c, 0);
    close(&app, due + days(1), "1").await;
    let before = app.limits(&user).await["1"]["available"].clone();

    let too_much = pay(&app, &nomor, "1010.01").await;
    assert_eq!(too_much.status, 400, "{}", too_much.body);

    let fee_part = pay(&app, &nomor, "4.00").await;
    assert_eq!(fee_part.status, 201, "{}", fee_part.body);
    let bill = &fee_part.data()["result"];
    assert_eq!(bill["total_tagihan"], "1010.00");
    assert_eq!(bill["alokasi"][0]["denda"], "4.00");
    assert_eq!(bill["alokasi"][0]["jumlah"], "0.00");
    assert_eq!(app.limits(&user).await["1"]["available"], before);

    let both = pay(&app, &nomor, "106.00").await;
    assert_eq!(both.status, 201, "{}", both.body);
    let bill = &both.data()["result"];
    assert_eq!(bill["alokasi"][0]["denda"], "6.00");
    assert_eq!(bill["alokasi"][0]["jumlah"], "100.00");
    assert_eq!(bill["status_bayar"], "PARTIAL");
    assert_eq!(bill["sisa_tagihan_bulanan"], "900.00");
    let after: rust_decimal::Decimal = app.limits(&user).await["1"]["available"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("available");
    let before: rust_decimal::Decimal = before
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("available");
    assert_eq!(after - before, rust_decimal::Decimal::new(10000, 2));

    let rest = pay(&app, &nomor, "900.00").await;
    assert_eq!(rest.status, 201, "{}", rest.body);
    assert_eq!(rest.data()["result"]["status_bayar"], "SUCCESS");
    let read = read_contract(&app, &nomor).await;
    assert_eq!(read["status_kontrak"], "PAID_OFF");
    assert_eq!(read["tagihan"][0]["status"], "PAID");
    assert_eq!(read["tagihan"][0]["denda_terbayar"], "10.00");
    assert_eq!(read["tagihan"][0]["hari_terlambat"], 0);
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refund_after_fees_leaves_the_fees_owed(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 1).await;
    let user = app.create_user(LIMITS).await;
    let c = contract(&app, &user, "1000.00", "0", "0", 1).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    close(&app, due_date(&c, 0) + days(1), "1").await;
    let body: Value = serde_json::from_str(&format!(
        r#"{{"nomor_kontrak":"{nomor}","jumlah":1000,"alasan":"barang dikembalikan"}}"#
    ))
    .expect("json");
    let refund = app
        .post_wait(&app.merchant, "/refund", &fresh_id(), &body)
        .await;
    assert_eq!(refund.status, 201, "{}", refund.body);
    let read = read_contract(&app, &nomor).await;
    assert_eq!(read["status_kontrak"], "CANCELLED");
    assert_eq!(read["tagihan"][0]["denda"], "10.00");
    assert_eq!(read["tagihan"][0]["denda_terbayar"], "0.00");
    assert_eq!(read["tagihan"][0]["hari_terlambat"], 1);

    let fees = pay(&app, &nomor, "10.00").await;
    assert_eq!(fees.status, 201, "{}", fees.body);
    assert_eq!(fees.data()["result"]["alokasi"][0]["denda"], "10.00");
    assert_eq!(fees.data()["result"]["status_bayar"], "SUCCESS");
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_dates_and_future_dates_without_permission_change_nothing(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let tomorrow = (shared::cob::jakarta_date(chrono::Utc::now()) + days(1)).to_string();
    for (args, env, says) in [
        (
            vec!["close-of-business", "--date", "2026-02-30"],
            vec![],
            "is not a date",
        ),
        (
            vec!["close-of-business", "--date", "yesterday"],
            vec![],
            "is not a date",
        ),
        (
            vec!["close-of-business", "--date", &tomorrow],
            vec![],
            "needs --allow-future",
        ),
        (
            vec!["close-of-business", "--date", &tomorrow, "--allow-future"],
            vec![],
            "ALLOW_FUTURE_COB=1",
        ),
        (
            vec!["close-of-business", "--date", &tomorrow, "--allow-future"],
            vec![("ALLOW_FUTURE_COB", "0")],
            "ALLOW_FUTURE_COB=1",
        ),
        (
            vec!["close-of-business"],
            vec![("LATE_FEE_PERCENT", "101")],
            "not within 0..=100",
        ),
        (
            vec!["close-of-business"],
            vec![("LATE_FEE_PERCENT", "one")],
            "is not a number",
        ),
        (
            vec!["close-of-business"],
            vec![("COB_DUTY_PERCENT", "0")],
            "COB_DUTY_PERCENT",
        ),
    ] {
        let out = xyzctl(&app, &args, &env).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(business_date(&app).await, Value::Null);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_second_runner_exits_saying_another_is_running(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let mut holder = app.pool.acquire().await.expect("connection");
    let held: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('xyz_cob:', DATABASE()), 0)")
            .fetch_one(&mut *holder)
            .await
            .expect("lock");
    assert_eq!(held, Some(1));
    let out = xyzctl(&app, &["close-of-business"], &[]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another close of business is running"));
    assert_eq!(business_date(&app).await, Value::Null);
    drop(holder);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_with_an_overdue_installment_is_rejected_until_it_is_paid(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 1).await;
    let user = app.create_user(LIMITS).await;
    let c = contract(&app, &user, "1000.00", "0", "0", 1).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    close(&app, due_date(&c, 0) + days(1), "1").await;

    async fn checkout(app: &TestApp, user: &str) -> Resp {
        let body = transaction_body(user, "100.00", "0", "100.00", "0", 1);
        app.send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await
    }
    let refused = checkout(&app, &user).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.action(), "USER_OVERDUE");

    // The installment paid but not its fee: still overdue.
    assert_eq!(pay(&app, &nomor, "1000.00").await.status, 201);
    assert_eq!(checkout(&app, &user).await.action(), "USER_OVERDUE");

    assert_eq!(pay(&app, &nomor, "10.00").await.status, 201);
    let approved = checkout(&app, &user).await;
    assert_eq!(approved.status, 201, "{}", approved.body);
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

/// A book of `contracts` × 6 installments of 100.00 seeded with SQL alone, due on 1 March
/// 2026 and every 30 days before, in the database behind `url`.
async fn seed_book(url: &str, contracts: u32) {
    let pool = sqlx::MySqlPool::connect(url).await.expect("connect");
    let statements = [
        "CREATE TEMPORARY TABLE digits (d INT PRIMARY KEY)".to_owned(),
        "INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)".to_owned(),
        "INSERT INTO users (user_id, user_status, nik_ciphertext, nik_key_id, nik_blind_index, nik_masked,
            full_name, legal_name, tempat_lahir, tanggal_lahir, gaji, foto_ktp, foto_selfie, created_by,
            api_call_id, created_at, updated_at)
         VALUES ('USR_book', 'ACTIVE', x'00', 'k', UNHEX(SHA2('book', 256)), '3171********0001', 'B', 'B',
            'J', '1990-01-01', 1, 'https://x', 'https://x', 'seed', 'API_CALL_book', '2026-01-01', '2026-01-01')"
            .to_owned(),
        format!(
            "INSERT INTO transactions (nomor_kontrak, user_id, merchant_id, external_id, api_call_id,
                tanggal_kontrak, tanggal_update, otr, admin_fee, harga_aset, pokok, bunga_persen,
                jumlah_bunga, jumlah_cicilan, cicilan_bulanan, tenor, nama_aset)
             SELECT CONCAT('KTR_book_', n), 'USR_book', 'm', CONCAT('e', n), CONCAT('API_CALL_book_', n),
                '2025-09-01', '2025-09-01', 600, 0, 600, 600, 0, 0, 600, 100, 6, 'B'
             FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d AS n
                   FROM digits a, digits b, digits c, digits e) s WHERE n < {contracts}"
        ),
        "INSERT INTO monthly_billings (billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor,
            harga_cicilan, terbayar, status, tanggal_tagihan)
         SELECT CONCAT('BIL_', t.nomor_kontrak, '_', k.d), t.nomor_kontrak, 'USR_book', k.d, 'B', 6, 100, 0,
            'UNPAID', DATE '2026-03-01' - INTERVAL 30 * (k.d MOD 3) DAY
         FROM transactions t JOIN digits k ON k.d BETWEEN 1 AND 6"
            .to_owned(),
        // The book starts on the day before 2 March: COB of 2 March charges every installment.
        "INSERT INTO business_dates VALUES ('2026-03-01', '2026-03-01')".to_owned(),
    ];
    let mut conn = pool.acquire().await.expect("connection");
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&mut *conn)
            .await
            .expect("seed");
    }
}

/// Every installment row and the closed dates, reduced to one number.
async fn book_checksum(pool: &sqlx::MySqlPool) -> (i64, String) {
    let rows: (i64, rust_decimal::Decimal) = sqlx::query_as(
        "SELECT COUNT(*), CAST(SUM(CRC32(CONCAT_WS('|', billing_id, terbayar, dibatalkan, denda, denda_terbayar,
            IFNULL(overdue_since, '-'), IFNULL(cob_through, '-'), status))) AS DECIMAL(30,0))
         FROM monthly_billings",
    )
    .fetch_one(pool)
    .await
    .expect("checksum");
    let dates: Option<String> = sqlx::query_scalar(
        "SELECT GROUP_CONCAT(business_date ORDER BY business_date) FROM business_dates",
    )
    .fetch_one(pool)
    .await
    .expect("dates");
    (rows.0, format!("{}:{}", rows.1, dates.unwrap_or_default()))
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_killed_midway_then_rerun_ends_as_one_clean_run(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let url = database_url(&app.pool);
    seed_book(&url, 2000).await;

    let bin = std::env::var_os("XYZCTL_BIN").map_or_else(
        || {
            std::env::current_exe()
                .ok()
                .and_then(|e| {
                    e.parent()
                        .and_then(|d| d.parent())
                        .map(|d| d.join("xyzctl"))
                })
                .expect("target dir")
        },
        std::path::PathBuf::from,
    );
    let mut child = Process::new(&bin)
        .env("MIGRATION_DATABASE_URL", &url)
        .env("COB_CHUNK", "5")
        .args(["close-of-business", "--date", "2026-03-02"])
        .kill_on_drop(true)
        .spawn()
        .expect("xyzctl starts");
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM monthly_billings WHERE cob_through IS NOT NULL",
        )
        .fetch_one(&app.pool)
        .await
        .expect("count");
        if done >= 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().await.expect("SIGKILL");
    let done: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM monthly_billings WHERE cob_through IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert!(done < 12_000, "the run was killed halfway ({done} done)");
    assert_eq!(
        business_date(&app).await,
        "2026-03-01",
        "the date is not closed"
    );

    let out = xyzctl(&app, &["close-of-business", "--date", "2026-03-02"], &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rerun = book_checksum(&app.pool).await;

    // The same book on a second database, closed in one clean run.
    let db = app
        .pool
        .connect_options()
        .get_database()
        .expect("db")
        .to_owned();
    let clean_db = format!("xyz_cob_clean_{:x}", rand_u64());
    let clean_url = url.replace(&db, &clean_db);
    let migrated = xyzctl(&app, &["--database-url", &clean_url, "migrate"], &[]).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    seed_book(&clean_url, 2000).await;
    let clean_pool = sqlx::MySqlPool::connect(&clean_url)
        .await
        .expect("clean db");
    let out = Process::new(&bin)
        .env("MIGRATION_DATABASE_URL", &clean_url)
        .args(["close-of-business", "--date", "2026-03-02"])
        .output()
        .await
        .expect("xyzctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = book_checksum(&clean_pool).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{clean_db}`")))
        .execute(&clean_pool)
        .await
        .expect("drop");
    assert_eq!(rerun, clean);
    assert_eq!(rerun.0, 12_000);
    let charged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM monthly_billings WHERE denda = 1.00 AND cob_through = '2026-03-02'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(charged, 12_000, "every installment charged once");
    app.shutdown().await;
}
