//! SPEC §2: request signatures, the timestamp window, revocation, roles and `X-External-Id`.

use crate::helpers::*;
use serde_json::{Value, json};
use shared::db::keys::revoke_key;
use shared::signature::{sign, string_to_sign};
use std::time::{Duration, Instant};

/// A request built by hand: exactly these headers and this body, nothing signed for us.
/// Returns the parsed response and its raw text.
async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Resp, String) {
    let mut req = app
        .http
        .request(
            method.parse().expect("method"),
            format!("{}{}", app.base, path),
        )
        .body(body.to_vec());
    if !body.is_empty() {
        req = req.header("Content-Type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (
        Resp {
            status,
            body,
            headers,
        },
        text,
    )
}

/// The signature the server computes for a request: lowercase hex HMAC under `secret`.
fn signature_for(
    secret: &str,
    method: &str,
    path: &str,
    ts: &str,
    ext: Option<&str>,
    body: &[u8],
) -> String {
    sign(
        secret.as_bytes(),
        &string_to_sign(method, path, ts, ext, body),
    )
}

/// 401 `INVALID_SIGNATURE`, and the answer does not leak the signature the server expected.
fn assert_bad_signature(r: &Resp, text: &str, expected_signature: &str) {
    assert_eq!(r.status, 401, "{text}");
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{text}");
    assert!(
        r.message().to_lowercase().contains("signature"),
        "the message should say the signature check failed: {text}"
    );
    assert!(
        !text.contains(expected_signature),
        "the response reveals the expected signature: {text}"
    );
    assert!(
        !text
            .to_lowercase()
            .contains(&expected_signature.to_lowercase()),
        "the response reveals the expected signature: {text}"
    );
}

fn assert_401(r: &Resp, text: &str) {
    assert_eq!(r.status, 401, "{text}");
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{text}");
}

fn new_nik() -> String {
    format!("32{:014}", rand_u64() % 100_000_000_000_000)
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count users")
}

/// Sleeps, if needed, so that the caller starts early in a wall-clock second: a request sent
/// now reaches the server within the same second, so a timestamp chosen relative to the
/// returned time is exactly that many seconds from the server clock.
async fn start_of_second() -> i64 {
    let now = chrono::Utc::now();
    if now.timestamp_subsec_millis() > 300 {
        let wait = 1_000 - u64::from(now.timestamp_subsec_millis()) + 20;
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    chrono::Utc::now().timestamp()
}

#[sqlx::test(migrations = "../migrations")]
async fn correctly_signed_get_of_an_existing_users_limits_is_answered_200(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let r = app.get(&app.admin, &format!("/users/{user}/limits")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS", "{}", r.body);
    assert_eq!(r.data()["user_id"], user.as_str(), "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn tampered_body_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let key = &app.admin;
    let ts = now_ts();
    let ext = fresh_id();
    let signed_body = user_body(&new_nik(), ["100000", "300000", "500000", "10000000"]).to_string();
    let sent_body = user_body(&new_nik(), ["100000", "300000", "500000", "10000000"]).to_string();
    let sig = signature_for(
        &key.secret,
        "POST",
        "/create-user",
        &ts,
        Some(&ext),
        signed_body.as_bytes(),
    );
    let expected = signature_for(
        &key.secret,
        "POST",
        "/create-user",
        &ts,
        Some(&ext),
        sent_body.as_bytes(),
    );
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-External-Id", ext.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    let (r, text) = send_raw(&app, "POST", "/create-user", &headers, sent_body.as_bytes()).await;
    assert_bad_signature(&r, &text, &expected);
    assert_eq!(
        user_count(&app).await,
        0,
        "a tampered request must not create a user"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn tampered_path_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let signed_user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let sent_user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let key = &app.merchant;
    let ts = now_ts();
    let signed_path = format!("/users/{signed_user}/limits");
    let sent_path = format!("/users/{sent_user}/limits");
    let sig = signature_for(&key.secret, "GET", &signed_path, &ts, None, b"");
    let expected = signature_for(&key.secret, "GET", &sent_path, &ts, None, b"");
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    let (r, text) = send_raw(&app, "GET", &sent_path, &headers, b"").await;
    assert_bad_signature(&r, &text, &expected);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn tampered_query_string_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let key = &app.merchant;
    let ts = now_ts();
    let signed_path = format!("/users/{user}/limits");
    let sent_path = format!("/users/{user}/limits?a=1");
    let sig = signature_for(&key.secret, "GET", &signed_path, &ts, None, b"");
    let expected = signature_for(&key.secret, "GET", &sent_path, &ts, None, b"");
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    let (r, text) = send_raw(&app, "GET", &sent_path, &headers, b"").await;
    assert_bad_signature(&r, &text, &expected);

    // The same path and query, signed as sent, is accepted.
    let r = app.get(key, &sent_path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn tampered_external_id_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let key = &app.admin;
    let ts = now_ts();
    let body = user_body(&new_nik(), ["100000", "300000", "500000", "10000000"]).to_string();
    let signed_ext = fresh_id();
    let sent_ext = fresh_id();
    let sig = signature_for(
        &key.secret,
        "POST",
        "/create-user",
        &ts,
        Some(&signed_ext),
        body.as_bytes(),
    );
    let expected = signature_for(
        &key.secret,
        "POST",
        "/create-user",
        &ts,
        Some(&sent_ext),
        body.as_bytes(),
    );
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-External-Id", sent_ext.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    let (r, text) = send_raw(&app, "POST", "/create-user", &headers, body.as_bytes()).await;
    assert_bad_signature(&r, &text, &expected);
    assert_eq!(
        user_count(&app).await,
        0,
        "a tampered request must not create a user"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn signature_made_with_a_wrong_secret_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let key = &app.merchant;
    let ts = now_ts();
    let path = format!("/users/{user}/limits");
    let sig = signature_for("not-the-secret", "GET", &path, &ts, None, b"");
    let expected = signature_for(&key.secret, "GET", &path, &ts, None, b"");
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    let (r, text) = send_raw(&app, "GET", &path, &headers, b"").await;
    assert_bad_signature(&r, &text, &expected);

    // Another key's secret is a wrong secret too.
    let sig = signature_for(&app.other_merchant.secret, "GET", &path, &ts, None, b"");
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    let (r, text) = send_raw(&app, "GET", &path, &headers, b"").await;
    assert_bad_signature(&r, &text, &expected);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn uppercase_hex_signature_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let key = &app.merchant;
    let ts = now_ts();
    let path = format!("/users/{user}/limits");
    let expected = signature_for(&key.secret, "GET", &path, &ts, None, b"");
    let upper = expected.to_uppercase();
    assert_ne!(upper, expected, "the signature has hex letters");
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", upper.as_str()),
    ];
    let (r, text) = send_raw(&app, "GET", &path, &headers, b"").await;
    assert_eq!(r.status, 401, "{text}");
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{text}");
    assert!(
        !text.contains(&expected),
        "the response reveals the expected signature: {text}"
    );

    // The lowercase form of the very same signature is accepted.
    let headers = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", expected.as_str()),
    ];
    let (r, text) = send_raw(&app, "GET", &path, &headers, b"").await;
    assert_eq!(r.status, 200, "{text}");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn each_missing_auth_header_is_rejected_with_401_naming_it(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let key = &app.merchant;
    let ts = now_ts();
    let path = format!("/users/{user}/limits");
    let sig = signature_for(&key.secret, "GET", &path, &ts, None, b"");
    let all = [
        ("X-Client-Id", key.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", sig.as_str()),
    ];
    // With all three the request is good.
    let (r, text) = send_raw(&app, "GET", &path, &all, b"").await;
    assert_eq!(r.status, 200, "{text}");
    for (missing, _) in all {
        let headers: Vec<(&str, &str)> =
            all.iter().copied().filter(|(h, _)| *h != missing).collect();
        let (r, text) = send_raw(&app, "GET", &path, &headers, b"").await;
        assert_401(&r, &text);
        assert!(
            r.message().to_lowercase().contains(&missing.to_lowercase()),
            "the message should name {missing}: {text}"
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_timestamp_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits");
    let now = chrono::Utc::now().timestamp();
    for ts in [
        "abc".to_owned(),
        "1.5".to_owned(),
        format!("{now}.0"),
        format!("+{now}"),
        format!("-{now}"),
    ] {
        // Signed with exactly the malformed value, so only the timestamp check can fail.
        let r = app
            .send_at(&app.merchant, "GET", &path, None, None, &[], &ts)
            .await;
        assert_eq!(r.status, 401, "X-Timestamp {ts}: {}", r.body);
        assert_eq!(
            r.action(),
            "INVALID_SIGNATURE",
            "X-Timestamp {ts}: {}",
            r.body
        );
        assert!(
            r.message().to_lowercase().contains("x-timestamp"),
            "the message should name X-Timestamp: {}",
            r.body
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_client_id_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits");
    let stranger = Key {
        client_id: shared::ids::new_client_id(),
        secret: app.merchant.secret.clone(),
        merchant_id: "nobody".into(),
    };
    let r = app.get(&stranger, &path).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{}", r.body);
    assert!(
        r.message().to_lowercase().contains("x-client-id"),
        "the message should name X-Client-Id: {}",
        r.body
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn timestamp_more_than_300_seconds_away_is_rejected_with_401(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits");
    for offset in [-301_i64, 301] {
        let now = start_of_second().await;
        let ts = (now + offset).to_string();
        let r = app
            .send_at(&app.merchant, "GET", &path, None, None, &[], &ts)
            .await;
        assert_eq!(r.status, 401, "offset {offset}: {}", r.body);
        assert_eq!(
            r.action(),
            "INVALID_SIGNATURE",
            "offset {offset}: {}",
            r.body
        );
        assert!(
            r.message().to_lowercase().contains("x-timestamp"),
            "the message should name X-Timestamp: {}",
            r.body
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn timestamp_within_300_seconds_is_accepted(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits");
    for offset in [-299_i64, 299] {
        let now = start_of_second().await;
        let ts = (now + offset).to_string();
        let r = app
            .send_at(&app.merchant, "GET", &path, None, None, &[], &ts)
            .await;
        assert_eq!(r.status, 200, "offset {offset}: {}", r.body);
        assert_eq!(r.action(), "SUCCESS", "offset {offset}: {}", r.body);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn revoked_key_is_rejected_with_401_within_5_seconds(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits");
    let r = app.get(&app.merchant, &path).await;
    assert_eq!(r.status, 200, "the key works before revocation: {}", r.body);

    assert!(
        revoke_key(&app.pool, &app.merchant.client_id)
            .await
            .expect("revoke"),
        "the key was active"
    );
    let revoked_at = Instant::now();
    let deadline = Duration::from_secs(5);
    let r = loop {
        let r = app.get(&app.merchant, &path).await;
        if r.status != 200 {
            break r;
        }
        assert!(
            revoked_at.elapsed() < deadline,
            "the revoked key was still accepted {:?} after revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        revoked_at.elapsed() <= deadline,
        "took {:?}",
        revoked_at.elapsed()
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{}", r.body);

    // It stays revoked, and other keys are unaffected.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = app.get(&app.merchant, &path).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = app.get(&app.other_merchant, &path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.get(&app.admin, &path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn merchant_key_on_admin_only_routes_is_forbidden_with_403(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let create_body = user_body(&new_nik(), ["100000", "300000", "500000", "10000000"]).to_string();
    let status_body = json!({"user_status": "LOCK"}).to_string();
    let payment_body = json!({"user_id": user, "amount": 1000}).to_string();
    let user_path = format!("/users/{user}");
    let status_path = format!("/users/{user}/status");
    let billings_path = format!("/users/{user}/billings");
    let bills_path = format!("/users/{user}/bills");
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("POST", "/create-user", Some(&create_body)),
        ("GET", &user_path, None),
        ("PATCH", &status_path, Some(&status_body)),
        ("GET", &billings_path, None),
        ("GET", &bills_path, None),
        ("POST", "/payment", Some(&payment_body)),
    ];
    for (method, path, body) in cases {
        let ext = (method == "POST").then(fresh_id);
        for key in [&app.merchant, &app.other_merchant] {
            let r = app
                .send(
                    key,
                    method,
                    path,
                    ext.as_deref(),
                    body.map(str::as_bytes),
                    &[],
                )
                .await;
            assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
            assert_eq!(r.action(), "FORBIDDEN", "{method} {path}: {}", r.body);
        }
    }
    // Nothing happened: one user (the fixture), still active.
    assert_eq!(user_count(&app).await, 1);
    let r = app.get(&app.admin, &user_path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["user_status"], "ACTIVE", "{}", r.body);

    // A merchant may read any user's limits.
    let r = app
        .get(&app.merchant, &format!("/users/{user}/limits"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS", "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn signed_post_without_external_id_is_rejected_with_400_invalid_mandatory(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let body = user_body(&new_nik(), ["100000", "300000", "500000", "10000000"]).to_string();
    let r = app
        .send(
            &app.admin,
            "POST",
            "/create-user",
            None,
            Some(body.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.action(), "INVALID_MANDATORY", "{}", r.body);
    assert!(
        r.message().contains("X-External-Id"),
        "the message should name X-External-Id: {}",
        r.body
    );
    assert_eq!(user_count(&app).await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn signed_post_with_malformed_external_id_is_rejected_with_400_invalid_value(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let body = user_body(&new_nik(), ["100000", "300000", "500000", "10000000"]).to_string();
    let too_long = "x".repeat(129);
    for ext in [too_long.as_str(), "a b", ""] {
        // Signed with the same malformed value, so the signature is valid.
        let r = app
            .send(
                &app.admin,
                "POST",
                "/create-user",
                Some(ext),
                Some(body.as_bytes()),
                &[],
            )
            .await;
        assert_eq!(r.status, 400, "X-External-Id {ext:?}: {}", r.body);
        assert_eq!(
            r.action(),
            "INVALID_VALUE",
            "X-External-Id {ext:?}: {}",
            r.body
        );
        assert!(
            r.message().contains("X-External-Id"),
            "the message should name X-External-Id: {}",
            r.body
        );
    }
    assert_eq!(user_count(&app).await, 0);

    // 128 visible characters is the longest allowed.
    let longest = "x".repeat(128);
    let r = app
        .send(
            &app.admin,
            "POST",
            "/create-user",
            Some(&longest),
            Some(body.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn get_with_malformed_external_id_is_rejected_with_400_invalid_value(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits");
    let too_long = "y".repeat(129);
    for ext in ["a b", too_long.as_str()] {
        let r = app
            .send(&app.merchant, "GET", &path, Some(ext), None, &[])
            .await;
        assert_eq!(r.status, 400, "X-External-Id {ext:?}: {}", r.body);
        assert_eq!(
            r.action(),
            "INVALID_VALUE",
            "X-External-Id {ext:?}: {}",
            r.body
        );
        assert!(
            r.message().contains("X-External-Id"),
            "the message should name X-External-Id: {}",
            r.body
        );
    }
    // A well-formed one on a GET is optional, signed, and fine.
    let r = app
        .send(&app.merchant, "GET", &path, Some("READ-1"), None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.shutdown().await;
}
