//! The user endpoints (SPEC §6): `POST /create-user`, `GET /users/{id}`,
//! `PATCH /users/{id}/status`, `GET /users/{id}/limits`. The user object, every validation
//! rule with its code and field, malformed bodies, idempotency (SPEC §7) under concurrency and
//! with Redis forgotten, and the NIK never stored in plaintext (SPEC §8).

use crate::helpers::*;
use base64::Engine;
use chrono::{DateTime, Months, NaiveDate, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::{MySqlPool, Row};
use std::time::Duration;

const NIK: &str = "3201234567890001";
const NIK_MASKED: &str = "3201********0001";
const LIMITS: [&str; 4] = ["100000", "300000", "500000", "10000000"];

/// The `POST /create-user` fields in SPEC §6's order.
const FIELDS: [&str; 12] = [
    "nik",
    "full_name",
    "legal_name",
    "tempat_lahir",
    "tanggal_lahir",
    "gaji",
    "foto_ktp",
    "foto_selfie",
    "limit_one_month",
    "limit_two_month",
    "limit_three_month",
    "limit_sixth",
];

/// Every field of a user, wherever it is returned (SPEC §6).
const USER_FIELDS: [&str; 12] = [
    "user_id",
    "user_status",
    "nik",
    "full_name",
    "legal_name",
    "tempat_lahir",
    "tanggal_lahir",
    "gaji",
    "foto_ktp",
    "foto_selfie",
    "limits",
    "created_at",
];

fn random_nik() -> String {
    format!("32{:014}", rand_u64() % 100_000_000_000_000)
}

/// A valid body as exact JSON text, in SPEC order, with some fields replaced by raw JSON
/// text (so numbers such as `1e30` or `1.000` reach the server exactly as written).
fn body_text(nik: &str, overrides: &[(&str, &str)]) -> String {
    let base = user_body(nik, LIMITS);
    let parts: Vec<String> = FIELDS
        .iter()
        .map(|field| {
            let raw = overrides
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_else(|| base[*field].to_string());
            format!("{}:{raw}", json!(field))
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

async fn create_raw(
    app: &TestApp,
    external_id: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Resp {
    app.send(
        &app.admin,
        "POST",
        "/create-user",
        Some(external_id),
        Some(body),
        headers,
    )
    .await
}

async fn create_json(app: &TestApp, external_id: &str, body: &Value) -> Resp {
    app.post(&app.admin, "/create-user", external_id, body)
        .await
}

async fn patch_status(app: &TestApp, key: &Key, user_id: &str, body: &str) -> Resp {
    let path = format!("/users/{user_id}/status");
    app.send(key, "PATCH", &path, None, Some(body.as_bytes()), &[])
        .await
}

async fn count_rows(pool: &MySqlPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("count rows")
}

/// `None` when `r` is the expected rejection naming `field`, else what is wrong.
fn rejection_problem(r: &Resp, status: u16, action: &str, field: Option<&str>) -> Option<String> {
    let named = field.is_none_or(|f| r.message().contains(f));
    if r.status == status && r.action() == action && named {
        None
    } else {
        Some(format!(
            "expected {status} {action}{}, got {} {}",
            field.map(|f| format!(" naming `{f}`")).unwrap_or_default(),
            r.status,
            r.body
        ))
    }
}

#[track_caller]
fn assert_rejected(r: &Resp, status: u16, action: &str, field: Option<&str>) {
    if let Some(problem) = rejection_problem(r, status, action, field) {
        panic!("{problem}");
    }
}

#[track_caller]
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Today in Asia/Jakarta, where ages are counted.
fn jakarta_today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive()
}

fn years_before(date: NaiveDate, years: u32) -> NaiveDate {
    date.checked_sub_months(Months::new(years * 12))
        .expect("a date")
}

/// Every key of this test's Redis prefix.
async fn redis_keys(app: &TestApp) -> Vec<String> {
    let mut conn = app.redis.clone();
    let pattern = format!("{}:*", app.prefix);
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys;
        }
    }
}

/// Simulates "Redis lost everything" for this test only: deletes its own prefix's keys.
async fn forget_redis(app: &TestApp) {
    let keys = redis_keys(app).await;
    let mut conn = app.redis.clone();
    for key in &keys {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
    // The ingress starts rebuilding its filter of claimed ids at once (ingress::seen): its
    // keys may be back already; every claim and status must not.
    let seen = [
        format!("{}:seen", app.prefix),
        format!("{}:seen:rebuild", app.prefix),
    ];
    let left: Vec<String> = redis_keys(app)
        .await
        .into_iter()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(left.is_empty(), "this test's Redis keys are gone: {left:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn created_user_has_every_field_and_reads_return_the_same(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let body = user_body(NIK, ["100000", "300000.5", "500000.25", "10000000"]);
    let before = Utc::now();
    let r = create_json(&app, &fresh_id(), &body).await;
    let after = Utc::now();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS");
    let api_call_id = r.body["api_call_id"].as_str().expect("api_call_id");
    assert!(api_call_id.starts_with("API_CALL_"), "{api_call_id}");
    assert_eq!(
        r.headers.get("x-api-call-id").and_then(|v| v.to_str().ok()),
        Some(api_call_id)
    );

    let user = r.data().clone();
    let mut keys: Vec<&str> = user
        .as_object()
        .expect("a user object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = USER_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(
        keys, expected,
        "the user has exactly SPEC §6's fields: {user}"
    );

    let user_id = user["user_id"].as_str().expect("user_id is a string");
    assert!(
        user_id.starts_with("USR_") && user_id.len() >= 4 + 26,
        "unguessable: {user_id}"
    );
    assert_eq!(user["user_status"], "ACTIVE");
    assert_eq!(user["nik"], NIK_MASKED);
    assert_eq!(user["full_name"], "Budi Santoso");
    assert_eq!(user["legal_name"], "Budi Santoso");
    assert_eq!(user["tempat_lahir"], "Bandung");
    assert_eq!(user["tanggal_lahir"], "1997-03-02");
    assert_eq!(user["gaji"], "12000000.00");
    assert_eq!(user["foto_ktp"], "https://cdn.example.com/ktp.jpg");
    assert_eq!(user["foto_selfie"], "https://cdn.example.com/selfie.jpg");
    assert_eq!(
        user["limits"],
        json!({
            "1": {"granted": "100000.00", "available": "100000.00"},
            "2": {"granted": "300000.50", "available": "300000.50"},
            "3": {"granted": "500000.25", "available": "500000.25"},
            "6": {"granted": "10000000.00", "available": "10000000.00"},
        })
    );
    let created_at = user["created_at"].as_str().expect("created_at is a string");
    assert!(created_at.ends_with('Z'), "{created_at}");
    let instant = DateTime::parse_from_rfc3339(created_at)
        .expect("created_at is RFC 3339")
        .with_timezone(&Utc);
    assert!(
        instant >= before - chrono::Duration::seconds(1)
            && instant <= after + chrono::Duration::seconds(1),
        "created_at {created_at} is the creation instant ({before} .. {after})"
    );

    let read = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.action(), "SUCCESS");
    assert_eq!(
        read.data(),
        &user,
        "GET /users/{{id}} returns the created user"
    );

    for key in [&app.admin, &app.merchant] {
        let limits = app.get(key, &format!("/users/{user_id}/limits")).await;
        assert_eq!(limits.status, 200, "{}", limits.body);
        assert_eq!(limits.action(), "SUCCESS");
        assert_eq!(
            limits.data(),
            &json!({"user_id": user_id, "limits": user["limits"]})
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_user_is_not_found(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    for path in [
        "/users/USR_00000000000000000000000000000000",
        "/users/USR_00000000000000000000000000000000/limits",
        "/users/not-a-user",
    ] {
        let r = app.get(&app.admin, path).await;
        assert_rejected(&r, 404, "NOT_FOUND", None);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn merchant_keys_may_read_limits_but_not_manage_users(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let user_id = app.create_user(LIMITS).await;

    let r = app
        .post(
            &app.merchant,
            "/create-user",
            &fresh_id(),
            &user_body(&random_nik(), LIMITS),
        )
        .await;
    assert_rejected(&r, 403, "FORBIDDEN", None);
    assert_eq!(
        count_rows(&app.pool, "users").await,
        1,
        "the merchant created no user"
    );

    let r = app.get(&app.merchant, &format!("/users/{user_id}")).await;
    assert_rejected(&r, 403, "FORBIDDEN", None);
    let r = patch_status(&app, &app.merchant, &user_id, r#"{"user_status":"LOCK"}"#).await;
    assert_rejected(&r, 403, "FORBIDDEN", None);
    let r = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(
        r.data()["user_status"],
        "ACTIVE",
        "the merchant's PATCH changed nothing"
    );

    let r = app
        .get(&app.merchant, &format!("/users/{user_id}/limits"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn user_status_is_locked_and_unlocked_and_only_active_or_lock_is_accepted(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let user_id = app.create_user(LIMITS).await;
    let original = app
        .get(&app.admin, &format!("/users/{user_id}"))
        .await
        .data()
        .clone();

    let r = patch_status(&app, &app.admin, &user_id, r#"{"user_status":"LOCK"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS");
    let mut expected = original.clone();
    expected["user_status"] = json!("LOCK");
    assert_eq!(r.data(), &expected, "PATCH answers with the whole user");
    let read = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(read.data(), &expected);

    // Setting the status it already has is fine. (Signed anew: the same signed request again
    // would be a replay, refused with 409; see security::a_replayed_patch_is_refused….)
    let later = (chrono::Utc::now().timestamp() + 1).to_string();
    let r = app
        .send_at(
            &app.admin,
            "PATCH",
            &format!("/users/{user_id}/status"),
            None,
            Some(br#"{"user_status":"LOCK"}"#),
            &[],
            &later,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["user_status"], "LOCK");

    let r = patch_status(&app, &app.admin, &user_id, r#"{"user_status":"ACTIVE"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS");
    assert_eq!(r.data(), &original);
    let read = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(read.data()["user_status"], "ACTIVE");

    let mut failures = Vec::new();
    let cases: &[(&str, u16, &str, &str)] = &[
        (
            r#"{"user_status":"LOCKED"}"#,
            400,
            "INVALID_VALUE",
            "user_status",
        ),
        (
            r#"{"user_status":"lock"}"#,
            400,
            "INVALID_VALUE",
            "user_status",
        ),
        (r#"{"user_status":""}"#, 400, "INVALID_VALUE", "user_status"),
        (r#"{"user_status":1}"#, 400, "INVALID_VALUE", "user_status"),
        (
            r#"{"user_status":true}"#,
            400,
            "INVALID_VALUE",
            "user_status",
        ),
        (
            r#"{"user_status":["LOCK"]}"#,
            400,
            "INVALID_VALUE",
            "user_status",
        ),
        (
            r#"{"user_status":null}"#,
            400,
            "INVALID_MANDATORY",
            "user_status",
        ),
        (r#"{}"#, 400, "INVALID_MANDATORY", "user_status"),
        (
            r#"{"user_status":"LOCK","reason":"x"}"#,
            400,
            "INVALID_PAYLOAD_KEY",
            "reason",
        ),
        (
            r#"{"user_status":"LOCK","user_status":"LOCK"}"#,
            400,
            "INVALID_PAYLOAD_FORMAT",
            "user_status",
        ),
        (r#"["LOCK"]"#, 400, "INVALID_PAYLOAD_FORMAT", ""),
    ];
    for (body, status, action, field) in cases {
        let r = patch_status(&app, &app.admin, &user_id, body).await;
        let field = (!field.is_empty()).then_some(*field);
        if let Some(p) = rejection_problem(&r, *status, action, field) {
            failures.push(format!("{body}: {p}"));
        }
    }
    assert_no_failures(&failures);
    let read = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(
        read.data()["user_status"],
        "ACTIVE",
        "rejected PATCHes changed nothing"
    );

    let r = patch_status(
        &app,
        &app.admin,
        "USR_00000000000000000000000000000000",
        r#"{"user_status":"LOCK"}"#,
    )
    .await;
    assert_rejected(&r, 404, "NOT_FOUND", None);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_fields_are_rejected_naming_the_field(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let mut failures = Vec::new();
    for (extra, value) in [
        ("extra", json!(1)),
        ("NIK", json!(NIK)),
        ("user_id", json!("USR_x")),
        ("user_status", json!("ACTIVE")),
        ("limit_twelve_month", json!(100)),
        ("", json!(null)),
    ] {
        let mut body = user_body(&random_nik(), LIMITS);
        body[extra] = value;
        let r = create_json(&app, &fresh_id(), &body).await;
        if let Some(p) =
            rejection_problem(&r, 400, "INVALID_PAYLOAD_KEY", Some(&format!("`{extra}`")))
        {
            failures.push(format!("unknown field {extra:?}: {p}"));
        }
    }
    // Unknown keys are checked before missing ones (SPEC §3).
    let mut body = user_body(&random_nik(), LIMITS);
    body.as_object_mut().expect("object").remove("gaji");
    body["bonus"] = json!(1);
    let r = create_json(&app, &fresh_id(), &body).await;
    if let Some(p) = rejection_problem(&r, 400, "INVALID_PAYLOAD_KEY", Some("bonus")) {
        failures.push(format!("unknown and missing: {p}"));
    }
    assert_no_failures(&failures);
    assert_eq!(count_rows(&app.pool, "users").await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn each_missing_or_null_field_is_mandatory_and_named(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let mut failures = Vec::new();
    for field in FIELDS {
        let mut body = user_body(&random_nik(), LIMITS);
        body.as_object_mut().expect("object").remove(field);
        let r = create_json(&app, &fresh_id(), &body).await;
        if let Some(p) = rejection_problem(&r, 400, "INVALID_MANDATORY", Some(field)) {
            failures.push(format!("missing {field}: {p}"));
        }

        let text = body_text(&random_nik(), &[(field, "null")]);
        let r = create_raw(&app, &fresh_id(), text.as_bytes(), &[]).await;
        if let Some(p) = rejection_problem(&r, 400, "INVALID_MANDATORY", Some(field)) {
            failures.push(format!("null {field}: {p}"));
        }
    }
    let r = create_raw(&app, &fresh_id(), b"{}", &[]).await;
    if let Some(p) = rejection_problem(&r, 400, "INVALID_MANDATORY", Some("nik")) {
        failures.push(format!("empty object names the first field: {p}"));
    }
    assert_no_failures(&failures);
    assert_eq!(count_rows(&app.pool, "users").await, 0);
    app.shutdown().await;
}

/// Sends each (field, raw JSON) case with an otherwise valid body and expects
/// `400 INVALID_VALUE` naming the field.
async fn expect_invalid_values(app: &TestApp, cases: &[(&str, String)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (field, raw) in cases {
        let text = body_text(&random_nik(), &[(field, raw)]);
        let r = create_raw(app, &fresh_id(), text.as_bytes(), &[]).await;
        if let Some(p) = rejection_problem(&r, 400, "INVALID_VALUE", Some(field)) {
            let shown: String = raw.chars().take(60).collect();
            failures.push(format!("{field} = {shown}: {p}"));
        }
    }
    failures
}

/// Sends each (field, raw JSON, expected echo) case and expects `201` with the field echoed
/// as expected, both in the answer and in `GET /users/{id}`.
async fn expect_accepted(app: &TestApp, cases: &[(&str, String, Value)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (field, raw, echo) in cases {
        let text = body_text(&random_nik(), &[(field, raw)]);
        let r = create_raw(app, &fresh_id(), text.as_bytes(), &[]).await;
        let shown: String = raw.chars().take(60).collect();
        if r.status != 201 {
            failures.push(format!(
                "{field} = {shown}: expected 201, got {} {}",
                r.status, r.body
            ));
            continue;
        }
        if &r.data()[*field] != echo {
            failures.push(format!(
                "{field} = {shown}: answered {} instead of {echo}",
                r.data()[*field]
            ));
        }
        let user_id = r.data()["user_id"].as_str().unwrap_or_default();
        let read = app.get(&app.admin, &format!("/users/{user_id}")).await;
        if &read.data()[*field] != echo {
            failures.push(format!(
                "{field} = {shown}: read back {} instead of {echo}",
                read.data()[*field]
            ));
        }
    }
    failures
}

fn quoted(s: &str) -> String {
    json!(s).to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn nik_must_be_a_string_of_16_digits(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let cases: Vec<(&str, String)> = [
        quoted("320123456789000"),
        quoted("32012345678900012"),
        quoted("320123456789000A"),
        quoted("ABCDEFGHIJKLMNOP"),
        quoted("3201 23456789000"),
        quoted("3201-2345-6789-00"),
        quoted("+320123456789000"),
        quoted("３２０１２３４５６７８９０００１"),
        quoted(""),
        "3201234567890001".to_owned(),
        "3.201234567890001e15".to_owned(),
        "true".to_owned(),
        r#"["3201234567890001"]"#.to_owned(),
        r#"{"nik":"3201234567890001"}"#.to_owned(),
    ]
    .into_iter()
    .map(|raw| ("nik", raw))
    .collect();
    let failures = expect_invalid_values(&app, &cases).await;
    assert_no_failures(&failures);
    assert_eq!(count_rows(&app.pool, "users").await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn names_must_be_1_to_100_characters_and_may_be_any_script(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let mut rejected = Vec::new();
    for field in ["full_name", "legal_name", "tempat_lahir"] {
        for bad in [
            String::new(),
            "a".repeat(101),
            "山".repeat(101),
            "😀".repeat(101),
        ] {
            rejected.push((field, quoted(&bad)));
        }
        rejected.push((field, "42".to_owned()));
        rejected.push((field, r#"["Budi"]"#.to_owned()));
    }
    let mut failures = expect_invalid_values(&app, &rejected).await;

    let mut accepted = Vec::new();
    for field in ["full_name", "legal_name", "tempat_lahir"] {
        for good in [
            "Budi Śantoso 山田".to_owned(),
            "B".to_owned(),
            "a".repeat(100),
            "山".repeat(100),
            "😀".repeat(100),
            format!("Ñoño {}", "é".repeat(95)),
        ] {
            accepted.push((field, quoted(&good), json!(good)));
        }
    }
    failures.extend(expect_accepted(&app, &accepted).await);
    assert_no_failures(&failures);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn tanggal_lahir_must_be_a_real_date_at_least_17_years_ago(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let today = jakarta_today();
    let sixteen = years_before(today, 16);
    let day_before_17th_birthday = years_before(today, 17).succ_opt().expect("a date");
    let rejected: Vec<(&str, String)> = [
        quoted("1997-02-30"),
        quoted("1997-02-29"),
        quoted("1997-13-01"),
        quoted("1997-00-10"),
        quoted("1997-04-31"),
        quoted("1997-3-2"),
        quoted("02-03-1997"),
        quoted("1997/03/02"),
        quoted("19970302"),
        quoted("1997-03-02T00:00:00Z"),
        quoted(" 1997-03-02"),
        quoted(""),
        "19970302".to_owned(),
        quoted(&today.to_string()),
        quoted(&sixteen.to_string()),
        quoted(&day_before_17th_birthday.to_string()),
        quoted(&(today + chrono::Days::new(365)).to_string()),
    ]
    .into_iter()
    .map(|raw| ("tanggal_lahir", raw))
    .collect();
    let mut failures = expect_invalid_values(&app, &rejected).await;

    let exactly_17 = years_before(jakarta_today(), 17).to_string();
    let accepted: Vec<(&str, String, Value)> = [exactly_17.as_str(), "2000-02-29", "1960-12-31"]
        .into_iter()
        .map(|d| ("tanggal_lahir", quoted(d), json!(d)))
        .collect();
    failures.extend(expect_accepted(&app, &accepted).await);
    assert_no_failures(&failures);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn gaji_must_be_non_negative_money_with_at_most_2_decimals(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let rejected: Vec<(&str, String)> = [
        "-1",
        "-0.01",
        "\"-1\"",
        "\"12,5\"",
        "1.001",
        "\"1.001\"",
        "0.001",
        "1e-3",
        "1e30",
        "1E30",
        "1000000000000000000000000000000",
        "1000000000000000000",
        "1e18",
        "\"1000000000000000000\"",
        "true",
        "false",
        "\"abc\"",
        "\"\"",
        "\"1e3\"",
        "\" 1200\"",
        "\"1200.\"",
        "[1200]",
        "{\"amount\":1200}",
    ]
    .into_iter()
    .map(|raw| ("gaji", raw.to_owned()))
    .collect();
    let mut failures = expect_invalid_values(&app, &rejected).await;

    let accepted: Vec<(&str, String, Value)> = [
        ("1.000", "1.00"),
        ("\"1200.50\"", "1200.50"),
        ("1.2e3", "1200.00"),
        ("1.2E+3", "1200.00"),
        ("120000e-2", "1200.00"),
        ("0", "0.00"),
        ("\"0\"", "0.00"),
        ("12000000.10", "12000000.10"),
        ("999999999999999999.99", "999999999999999999.99"),
    ]
    .into_iter()
    .map(|(raw, echo)| ("gaji", raw.to_owned(), json!(echo)))
    .chain([
        // Long but exact notations are read by value, not rounded through f64.
        (
            "gaji",
            format!("1{}e-1000", "0".repeat(1000)),
            json!("1.00"),
        ),
        (
            "gaji",
            format!("0.{}1e1001", "0".repeat(1000)),
            json!("1.00"),
        ),
        (
            "gaji",
            "9007199254740993".to_owned(),
            json!("9007199254740993.00"),
        ),
        (
            "gaji",
            "0.1000000000000000000000000000".to_owned(),
            json!("0.10"),
        ),
    ])
    .collect();
    failures.extend(expect_accepted(&app, &accepted).await);
    assert_no_failures(&failures);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn photos_must_be_https_urls_of_at_most_2048_characters(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let prefix = "https://cdn.example.com/";
    let url_of_len = |n: usize| format!("{prefix}{}", "a".repeat(n - prefix.len()));
    let mut rejected = Vec::new();
    for field in ["foto_ktp", "foto_selfie"] {
        for bad in [
            "http://cdn.example.com/ktp.jpg".to_owned(),
            "cdn.example.com/ktp.jpg".to_owned(),
            "not a url".to_owned(),
            "https://".to_owned(),
            "https:///ktp.jpg".to_owned(),
            "ftp://cdn.example.com/ktp.jpg".to_owned(),
            "file:///etc/passwd".to_owned(),
            "javascript:alert(1)".to_owned(),
            "https://cdn.example.com/k tp.jpg".to_owned(),
            String::new(),
            url_of_len(2049),
        ] {
            rejected.push((field, quoted(&bad)));
        }
        rejected.push((field, "42".to_owned()));
    }
    let mut failures = expect_invalid_values(&app, &rejected).await;

    let longest = url_of_len(2048);
    let accepted = vec![
        ("foto_ktp", quoted(&longest), json!(longest)),
        ("foto_selfie", quoted(&longest), json!(longest)),
        (
            "foto_ktp",
            quoted("https://cdn.example.com/ktp.jpg?v=2#x"),
            json!("https://cdn.example.com/ktp.jpg?v=2#x"),
        ),
    ];
    failures.extend(expect_accepted(&app, &accepted).await);
    assert_no_failures(&failures);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn limits_must_be_non_negative_money(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let limit_fields = [
        "limit_one_month",
        "limit_two_month",
        "limit_three_month",
        "limit_sixth",
    ];
    let mut rejected = Vec::new();
    for field in limit_fields {
        for bad in [
            "-1", "-0.01", "\"-100\"", "0.001", "1e30", "\"abc\"", "true", "[100]",
        ] {
            rejected.push((field, bad.to_owned()));
        }
    }
    let mut failures = expect_invalid_values(&app, &rejected).await;

    // Zero is a valid limit, and any notation is read exactly.
    let text = body_text(
        &random_nik(),
        &[
            ("limit_one_month", "0"),
            ("limit_two_month", "\"250000.5\""),
            ("limit_three_month", "5e5"),
            ("limit_sixth", "999999999999999999.99"),
        ],
    );
    let r = create_raw(&app, &fresh_id(), text.as_bytes(), &[]).await;
    if r.status == 201 {
        let expected = json!({
            "1": {"granted": "0.00", "available": "0.00"},
            "2": {"granted": "250000.50", "available": "250000.50"},
            "3": {"granted": "500000.00", "available": "500000.00"},
            "6": {"granted": "999999999999999999.99", "available": "999999999999999999.99"},
        });
        if r.data()["limits"] != expected {
            failures.push(format!("limits answered as {}", r.data()["limits"]));
        }
    } else {
        failures.push(format!(
            "valid limits: expected 201, got {} {}",
            r.status, r.body
        ));
    }
    assert_no_failures(&failures);
    app.shutdown().await;
}

type Headers = &'static [(&'static str, &'static str)];

const JSON: Headers = &[("Content-Type", "application/json")];
const TEXT: Headers = &[("Content-Type", "text/plain")];
const FORM: Headers = &[("Content-Type", "application/x-www-form-urlencoded")];

/// A malformed request and the rejection it must get.
struct Malformed {
    name: &'static str,
    body: Vec<u8>,
    headers: Headers,
    status: u16,
    action: &'static str,
    field: Option<&'static str>,
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_bodies_get_a_4xx_and_create_nothing(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let valid = body_text(NIK, &[]);
    let duplicate_key = valid.replacen('{', r#"{"nik":"3201234567890002","#, 1);
    let too_large = format!(r#"{{"full_name":"{}"}}"#, "a".repeat(70 * 1024));
    // Exactly at the limit: not too large, so the body checks answer.
    let filler = 65_536 - body_text(NIK, &[("full_name", "\"\"")]).len();
    let at_limit = body_text(NIK, &[("full_name", &quoted(&"a".repeat(filler)))]);
    assert_eq!(at_limit.len(), 65_536);
    let one_over = body_text(NIK, &[("full_name", &quoted(&"a".repeat(filler + 1)))]);
    let deep = body_text(
        NIK,
        &[(
            "nik",
            &format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)),
        )],
    );
    let mut invalid_utf8 = br#"{"nik":""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe");
    invalid_utf8.extend_from_slice(br#""}"#);

    let case = |name, body: Vec<u8>, headers, status, action, field| Malformed {
        name,
        body,
        headers,
        status,
        action,
        field,
    };
    let format = "INVALID_PAYLOAD_FORMAT";
    let cases = vec![
        case(
            "not JSON",
            b"nik=3201234567890001".to_vec(),
            JSON,
            400,
            format,
            None,
        ),
        case(
            "truncated JSON",
            valid.as_bytes()[..40].to_vec(),
            JSON,
            400,
            format,
            None,
        ),
        case(
            "single quotes",
            b"{'nik':'3201234567890001'}".to_vec(),
            JSON,
            400,
            format,
            None,
        ),
        case(
            "trailing comma",
            valid.replacen('}', ",}", 1).into_bytes(),
            JSON,
            400,
            format,
            None,
        ),
        case("empty array", b"[]".to_vec(), JSON, 400, format, None),
        case(
            "array of the object",
            format!("[{valid}]").into_bytes(),
            JSON,
            400,
            format,
            None,
        ),
        case(
            "a string",
            b"\"3201234567890001\"".to_vec(),
            JSON,
            400,
            format,
            None,
        ),
        case("a number", b"42".to_vec(), JSON, 400, format, None),
        case("null", b"null".to_vec(), JSON, 400, format, None),
        case("empty body", Vec::new(), JSON, 400, format, None),
        case("blank body", b"  \n ".to_vec(), JSON, 400, format, None),
        case(
            "two objects",
            format!("{valid} {{}}").into_bytes(),
            JSON,
            400,
            format,
            None,
        ),
        case(
            "duplicate key",
            duplicate_key.into_bytes(),
            JSON,
            400,
            format,
            Some("nik"),
        ),
        case("invalid UTF-8", invalid_utf8, JSON, 400, format, None),
        case(
            "text/plain",
            valid.clone().into_bytes(),
            TEXT,
            400,
            format,
            Some("Content-Type"),
        ),
        case(
            "form content type",
            valid.clone().into_bytes(),
            FORM,
            400,
            format,
            Some("Content-Type"),
        ),
        case(
            "70 KB",
            too_large.into_bytes(),
            JSON,
            413,
            "PAYLOAD_TOO_LARGE",
            None,
        ),
        case(
            "65,537 bytes",
            one_over.into_bytes(),
            JSON,
            413,
            "PAYLOAD_TOO_LARGE",
            None,
        ),
        case(
            "65,536 bytes",
            at_limit.into_bytes(),
            JSON,
            400,
            "INVALID_VALUE",
            Some("full_name"),
        ),
        case(
            "30,000 nested arrays",
            deep.into_bytes(),
            JSON,
            400,
            "INVALID_VALUE",
            Some("nik"),
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let r = create_raw(&app, &fresh_id(), &c.body, c.headers).await;
        if r.status >= 500 {
            failures.push(format!("{}: a 5xx: {} {}", c.name, r.status, r.body));
        } else if let Some(p) = rejection_problem(&r, c.status, c.action, c.field) {
            failures.push(format!("{}: {p}", c.name));
        }
    }
    assert_no_failures(&failures);
    assert_eq!(
        count_rows(&app.pool, "users").await,
        0,
        "no user was created"
    );
    assert_eq!(count_rows(&app.pool, "user_limit_balances").await, 0);
    assert_eq!(
        count_rows(&app.pool, "idempotency_keys").await,
        0,
        "no external id was claimed"
    );

    // The app is still healthy and a valid body still works.
    let r = create_raw(&app, &fresh_id(), valid.as_bytes(), &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_request_that_fails_validation_claims_nothing_and_the_fixed_body_succeeds(
    pool: MySqlPool,
) {
    let app = spawn_app(pool).await;
    let external_id = fresh_id();
    let valid = body_text(NIK, &[]);
    let failing: Vec<(Vec<u8>, Headers, u16)> = vec![
        (
            body_text(NIK, &[("gaji", "\"abc\"")]).into_bytes(),
            JSON,
            400,
        ),
        (
            body_text(NIK, &[("nik", "\"320123456789000\"")]).into_bytes(),
            JSON,
            400,
        ),
        (
            body_text(NIK, &[("foto_ktp", "null")]).into_bytes(),
            JSON,
            400,
        ),
        (
            valid.replacen('{', r#"{"extra":1,"#, 1).into_bytes(),
            JSON,
            400,
        ),
        (valid.as_bytes()[..30].to_vec(), JSON, 400),
        (valid.clone().into_bytes(), TEXT, 400),
        (
            format!(r#"{{"full_name":"{}"}}"#, "a".repeat(70 * 1024)).into_bytes(),
            JSON,
            413,
        ),
    ];
    for (body, headers, status) in &failing {
        let r = create_raw(&app, &external_id, body, headers).await;
        assert_eq!(r.status, *status, "{}", r.body);
    }
    let claims: Vec<String> = redis_keys(&app)
        .await
        .into_iter()
        .filter(|k| k.contains(":idem:"))
        .collect();
    assert!(
        claims.is_empty(),
        "rejected bodies claimed the external id in Redis: {claims:?}"
    );
    assert_eq!(count_rows(&app.pool, "idempotency_keys").await, 0);

    let r = create_raw(&app, &external_id, valid.as_bytes(), &[]).await;
    assert_eq!(
        r.status, 201,
        "the corrected body with the same external id: {}",
        r.body
    );
    assert_eq!(r.action(), "SUCCESS");
    let first = r.body["api_call_id"].clone();

    // Now it is claimed.
    let r = create_raw(&app, &external_id, valid.as_bytes(), &[]).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], first);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn same_external_id_twice_is_a_conflict_naming_the_original_call(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let external_id = fresh_id();
    let body = user_body(NIK, LIMITS);
    let r = create_json(&app, &external_id, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let original = r.body["api_call_id"]
        .as_str()
        .expect("api_call_id")
        .to_owned();

    let again = create_json(&app, &external_id, &body).await;
    assert_rejected(&again, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(again.data()["original_api_call_id"], original.as_str());
    assert_eq!(again.data()["same_payload"], true, "{}", again.body);
    assert_ne!(
        again.body["api_call_id"],
        original.as_str(),
        "the retry has its own api call id"
    );

    let other = user_body(&random_nik(), LIMITS);
    let different = create_json(&app, &external_id, &other).await;
    assert_rejected(&different, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(different.data()["original_api_call_id"], original.as_str());
    assert_eq!(
        different.data()["same_payload"],
        false,
        "{}",
        different.body
    );

    // Same JSON, different bytes: not the same payload (SPEC: byte-identical).
    let reformatted = serde_json::to_string_pretty(&body).expect("json");
    let r = create_raw(&app, &external_id, reformatted.as_bytes(), &[]).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["same_payload"], false, "{}", r.body);

    assert_eq!(count_rows(&app.pool, "users").await, 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn external_ids_are_shared_by_every_admin_key_of_the_platform(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let external_id = fresh_id();
    let r = create_json(&app, &external_id, &user_body(NIK, LIMITS)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let original = r.body["api_call_id"].clone();

    // Another admin key (any name: admin keys belong to the platform).
    let second = new_key(&app.pool, "ops", shared::db::keys::Role::Admin).await;
    assert_eq!(second.merchant_id, app.admin.merchant_id);
    let mut r = app
        .post(
            &second,
            "/create-user",
            &external_id,
            &user_body(&random_nik(), LIMITS),
        )
        .await;
    for _ in 0..50 {
        if r.status != 401 {
            break;
        }
        // The ingress picks up new keys within its refresh interval.
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = app
            .post(
                &second,
                "/create-user",
                &external_id,
                &user_body(&random_nik(), LIMITS),
            )
            .await;
    }
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], original);
    assert_eq!(count_rows(&app.pool, "users").await, 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn duplicate_nik_is_rejected_and_keeps_its_external_id(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let r = create_json(&app, &fresh_id(), &user_body(NIK, LIMITS)).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let external_id = fresh_id();
    let mut body = user_body(NIK, LIMITS);
    body["full_name"] = json!("Someone Else");
    let dup = create_json(&app, &external_id, &body).await;
    assert_rejected(&dup, 409, "DUPLICATE_NIK", None);
    let dup_call = dup.body["api_call_id"]
        .as_str()
        .expect("api_call_id")
        .to_owned();

    // The same NIK written with a JSON escape is the same NIK.
    let escaped = body_text(NIK, &[("nik", r#""\u0033201234567890001""#)]);
    let r = create_raw(&app, &fresh_id(), escaped.as_bytes(), &[]).await;
    assert_rejected(&r, 409, "DUPLICATE_NIK", None);

    // A business rejection keeps the claim (SPEC §3), in Redis and in MySQL.
    let r = create_json(&app, &external_id, &user_body(&random_nik(), LIMITS)).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], dup_call.as_str());
    forget_redis(&app).await;
    let r = create_json(&app, &external_id, &user_body(&random_nik(), LIMITS)).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], dup_call.as_str());

    assert_eq!(count_rows(&app.pool, "users").await, 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn ten_concurrent_creations_with_one_nik_create_exactly_one_user(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let ids: Vec<String> = (0..10).map(|_| fresh_id()).collect();
    let bodies: Vec<Value> = (0..10)
        .map(|i| {
            let mut b = user_body(NIK, LIMITS);
            b["full_name"] = json!(format!("Budi {i}"));
            b
        })
        .collect();
    let answers = join_all(
        ids.iter()
            .zip(&bodies)
            .map(|(id, b)| create_json(&app, id, b)),
    )
    .await;

    let created: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
    let duplicates = answers
        .iter()
        .filter(|r| r.status == 409 && r.action() == "DUPLICATE_NIK")
        .count();
    let summary: Vec<String> = answers
        .iter()
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    assert_eq!(created.len(), 1, "exactly one 201:\n{}", summary.join("\n"));
    assert_eq!(
        duplicates,
        9,
        "nine 409 DUPLICATE_NIK:\n{}",
        summary.join("\n")
    );
    assert_eq!(count_rows(&app.pool, "users").await, 1);
    assert_eq!(count_rows(&app.pool, "user_limit_balances").await, 1);

    let user_id = created[0].data()["user_id"].as_str().expect("user_id");
    let read = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(read.data(), created[0].data());

    // Every loser's external id stays used.
    for (id, r) in ids.iter().zip(&answers).filter(|(_, r)| r.status == 409) {
        let retry = create_json(&app, id, &user_body(&random_nik(), LIMITS)).await;
        assert_rejected(&retry, 409, "CONFLICT_EXTERNAL_ID", None);
        assert_eq!(retry.data()["original_api_call_id"], r.body["api_call_id"]);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn ten_concurrent_creations_with_one_external_id_create_exactly_one_user(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let external_id = fresh_id();
    let bodies: Vec<Value> = (0..10).map(|_| user_body(&random_nik(), LIMITS)).collect();
    let answers = join_all(bodies.iter().map(|b| create_json(&app, &external_id, b))).await;

    let summary: Vec<String> = answers
        .iter()
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    let created: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "exactly one 201:\n{}", summary.join("\n"));
    let winner = &created[0].body["api_call_id"];
    let conflicts: Vec<&Resp> = answers
        .iter()
        .filter(|r| r.status == 409 && r.action() == "CONFLICT_EXTERNAL_ID")
        .collect();
    assert_eq!(
        conflicts.len(),
        9,
        "nine 409 CONFLICT_EXTERNAL_ID:\n{}",
        summary.join("\n")
    );
    for r in conflicts {
        assert_eq!(&r.data()["original_api_call_id"], winner, "{}", r.body);
        assert_eq!(r.data()["same_payload"], false, "{}", r.body);
    }
    assert_eq!(count_rows(&app.pool, "users").await, 1);
    assert_eq!(count_rows(&app.pool, "user_limit_balances").await, 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_creations_of_different_users_all_succeed(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let ids: Vec<String> = (0..20).map(|_| fresh_id()).collect();
    let bodies: Vec<Value> = (0..20).map(|_| user_body(&random_nik(), LIMITS)).collect();
    let answers = join_all(
        ids.iter()
            .zip(&bodies)
            .map(|(id, b)| create_json(&app, id, b)),
    )
    .await;
    let problems: Vec<String> = answers
        .iter()
        .filter(|r| r.status != 201)
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    assert!(
        problems.is_empty(),
        "every creation succeeds:\n{}",
        problems.join("\n")
    );
    let mut user_ids: Vec<&str> = answers
        .iter()
        .filter_map(|r| r.data()["user_id"].as_str())
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    assert_eq!(user_ids.len(), 20, "twenty distinct user ids");
    assert_eq!(count_rows(&app.pool, "users").await, 20);
    assert_eq!(count_rows(&app.pool, "user_limit_balances").await, 20);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn external_id_is_still_a_conflict_after_redis_forgets(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let external_id = fresh_id();
    let body = user_body(NIK, LIMITS);
    let r = create_json(&app, &external_id, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let original = r.body["api_call_id"]
        .as_str()
        .expect("api_call_id")
        .to_owned();

    forget_redis(&app).await;
    let r = create_json(&app, &external_id, &body).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], original.as_str());
    assert_eq!(r.data()["same_payload"], true, "{}", r.body);

    // Twice in a row (Redis was refilled from MySQL), and with another body.
    let r = create_json(&app, &external_id, &body).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], original.as_str());
    assert_eq!(r.data()["same_payload"], true, "{}", r.body);
    forget_redis(&app).await;
    let r = create_json(&app, &external_id, &user_body(&random_nik(), LIMITS)).await;
    assert_rejected(&r, 409, "CONFLICT_EXTERNAL_ID", None);
    assert_eq!(r.data()["original_api_call_id"], original.as_str());
    assert_eq!(r.data()["same_payload"], false, "{}", r.body);

    assert_eq!(count_rows(&app.pool, "users").await, 1);
    app.shutdown().await;
}

/// Every cell of every table of the test database as raw bytes (each column cast to BINARY,
/// so numbers and dates are their text and binary columns their bytes), by table.
async fn every_cell(pool: &MySqlPool) -> Vec<(String, String, Vec<u8>)> {
    let tables: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS BINARY) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    )
    .fetch_all(pool)
    .await
    .expect("tables");
    assert!(tables.len() >= 8, "the schema's tables are listed");
    let mut cells = Vec::new();
    for table in tables {
        let table = String::from_utf8(table).expect("table name");
        let columns: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT CAST(COLUMN_NAME AS BINARY) FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .expect("columns");
        let columns: Vec<String> = columns
            .into_iter()
            .map(|c| String::from_utf8(c).expect("column name"))
            .collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST(`{c}` AS BINARY)"))
            .collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM `{table}`",
            select.join(", ")
        )))
        .fetch_all(pool)
        .await
        .expect("rows");
        for row in rows {
            for (i, column) in columns.iter().enumerate() {
                let value: Option<Vec<u8>> = row.try_get(i).expect("a cell as bytes");
                if let Some(v) = value {
                    cells.push((table.clone(), column.clone(), v));
                }
            }
        }
    }
    cells
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[sqlx::test(migrations = "../migrations")]
async fn nik_is_stored_nowhere_in_plaintext(pool: MySqlPool) {
    let app = spawn_app(pool).await;
    let mut audited = 0;
    let body = user_body(NIK, LIMITS);
    let external_id = fresh_id();
    let r = create_json(&app, &external_id, &body).await;
    audited += 1;
    assert_eq!(r.status, 201, "{}", r.body);
    let user_id = r.data()["user_id"].as_str().expect("user_id").to_owned();

    // Every way the NIK can reach the server: a conflict, a duplicate, a rejected body, a
    // number, a duplicate key, a malformed body, and the reads.
    assert_eq!(create_json(&app, &external_id, &body).await.status, 409);
    assert_eq!(create_json(&app, &fresh_id(), &body).await.status, 409);
    let mut unknown = body.clone();
    unknown["extra"] = json!(1);
    assert_eq!(create_json(&app, &fresh_id(), &unknown).await.status, 400);
    let as_number = body_text(NIK, &[("nik", NIK)]);
    assert_eq!(
        create_raw(&app, &fresh_id(), as_number.as_bytes(), &[])
            .await
            .status,
        400
    );
    let dup_key = body_text(NIK, &[]).replacen('{', r#"{"nik":"1","#, 1);
    assert_eq!(
        create_raw(&app, &fresh_id(), dup_key.as_bytes(), &[])
            .await
            .status,
        400
    );
    let truncated = &body_text(NIK, &[]).into_bytes()[..30];
    assert_eq!(
        create_raw(&app, &fresh_id(), truncated, &[]).await.status,
        400
    );
    assert_eq!(
        app.get(&app.admin, &format!("/users/{user_id}"))
            .await
            .status,
        200
    );
    let r = patch_status(&app, &app.admin, &user_id, r#"{"user_status":"LOCK"}"#).await;
    assert_eq!(r.status, 200);
    audited += 8;

    // The audit writer is asynchronous: wait until every request has its row.
    let mut logged = 0;
    for _ in 0..50 {
        logged = count_rows(&app.pool, "api_call_logs").await;
        if logged >= audited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged >= audited, "{logged} of {audited} requests audited");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("text", NIK.as_bytes().to_vec()),
        ("hex", hex::encode(NIK).into_bytes()),
        ("HEX", hex::encode_upper(NIK).into_bytes()),
        (
            "base64",
            base64::engine::general_purpose::STANDARD
                .encode(NIK)
                .into_bytes(),
        ),
    ];
    let cells = every_cell(&app.pool).await;
    assert!(
        cells
            .iter()
            .any(|(t, c, v)| t == "users" && c == "nik_masked" && v == NIK_MASKED.as_bytes()),
        "the scan sees the user's row"
    );
    let mut found = Vec::new();
    for (table, column, value) in &cells {
        for (form, needle) in &needles {
            if contains(value, needle) {
                found.push(format!(
                    "{table}.{column} holds the NIK as {form}: {}",
                    String::from_utf8_lossy(value)
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the NIK is stored in plaintext:\n{}",
        found.join("\n")
    );

    // The audit log masks photo URLs too (SPEC §3).
    let photos: Vec<String> = cells
        .iter()
        .filter(|(t, _, v)| {
            t == "api_call_logs"
                && (contains(v, b"cdn.example.com/ktp") || contains(v, b"cdn.example.com/selfie"))
        })
        .map(|(_, c, v)| format!("api_call_logs.{c}: {}", String::from_utf8_lossy(v)))
        .collect();
    assert!(
        photos.is_empty(),
        "photo URLs in the audit log:\n{}",
        photos.join("\n")
    );
    app.shutdown().await;
}
