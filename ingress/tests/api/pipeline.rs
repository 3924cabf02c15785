//! SPEC §3: routing, the order of checks, the envelope and api call id, the audit trail and
//! the health endpoints.

use crate::helpers::*;
use serde_json::Value;
use shared::signature::{sign, string_to_sign};
use std::time::Duration;

/// One `api_call_logs` row, every column but the timestamps.
#[derive(Debug, sqlx::FromRow)]
struct AuditLogRow {
    api_call_id: String,
    method: String,
    path: String,
    merchant_id: Option<String>,
    client_id: Option<String>,
    external_id: Option<String>,
    http_status: u16,
    message_action: String,
    request_body: Option<String>,
    response_body: Option<String>,
    client_ip: Option<String>,
}

macro_rules! select_audit {
    ($rest:literal) => {
        concat!(
            "SELECT api_call_id, method, path, merchant_id, client_id, external_id, http_status, ",
            "message_action, request_body, response_body, client_ip FROM api_call_logs",
            $rest
        )
    };
}

async fn find_audit_row(pool: &sqlx::MySqlPool, api_call_id: &str) -> Option<AuditLogRow> {
    sqlx::query_as::<_, AuditLogRow>(select_audit!(" WHERE api_call_id = ?"))
        .bind(api_call_id)
        .fetch_optional(pool)
        .await
        .expect("query api_call_logs")
}

