//! The operators' endpoints (`/admin/…`) and the console page: admin only, a key's secret
//! shown once and never listed nor audited in clear, rotation, revocation and rates that take
//! effect, dead letters listed with their reason as text and replayed, every call audited.

use crate::helpers::*;
use crate::openapi::{conforms, fetch_document};
use serde_json::{Value, json};
use shared::messages::{COMMAND_SCHEMA_VERSION, Command, CommandPayload, TransactionPayload};
use std::time::Duration;

impl TestApp {
    async fn patch(&self, key: &Key, path: &str, body: &Value) -> Resp {
        let bytes = body.to_string();
        self.send(key, "PATCH", path, None, Some(bytes.as_bytes()), &[])
            .await
    }
}

/// The key an issuing answer (`POST /admin/keys`, `…/rotate`) carries.
fn key_of(r: &Resp, merchant_id: &str) -> Key {
    Key {
        client_id: r.data()["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned(),
        secret: r.data()["secret"].as_str().expect("secret").to_owned(),
        merchant_id: merchant_id.to_owned(),
    }
}

/// Polls a signed `GET path` with `key` until it answers `status`, for at most 5 s (SPEC §2:
/// a revocation lands within 5 s); the last answer.
async fn until_status(app: &TestApp, key: &Key, path: &str, status: u16) -> Resp {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = app.get(key, path).await;
        if r.status == status || tokio::time::Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn call_id(r: &Resp) -> &str {
    r.body["api_call_id"].as_str().expect("api_call_id")
}

#[sqlx::test(migrations = "../migrations")]
async fn admin_endpoints_answer_403_to_merchants(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let target = &app.other_merchant.client_id;
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/admin/keys".into(), None),
        (
            "POST",
            "/admin/keys".into(),
            Some(json!({"name": "x", "role": "merchant"})),
        ),
        (
            "POST",
            format!("/admin/keys/{target}/rotate"),
            Some(json!({})),
        ),
        ("DELETE", format!("/admin/keys/{target}"), None),
        (
            "PATCH",
            format!("/admin/keys/{target}/rate"),
            Some(json!({})),
        ),
        ("GET", "/admin/dead-letters".into(), None),
        (
            "POST",
            "/admin/dead-letters/replay".into(),
            Some(json!({"all": true})),
        ),
        ("GET", "/admin/overview".into(), None),
    ];
    for (method, path, body) in calls {
        let bytes = body.map(|b| b.to_string());
        let external_id = (method == "POST").then(fresh_id);
        let r = app
            .send(
                &app.merchant,
                method,
                &path,
                external_id.as_deref(),
                bytes.as_deref().map(str::as_bytes),
                &[],
            )
            .await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.action(), "FORBIDDEN", "{method} {path}");
    }
    // Nothing happened to the key a merchant named.
    let still = app.get(&app.other_merchant, "/nope").await;
    assert_eq!(still.status, 404, "the other merchant's key still holds");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_created_key_shows_its_secret_once_works_at_once_and_is_never_listed(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let doc = fetch_document(&app).await;
    let user = app.create_user(["100", "100", "100", "100"]).await;
    let external_id = fresh_id();
    let body =
        json!({"name": "acme", "role": "merchant", "rate_per_second": 50, "rate_burst": 100});
    let created = app
        .post(&app.admin, "/admin/keys", &external_id, &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    conforms(&doc, "POST", "/admin/keys", &created);
    assert_eq!(created.data()["merchant_id"], "acme");
    assert_eq!(created.data()["role"], "merchant");
    assert_eq!(created.data()["rate_per_second"], 50);
    let key = key_of(&created, "acme");
    assert!(key.client_id.starts_with("ck_") && key.secret.len() >= 32);

    let used = until_status(&app, &key, &format!("/users/{user}/limits"), 200).await;
    assert_eq!(used.status, 200, "the new key signs at once: {}", used.body);

    let listed = app.get(&app.admin, "/admin/keys").await;
    assert_eq!(listed.status, 200);
    conforms(&doc, "GET", "/admin/keys", &listed);
    let text = listed.body.to_string();
    assert!(
        !text.contains(&key.secret),
        "a listing never shows a secret"
    );
    assert!(
        !text.contains("\"secret\""),
        "a listing has no secret field"
    );
    let mine = listed.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["client_id"] == key.client_id.as_str())
        .expect("the new key is listed")
        .clone();
    assert_eq!(mine["rate_per_second"], 50);
    assert_eq!(mine["rate_burst"], 100);
    assert!(mine["revoked_at"].is_null());

    // The same external id again: the first call, never a second key.
    let again = app
        .post(&app.admin, "/admin/keys", &external_id, &body)
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.action(), "CONFLICT_EXTERNAL_ID");
    assert_eq!(again.data()["original_api_call_id"], call_id(&created));
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(keys, 1);

    let (_, response) = audited(&app, call_id(&created)).await;
    assert!(!response.contains(&key.secret), "the audit log: {response}");
    assert!(response.contains(r#""secret":"***""#), "{response}");
    assert!(response.contains(&key.client_id));
    let (_, listing) = audited(&app, call_id(&listed)).await;
    assert!(listing.contains(&key.client_id), "the listing is audited");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_key_body_is_checked_in_the_order_of_checks(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    for (body, action, names) in [
        (json!({"role": "admin"}), "INVALID_MANDATORY", "name"),
        (
            json!({"name": "a", "role": "admin", "extra": 1}),
            "INVALID_PAYLOAD_KEY",
            "extra",
        ),
        (
            json!({"name": "has space", "role": "admin"}),
            "INVALID_VALUE",
            "name",
        ),
        (
            json!({"name": "a", "role": "root"}),
            "INVALID_VALUE",
            "role",
        ),
        (
            json!({"name": "Platform", "role": "merchant"}),
            "INVALID_VALUE",
            "name",
        ),
        (
            json!({"name": "a", "role": "merchant", "rate_per_second": 0}),
            "INVALID_VALUE",
            "rate_per_second",
        ),
    ] {
        let external_id = fresh_id();
        let r = app
            .post(&app.admin, "/admin/keys", &external_id, &body)
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.action(), action, "{body}");
        assert!(r.message().contains(names), "{body}: {}", r.message());
    }
    let none = app
        .send(
            &app.admin,
            "POST",
            "/admin/keys",
            None,
            Some(br#"{"name":"a","role":"admin"}"#),
            &[],
        )
        .await;
    assert_eq!(none.action(), "INVALID_MANDATORY");
    assert!(none.message().contains("X-External-Id"));
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(keys, 3, "no key was made by a refused request");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rotated_key_signs_with_its_new_secret_and_the_old_one_ends_with_its_grace(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let doc = fetch_document(&app).await;
    let old = new_key(&app.pool, "rotating", shared::db::keys::Role::Merchant).await;
    let ready = until_status(&app, &old, "/nope", 404).await;
    assert_eq!(ready.status, 404, "{}", ready.body);

    let path = format!("/admin/keys/{}/rotate", old.client_id);
    let rotated = app
        .post(&app.admin, &path, &fresh_id(), &json!({"grace_secs": 0}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    conforms(&doc, "POST", "/admin/keys/{client_id}/rotate", &rotated);
    let new = key_of(&rotated, &old.merchant_id);
    assert_eq!(new.client_id, old.client_id);
    assert_ne!(new.secret, old.secret);

    let with_new = until_status(&app, &new, "/nope", 404).await;
    assert_eq!(
        with_new.status, 404,
        "the new secret signs: {}",
        with_new.body
    );
    let with_old = until_status(&app, &old, "/nope", 401).await;
    assert_eq!(with_old.status, 401, "no grace: the old secret is refused");

    // A day's grace by default: the previous secret still signs.
    let graced = app.post(&app.admin, &path, &fresh_id(), &json!({})).await;
    assert_eq!(graced.status, 200, "{}", graced.body);
    let newest = key_of(&graced, &old.merchant_id);
    assert_eq!(until_status(&app, &newest, "/nope", 404).await.status, 404);
    assert_eq!(app.get(&new, "/nope").await.status, 404, "within its grace");

    let (_, response) = audited(&app, call_id(&rotated)).await;
    assert!(!response.contains(&new.secret), "{response}");
    assert!(response.contains(r#""secret":"***""#), "{response}");

    let unknown = app
        .post(
            &app.admin,
            "/admin/keys/ck_nobody/rotate",
            &fresh_id(),
            &json!({}),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let bad = app
        .post(&app.admin, &path, &fresh_id(), &json!({"grace_secs": -1}))
        .await;
    assert_eq!(bad.action(), "INVALID_VALUE");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_revoked_key_is_refused_within_five_seconds_and_a_replayed_revocation_is_409(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let doc = fetch_document(&app).await;
    let victim = new_key(&app.pool, "leaving", shared::db::keys::Role::Merchant).await;
    assert_eq!(until_status(&app, &victim, "/nope", 404).await.status, 404);

    let path = format!("/admin/keys/{}", victim.client_id);
    let ts = now_ts();
    let revoked = app
        .send_at(&app.admin, "DELETE", &path, None, None, &[], &ts)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    conforms(&doc, "DELETE", "/admin/keys/{client_id}", &revoked);
    assert_eq!(revoked.data()["revoked"], true);
    let (_, response) = audited(&app, call_id(&revoked)).await;
    assert!(
        response.contains(r#""revoked":true"#),
        "audited: {response}"
    );
    let refused = until_status(&app, &victim, "/nope", 401).await;
    assert_eq!(refused.status, 401, "the revoked key is refused");
    assert_eq!(refused.action(), "INVALID_SIGNATURE");

    let replay = app
        .send_at(&app.admin, "DELETE", &path, None, None, &[], &ts)
        .await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    assert_eq!(replay.data()["original_api_call_id"], call_id(&revoked));
    // Signed anew (another second, so another signature): an ordinary request again.
    let later = (ts.parse::<i64>().expect("timestamp") + 1).to_string();
    let twice = app
        .send_at(&app.admin, "DELETE", &path, None, None, &[], &later)
        .await;
    assert_eq!(
        twice.status, 404,
        "no active key by that id: {}",
        twice.body
    );

    let listed = app.get(&app.admin, "/admin/keys").await;
    let row = listed.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["client_id"] == victim.client_id.as_str())
        .expect("a revoked key is still listed")
        .clone();
    assert!(row["revoked_at"].is_string());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_key_rate_set_by_the_api_is_enforced_and_can_be_reset(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let doc = fetch_document(&app).await;
    let slow = new_key(&app.pool, "slow", shared::db::keys::Role::Merchant).await;
    let path = format!("/admin/keys/{}/rate", slow.client_id);
    let set = app
        .patch(
            &app.admin,
            &path,
            &json!({"rate_per_second": 1, "rate_burst": 1}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    conforms(&doc, "PATCH", "/admin/keys/{client_id}/rate", &set);
    assert_eq!(set.data()["rate_per_second"], 1);
    assert_eq!(set.data()["rate_burst"], 1);
    let (request, response) = audited(&app, call_id(&set)).await;
    assert!(
        request.is_some_and(|b| b.contains("rate_per_second")),
        "audited with its body"
    );
    assert!(response.contains(&slow.client_id));

    // Once every ingress has the rate, two calls back to back: the second is over it.
    let mut limited = None;
    for _ in 0..50 {
        let first = app.get(&slow, "/nope").await;
        let second = app.get(&slow, "/nope").await;
        if first.status == 429 || second.status == 429 {
            limited = Some(if second.status == 429 { second } else { first });
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let limited = limited.expect("the key's own rate is enforced");
    assert_eq!(limited.action(), "RATE_LIMITED");

    let reset = app.patch(&app.admin, &path, &json!({})).await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert!(reset.data()["rate_per_second"].is_null());
    assert!(reset.data()["rate_burst"].is_null());

    let bad = app
        .patch(&app.admin, &path, &json!({"rate_burst": "5"}))
        .await;
    assert_eq!(bad.action(), "INVALID_VALUE");
    assert!(bad.message().contains("rate_burst"));
    let unknown = app
        .patch(&app.admin, "/admin/keys/ck_nobody/rate", &json!({}))
        .await;
    assert_eq!(unknown.status, 404);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn dead_letters_are_listed_with_their_reason_as_text_and_replayed_once(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let doc = fetch_document(&app).await;
    let user = app.create_user(["1000", "1000", "1000", "1000"]).await;
    let topology = shared::amqp::Topology::new(&app.prefix);
    // Poison through the command queue: the worker dead-letters it (the broker says why).
    publish_raw(&topology.command_queue(), &[b"not a command".to_vec()]).await;
    assert_eq!(dead_letter_count_settled(&app.prefix, 1).await, 1);
    // A good command, as if dead-lettered during an outage.
    let call = shared::ids::new_api_call_id();
    let command = Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: call.clone(),
        merchant_id: app.merchant.merchant_id.clone(),
        client_id: app.merchant.client_id.clone(),
        external_id: fresh_id(),
        body_sha256: "00".repeat(32),
        accepted_at: chrono::Utc::now(),
        reply_to: None,
        payload: CommandPayload::Transaction(TransactionPayload {
            user_id: user.clone(),
            terms: shared::contract::ContractTerms {
                otr: "100".parse().expect("money"),
                admin_fee: "0".parse().expect("money"),
                harga_aset: "100".parse().expect("money"),
                bunga_persen: shared::money::Rate::parse_json("0").expect("rate"),
                tenor: shared::contract::Tenor::One,
            },
            nama_aset: "TV".into(),
        }),
    };
    publish_raw(&topology.dead_letter_queue(), &[command.encode()]).await;
    assert_eq!(dead_letter_count_settled(&app.prefix, 2).await, 2);

    let listed = app.get(&app.admin, "/admin/dead-letters").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    conforms(&doc, "GET", "/admin/dead-letters", &listed);
    let items = listed.data()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2, "{}", listed.body);
    let poison = items
        .iter()
        .find(|d| d["replayable"] == false)
        .expect("the poison");
    assert_eq!(poison["death_reason"], "rejected", "the reason as text");
    assert!(poison["error"].is_string());
    let (_, response) = audited(&app, call_id(&listed)).await;
    assert!(
        response.contains(r#""death_reason":"rejected""#),
        "audited: {response}"
    );
    let good = items
        .iter()
        .find(|d| d["api_call_id"] == call.as_str())
        .expect("the command");
    assert_eq!(good["type"], "TRANSACTION");
    assert_eq!(good["replayable"], true);
    assert_eq!(
        dead_letter_count_settled(&app.prefix, 2).await,
        2,
        "listing leaves them in place"
    );

    let overview = app.get(&app.admin, "/admin/overview").await;
    assert_eq!(overview.data()["dead_letter_queue"]["messages"], 2);

    let replayed = app
        .post(
            &app.admin,
            "/admin/dead-letters/replay",
            &fresh_id(),
            &json!({"ids": [call]}),
        )
        .await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    conforms(&doc, "POST", "/admin/dead-letters/replay", &replayed);
    let replayed_ids: Vec<&str> = replayed.data()["replayed"]
        .as_array()
        .expect("replayed")
        .iter()
        .filter_map(|d| d["api_call_id"].as_str())
        .collect();
    assert_eq!(replayed_ids, [call.as_str()]);
    let mut status = Value::Null;
    for _ in 0..100 {
        let r = app.get(&app.merchant, &format!("/status/{call}")).await;
        if r.status == 200 && r.data()["status"] != "PENDING" {
            status = r.data().clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "APPROVED", "{status}");
    assert_eq!(
        dead_letter_count_settled(&app.prefix, 1).await,
        1,
        "the poison stays"
    );

    // Replaying all now replays nothing: the poison cannot be.
    let all = app
        .post(
            &app.admin,
            "/admin/dead-letters/replay",
            &fresh_id(),
            &json!({"all": true}),
        )
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.data()["replayed"], json!([]));
    let contracts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE api_call_id = ?")
            .bind(&call)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(contracts, 1, "completed exactly once");
    let (request, _) = audited(&app, call_id(&replayed)).await;
    assert!(
        request.is_some_and(|b| b.contains(&call)),
        "the replay is audited"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_overview_reports_readiness_queues_and_the_last_minute(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let doc = fetch_document(&app).await;
    let user = app.create_user(["1000", "1000", "1000", "1000"]).await;
    let r = app
        .post_wait(
            &app.merchant,
            "/transaction",
            &fresh_id(),
            &serde_json::from_str(&transaction_body(&user, "100", "0", "100", "0", 1))
                .expect("body"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let mut overview = app.get(&app.admin, "/admin/overview").await;
    for _ in 0..50 {
        if overview.data()["activity"]["approved"].as_u64() >= Some(1)
            && overview.data()["activity"]["requests"].as_u64() >= Some(2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        overview = app.get(&app.admin, "/admin/overview").await;
    }
    assert_eq!(overview.status, 200, "{}", overview.body);
    conforms(&doc, "GET", "/admin/overview", &overview);
    audited(&app, call_id(&overview)).await;
    let o = overview.data();
    assert_eq!(o["ready"], true, "{o}");
    assert_eq!(o["checks"]["mysql"], true);
    assert_eq!(
        o["command_queue"]["queue"],
        format!("{}.commands", app.prefix)
    );
    assert!(o["command_queue"]["consumers"].as_u64() >= Some(1), "{o}");
    assert_eq!(o["dead_letter_queue"]["messages"], 0);
    assert_eq!(o["activity"]["window_seconds"], 60);
    assert!(o["activity"]["approved"].as_u64() >= Some(1), "{o}");
    assert!(o["activity"]["requests"].as_u64() >= Some(2), "{o}");
    app.shutdown().await;
}

/// Every `src`/`href` of the page, as written.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            found.push(rest.split('"').next().unwrap_or("").to_owned());
        }
    }
    found
}

/// Whether an element of the page has an `on…=` attribute.
fn has_inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let name: String = html[i + 1..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        html[i + 1 + name.len()..].starts_with('=')
    })
}

#[sqlx::test(migrations = "../migrations")]
async fn the_console_is_served_unsigned_with_a_strict_policy_and_nothing_from_elsewhere(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let mut bodies = Vec::new();
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("style-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "no inline script or style: {csp}");
        assert!(!csp.contains("http"), "no other origin: {csp}");
        bodies.push(r.text().await.expect("body"));
    }
    let (html, script) = (&bodies[0], &bodies[1]);
    for reference in references(html) {
        assert!(
            reference.starts_with('/') && !reference.starts_with("//")
                || reference.starts_with('#'),
            "the page loads only from its own origin: {reference}"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");
    assert!(!has_inline_handler(html), "no inline handler");
    for forbidden in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(
            !script.contains(forbidden),
            "values go in as text: {forbidden}"
        );
    }
    for storage in ["localStorage.", "sessionStorage.", "document.cookie"] {
        assert!(
            !script.contains(storage),
            "the key stays in memory: {storage}"
        );
    }
    assert!(!script.contains("http://") && !script.contains("https://"));
    assert!(
        script.contains("crypto.subtle.sign(\"HMAC\""),
        "signed with WebCrypto"
    );

    let unknown = app
        .http
        .get(format!("{}/console/other.js", app.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(unknown.status(), 404);
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_call_logs WHERE path LIKE '/console%'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(audited, 0, "the page is public, like the docs page");
    app.shutdown().await;
}
