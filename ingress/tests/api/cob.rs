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

async fn xyzctl(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
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
async fn close(app: &TestApp, date: NaiveDate, percent: &str) -> Value {
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

fn due_date(contract: &Value, k: usize) -> NaiveDate {
    contract["tagihan"][k]["tanggal_tagihan"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .expect("tanggal_tagihan")
}

fn days(n: i64) -> chrono::Duration {
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