/// The audit writer batches rows; polls for up to 3 s.
async fn audit_row(pool: &sqlx::MySqlPool, api_call_id: &str) -> AuditLogRow {
    for _ in 0..60 {
        if let Some(row) = find_audit_row(pool, api_call_id).await {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no api_call_logs row for {api_call_id} after 3 s");
}

async fn all_audit_rows(pool: &sqlx::MySqlPool) -> Vec<AuditLogRow> {
    sqlx::query_as::<_, AuditLogRow>(select_audit!(""))
        .fetch_all(pool)
        .await
        .expect("query api_call_logs")
}

/// A request built by hand, sent as is.
async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut req = app
        .http
        .request(
            method.parse().expect("method"),
            format!("{}{}", app.base, path),
        )
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    TestApp::read(req.send().await.expect("request sent")).await
}

fn header_api_call_id(r: &Resp) -> String {
    r.headers
        .get("x-api-call-id")
        .expect("X-Api-Call-Id header")
        .to_str()
        .expect("ASCII header")
        .to_owned()
}

fn body_api_call_id(r: &Resp) -> String {
    r.body["api_call_id"]
        .as_str()
        .expect("api_call_id in the body")
        .to_owned()
}

/// The envelope's id and the header's are the same `API_CALL_…` id; returns it.
fn assert_api_call_id(r: &Resp) -> String {
    let id = body_api_call_id(r);
    assert_eq!(id, header_api_call_id(r), "{}", r.body);
    assert!(id.starts_with("API_CALL_"), "{id}");
    assert!(id.len() > "API_CALL_".len(), "{id}");
    id
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_route_is_answered_404_not_found(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    for path in [
        "/nope",
        "/users",
        "/users/",
        "/users/a/b/c",
        "/transaction/",
        "/create-user/x",
    ] {
        let r = app.get(&app.admin, path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
        assert_eq!(r.action(), "NOT_FOUND", "GET {path}: {}", r.body);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn known_path_with_wrong_method_is_answered_405_method_not_allowed(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let cases = [
        ("GET", "/transaction"),
        ("DELETE", "/users/x"),
        ("GET", "/create-user"),
        ("POST", "/users/x/limits"),
        ("PUT", "/users/x/status"),
    ];
    for (method, path) in cases {
        let ext = (method == "POST").then(fresh_id);
        let r = app
            .send(&app.admin, method, path, ext.as_deref(), None, &[])
            .await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        assert_eq!(
            r.action(),
            "METHOD_NOT_ALLOWED",
            "{method} {path}: {}",
            r.body
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn limits_of_an_unknown_user_are_answered_404(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    for key in [&app.admin, &app.merchant] {
        let r = app.get(key, "/users/USR_nope/limits").await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.action(), "NOT_FOUND", "{}", r.body);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_route_with_a_bad_signature_is_answered_401_signature_before_route(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let ts = now_ts();
    let bad = "0".repeat(64);
    let headers = [
        ("X-Client-Id", app.admin.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", bad.as_str()),
    ];
    let r = send_raw(&app, "GET", "/nope", &headers, Vec::new()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{}", r.body);
    // Unsigned, a wrong method on a known path is a 401 too.
    let r = send_raw(&app, "GET", "/transaction", &[], Vec::new()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn body_over_65536_bytes_is_answered_413_even_with_a_bad_signature(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let ts = now_ts();
    let bad = "0".repeat(64);
    let ext = fresh_id();
    let headers = [
        ("X-Client-Id", app.merchant.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-External-Id", ext.as_str()),
        ("X-Signature", bad.as_str()),
        ("Content-Type", "application/json"),
    ];
    let big = vec![b' '; 65_537];
    let r = send_raw(&app, "POST", "/transaction", &headers, big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.action(), "PAYLOAD_TOO_LARGE", "{}", r.body);
    assert_api_call_id(&r);

    // Exactly 65,536 bytes is not too large: the bad signature answers.
    let limit = vec![b' '; 65_536];
    let r = send_raw(&app, "POST", "/transaction", &headers, limit).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.action(), "INVALID_SIGNATURE", "{}", r.body);
    app.shutdown().await;
}

/// A chunked body declares no length, so only counting the bytes can stop it.
#[sqlx::test(migrations = "../migrations")]
async fn chunked_body_over_65536_bytes_is_answered_413_even_with_a_bad_signature(
    pool: sqlx::MySqlPool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(pool).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /transaction HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         X-Client-Id: {}\r\nX-Timestamp: {}\r\nX-External-Id: {}\r\nX-Signature: {}\r\n\r\n",
        app.merchant.client_id,
        now_ts(),
        fresh_id(),
        "0".repeat(64)
    );
    let mut request = head.into_bytes();
    for _ in 0..7 {
        request.extend_from_slice(format!("{:x}\r\n", 10_000).as_bytes());
        request.extend_from_slice(&[b' '; 10_000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before it has read everything; what matters is the answer.
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status_line = head.lines().next().unwrap_or_default();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{text}");
    let envelope: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(envelope["message_action"], "PAYLOAD_TOO_LARGE", "{text}");
    let id = envelope["api_call_id"]
        .as_str()
        .expect("api_call_id")
        .to_owned();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-api-call-id: {}", id.to_ascii_lowercase())),
        "{text}"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn every_response_carries_its_api_call_id_in_body_and_header(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let responses = [
        app.get(&app.merchant, &format!("/users/{user}/limits"))
            .await,
        app.get(&app.admin, "/nope").await,
        app.send(&app.admin, "DELETE", "/users/x", None, None, &[])
            .await,
        app.get(&app.merchant, &format!("/users/{user}")).await,
        send_raw(&app, "GET", "/users/x/limits", &[], Vec::new()).await,
        send_raw(&app, "GET", "/healthz", &[], Vec::new()).await,
        send_raw(&app, "GET", "/readyz", &[], Vec::new()).await,
    ];
    let expected = [200, 404, 405, 403, 401, 200, 200];
    for (r, status) in responses.iter().zip(expected) {
        assert_eq!(r.status, status, "{}", r.body);
        assert_api_call_id(r);
        assert!(
            r.body.get("message_action").is_some_and(Value::is_string),
            "{}",
            r.body
        );
        assert!(r.body.get("message_data").is_some(), "{}", r.body);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn sequential_requests_get_unique_strictly_increasing_api_call_ids(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let mut ids = Vec::with_capacity(50);
    for i in 0..50 {
        let r = if i % 2 == 0 {
            app.get(&app.merchant, "/users/USR_nope/limits").await
        } else {
            send_raw(&app, "GET", "/nope", &[], Vec::new()).await
        };
        ids.push(assert_api_call_id(&r));
    }
    for w in ids.windows(2) {
        assert!(
            w[0] < w[1],
            "not strictly increasing: {} then {}",
            w[0],
            w[1]
        );
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 50);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn authenticated_request_leaves_an_audit_row(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/limits?x=1");
    let r = app
        .send(&app.merchant, "GET", &path, Some("READ-42"), None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = assert_api_call_id(&r);
    let row = audit_row(&app.pool, &id).await;
    assert_eq!(row.api_call_id, id);
    assert_eq!(row.method, "GET");
    assert_eq!(row.path, path, "the path is stored with its query");
    assert_eq!(row.http_status, 200);
    assert_eq!(row.message_action, "SUCCESS");
    assert_eq!(
        row.merchant_id.as_deref(),
        Some(app.merchant.merchant_id.as_str())
    );
    assert_eq!(row.merchant_id.as_deref(), Some("tokopedia"));
    assert_eq!(
        row.client_id.as_deref(),
        Some(app.merchant.client_id.as_str())
    );
    assert_eq!(row.external_id.as_deref(), Some("READ-42"));
    assert_eq!(row.client_ip.as_deref(), Some("127.0.0.1"));
    let response: Value =
        serde_json::from_str(row.response_body.as_deref().expect("response stored"))
            .expect("the stored response is JSON");
    assert_eq!(response["api_call_id"], id.as_str());
    assert_eq!(response["message_action"], "SUCCESS");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn request_rejected_with_401_is_audited(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let ts = now_ts();
    let wrong = sign(
        b"wrong",
        &string_to_sign("GET", "/users/x/limits", &ts, None, b""),
    );
    let headers = [
        ("X-Client-Id", app.merchant.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", wrong.as_str()),
    ];
    let r = send_raw(&app, "GET", "/users/x/limits", &headers, Vec::new()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let id = assert_api_call_id(&r);
    let row = audit_row(&app.pool, &id).await;
    assert_eq!(row.method, "GET");
    assert_eq!(row.path, "/users/x/limits");
    assert_eq!(row.http_status, 401);
    assert_eq!(row.message_action, "INVALID_SIGNATURE");
    assert_eq!(
        row.merchant_id, None,
        "an unauthenticated request belongs to no merchant"
    );
    assert_eq!(row.client_id, None);
    app.shutdown().await;
}

/// An unsigned body is never parsed nor stored: its 401 row keeps its size, its SHA-256 and a
/// short prefix with the digits hidden.
#[sqlx::test(migrations = "../migrations")]
async fn a_401_audit_row_keeps_the_bodys_size_hash_and_prefix_not_the_body(pool: sqlx::MySqlPool) {
    use sha2::Digest;
    let app = spawn_app(pool).await;
    let body = format!(
        r#"{{"nik":"3201234567890001","full_name":"{}"}}"#,
        "A".repeat(60_000)
    );
    let headers = [
        ("X-Client-Id", app.admin.client_id.as_str()),
        ("X-Timestamp", "1"),
        ("X-Signature", "00"),
        ("X-External-Id", "unsigned-1"),
        ("Content-Type", "application/json"),
    ];
    let r = send_raw(
        &app,
        "POST",
        "/create-user",
        &headers,
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let row = audit_row(&app.pool, &assert_api_call_id(&r)).await;
    let kept = row.request_body.expect("the row describes the body");
    assert!(
        kept.len() <= 256,
        "a bounded description, not the body: {kept}"
    );
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    assert!(kept.contains(&hash), "{kept}");
    assert!(kept.contains(&format!("{} bytes", body.len())), "{kept}");
    assert!(!kept.contains("3201"), "no digit of the NIK: {kept}");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn create_user_audit_row_masks_nik_and_photo_urls(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let nik = format!("32{:014}", rand_u64() % 100_000_000_000_000);
    let masked = format!("{}********{}", &nik[..4], &nik[12..]);
    let body = user_body(&nik, ["100000", "300000", "500000", "10000000"]);
    let ext = fresh_id();
    let r = app.post(&app.admin, "/create-user", &ext, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = assert_api_call_id(&r);
    let row = audit_row(&app.pool, &id).await;
    assert_eq!(row.method, "POST");
    assert_eq!(row.path, "/create-user");
    assert_eq!(row.http_status, 201);
    assert_eq!(row.message_action, "SUCCESS");
    assert_eq!(row.external_id.as_deref(), Some(ext.as_str()));
    let photos = [
        body["foto_ktp"].as_str().expect("foto_ktp"),
        body["foto_selfie"].as_str().expect("foto_selfie"),
    ];
    for (column, stored) in [
        ("request_body", &row.request_body),
        ("response_body", &row.response_body),
    ] {
        let stored = stored
            .as_deref()
            .unwrap_or_else(|| panic!("{column} is stored"));
        assert!(
            stored.contains(&masked),
            "{column} should hold the masked NIK {masked}: {stored}"
        );
        assert!(
            !stored.contains(&nik),
            "{column} holds the plaintext NIK: {stored}"
        );
        for url in photos {
            assert!(
                !stored.contains(url),
                "{column} holds a photo URL: {stored}"
            );
        }
        assert!(
            !stored.contains("cdn.example.com"),
            "{column} holds a photo URL: {stored}"
        );
    }
    // And nowhere else in the row.
    let whole = format!("{row:?}");
    assert!(!whole.contains(&nik), "{whole}");

    // Reading the user back: the response is audited with its photo URLs masked too.
    let user_id = r.data()["user_id"].as_str().expect("user_id");
    let r = app.get(&app.admin, &format!("/users/{user_id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = audit_row(&app.pool, &assert_api_call_id(&r)).await;
    let stored = row
        .response_body
        .as_deref()
        .expect("response_body is stored");
    assert!(stored.contains(user_id), "{stored}");
    assert!(
        !stored.contains(&nik),
        "response_body holds the plaintext NIK: {stored}"
    );
    assert!(
        !stored.contains("cdn.example.com"),
        "response_body holds a photo URL: {stored}"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn health_endpoints_are_not_audited(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let healthz = send_raw(&app, "GET", "/healthz", &[], Vec::new()).await;
    let readyz = send_raw(&app, "GET", "/readyz", &[], Vec::new()).await;
    let health_ids = [assert_api_call_id(&healthz), assert_api_call_id(&readyz)];
    // A later audited request: once its row is written, any earlier row would be too.
    let r = app.get(&app.admin, "/nope").await;
    let later = assert_api_call_id(&r);
    audit_row(&app.pool, &later).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in health_ids {
        assert!(
            find_audit_row(&app.pool, &id).await.is_none(),
            "{id} (a health check) was audited"
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn healthz_is_answered_200(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let r = send_raw(&app, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS", "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn readyz_is_answered_200_with_every_dependency_up(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let r = send_raw(&app, "GET", "/readyz", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS", "{}", r.body);
    for dep in ["mysql", "redis", "rabbitmq"] {
        assert_eq!(r.data()[dep], Value::Bool(true), "{dep}: {}", r.body);
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn no_key_secret_appears_in_the_audit_log(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let ts = now_ts();
    let wrong = sign(
        b"wrong",
        &string_to_sign("GET", "/users/x/limits", &ts, None, b""),
    );
    let headers = [
        ("X-Client-Id", app.admin.client_id.as_str()),
        ("X-Timestamp", ts.as_str()),
        ("X-Signature", wrong.as_str()),
    ];
    let mut ids = vec![
        assert_api_call_id(&app.get(&app.admin, &format!("/users/{user}")).await),
        assert_api_call_id(
            &app.get(&app.merchant, &format!("/users/{user}/limits"))
                .await,
        ),
        assert_api_call_id(&app.get(&app.other_merchant, "/users/USR_nope/limits").await),
        assert_api_call_id(&send_raw(&app, "GET", "/users/x/limits", &headers, Vec::new()).await),
    ];
    ids.push(assert_api_call_id(
        &app.post(
            &app.admin,
            "/create-user",
            &fresh_id(),
            &serde_json::json!({"nik": "1"}),
        )
        .await,
    ));
    for id in &ids {
        audit_row(&app.pool, id).await;
    }
    let rows = all_audit_rows(&app.pool).await;
    assert!(rows.len() >= ids.len(), "{} rows", rows.len());
    for row in &rows {
        let whole = format!("{row:?}");
        for key in [&app.admin, &app.merchant, &app.other_merchant] {
            assert!(
                !whole.contains(&key.secret),
                "a key secret is in the audit log: {whole}"
            );
        }
    }
    app.shutdown().await;
}
