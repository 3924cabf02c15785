//! `GET /status?external_id=…` (SPEC §10): the call that claimed an external id answers as
//! `GET /status/{api_call_id}`, for its merchant only, from the Redis claim or, once a worker
//! decided it, from MySQL.

use crate::helpers::*;
use serde_json::{Value, json};

async fn lookup(app: &TestApp, key: &Key, query: &str) -> Resp {
    app.get(key, &format!("/status?{query}")).await
}

/// What `GET /status/{api_call_id}` answers for `call`, to compare the lookup with.
async fn by_call_id(app: &TestApp, key: &Key, call: &str) -> Value {
    let r = app.get(key, &format!("/status/{call}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data().clone()
}

/// Deletes this test's claims from Redis (only its own key prefix; the shared Redis keeps
/// everyone else's), as if Redis had lost them.
async fn forget_claims(app: &TestApp) {
    let mut c = app.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:idem:*", app.prefix))
        .query_async(&mut c)
        .await
        .expect("keys");
    assert!(!keys.is_empty(), "the test's calls left claims");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .expect("del");
}

fn checkout(user: &str) -> String {
    transaction_body(user, "1000.00", "100.00", "900.00", "2.5", 3)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pending_call_is_found_by_its_external_id_and_then_its_outcome(pool: sqlx::MySqlPool) {
    // No worker yet: the call stays PENDING, known only to Redis.
    let mut app = spawn_app_with(pool, 0).await;
    let user = app.create_user(["0", "0", "500000", "0"]).await;
    let external_id = fresh_id();
    let r = app.post_transaction(&external_id, &checkout(&user)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();

    let found = lookup(&app, &app.merchant, &format!("external_id={external_id}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.action(), "SUCCESS");
    assert_eq!(found.data()["status"], "PENDING");
    assert_eq!(found.data(), &by_call_id(&app, &app.merchant, &call).await);
    let explicit = lookup(
        &app,
        &app.merchant,
        &format!(
            "external_id={external_id}&endpoint=transaction&merchant={}",
            app.merchant.merchant_id
        ),
    )
    .await;
    assert_eq!(explicit.data(), found.data());

    app.add_worker();
    let decided = app.wait_final(&app.merchant, &call).await;
    assert_eq!(decided["status"], "APPROVED");
    let found = lookup(&app, &app.merchant, &format!("external_id={external_id}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.data(), &decided);
    assert_eq!(
        found.data()["result"]["nomor_kontrak"],
        decided["result"]["nomor_kontrak"]
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rejected_call_is_found_with_its_reason(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["0", "0", "10", "0"]).await;
    let external_id = fresh_id();
    let r = app
        .post_wait(
            &app.merchant,
            "/transaction",
            &external_id,
            &serde_json::from_str(&checkout(&user)).expect("json"),
        )
        .await;
    assert_eq!(r.action(), "INSUFFICIENT_LIMIT", "{}", r.body);
    let found = lookup(&app, &app.merchant, &format!("external_id={external_id}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.data()["status"], "REJECTED");
    assert_eq!(found.data()["reason"], "INSUFFICIENT_LIMIT");
    assert_eq!(found.data(), r.data());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_decided_call_is_found_after_redis_lost_its_claim(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["0", "0", "500000", "0"]).await;
    let external_id = fresh_id();
    let r = app
        .post_wait(
            &app.merchant,
            "/transaction",
            &external_id,
            &serde_json::from_str(&checkout(&user)).expect("json"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();

    // Every key of this test's deployment goes (claims, cached statuses, the filter): only
    // MySQL's record of the external id and the outcome remain.
    forget_redis(&app).await;
    assert_eq!(app.transaction_claim(&external_id).await, None);
    let found = lookup(&app, &app.merchant, &format!("external_id={external_id}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.data()["api_call_id"], call.as_str());
    assert_eq!(found.data(), r.data());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_claim_lost_before_any_worker_decided_is_found_once_decided(pool: sqlx::MySqlPool) {
    let mut app = spawn_app_with(pool, 0).await;
    let user = app.create_user(["0", "0", "500000", "0"]).await;
    let external_id = fresh_id();
    let r = app.post_transaction(&external_id, &checkout(&user)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();

    // Only the claim named the call: MySQL learns of the external id when a worker decides.
    forget_claims(&app).await;
    let lost = lookup(&app, &app.merchant, &format!("external_id={external_id}")).await;
    assert_eq!(lost.status, 404, "{}", lost.body);
    assert_eq!(lost.action(), "NOT_FOUND");

    app.add_worker();
    let decided = app.wait_final(&app.merchant, &call).await;
    let found = lookup(&app, &app.merchant, &format!("external_id={external_id}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.data(), &decided);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_merchant_finds_only_its_own_calls(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["0", "0", "500000", "0"]).await;
    let external_id = fresh_id();
    let r = app.post_transaction(&external_id, &checkout(&user)).await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Another merchant's scope has no such external id, and it may not name the owner.
    let other = lookup(
        &app,
        &app.other_merchant,
        &format!("external_id={external_id}"),
    )
    .await;
    assert_eq!(
        (other.status, other.action()),
        (404, "NOT_FOUND"),
        "{}",
        other.body
    );
    let named = lookup(
        &app,
        &app.other_merchant,
        &format!(
            "external_id={external_id}&merchant={}",
            app.merchant.merchant_id
        ),
    )
    .await;
    assert_eq!(
        (named.status, named.action()),
        (404, "NOT_FOUND"),
        "{}",
        named.body
    );
    // The owner naming another merchant is as unknown.
    let elsewhere = lookup(
        &app,
        &app.merchant,
        &format!(
            "external_id={external_id}&merchant={}",
            app.other_merchant.merchant_id
        ),
    )
    .await;
    assert_eq!((elsewhere.status, elsewhere.action()), (404, "NOT_FOUND"));
    // The same id on other endpoints names nothing (refunds included).
    for endpoint in ["payment", "refund"] {
        let r = lookup(
            &app,
            &app.merchant,
            &format!("external_id={external_id}&endpoint={endpoint}"),
        )
        .await;
        assert_eq!(
            (r.status, r.action()),
            (404, "NOT_FOUND"),
            "{endpoint}: {}",
            r.body
        );
    }
    let unknown = lookup(&app, &app.merchant, "external_id=NEVER-USED").await;
    assert_eq!((unknown.status, unknown.action()), (404, "NOT_FOUND"));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_names_the_merchant_and_platform_for_admin_calls(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["0", "0", "500000", "0"]).await;
    let merchant_ext = fresh_id();
    let merchants = app
        .post_wait(
            &app.merchant,
            "/transaction",
            &merchant_ext,
            &serde_json::from_str(&checkout(&user)).expect("json"),
        )
        .await;
    assert_eq!(merchants.status, 201, "{}", merchants.body);
    let nomor_kontrak = merchants.data()["result"]["nomor_kontrak"]
        .as_str()
        .expect("contract")
        .to_owned();
    // An admin call: a payment, with an external id of the platform's.
    let payment_ext = fresh_id();
    let paid = app
        .post_wait(
            &app.admin,
            "/payment",
            &payment_ext,
            &json!({"nomor_kontrak": nomor_kontrak, "jumlah": "394.17"}),
        )
        .await;
    assert_eq!(paid.status, 201, "{}", paid.body);

    let missing = lookup(&app, &app.admin, &format!("external_id={merchant_ext}")).await;
    assert_eq!(
        (missing.status, missing.action()),
        (400, "INVALID_MANDATORY"),
        "{}",
        missing.body
    );
    assert!(missing.message().contains("`merchant`"), "{}", missing.body);

    let found = lookup(
        &app,
        &app.admin,
        &format!(
            "external_id={merchant_ext}&merchant={}",
            app.merchant.merchant_id
        ),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.data(), merchants.data());

    let platform = lookup(
        &app,
        &app.admin,
        &format!("external_id={payment_ext}&endpoint=payment&merchant=PLATFORM"),
    )
    .await;
    assert_eq!(platform.status, 200, "{}", platform.body);
    assert_eq!(platform.data()["type"], "PAYMENT");
    assert_eq!(platform.data(), paid.data());
    // The platform's id is not the merchant's, nor a transaction's.
    for query in [
        format!(
            "external_id={payment_ext}&endpoint=payment&merchant={}",
            app.merchant.merchant_id
        ),
        format!("external_id={payment_ext}&merchant=PLATFORM"),
    ] {
        let r = lookup(&app, &app.admin, &query).await;
        assert_eq!((r.status, r.action()), (404, "NOT_FOUND"), "{query}");
    }
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn each_bad_parameter_is_named_with_its_code(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let user = app.create_user(["0", "0", "500000", "0"]).await;
    // An external id with characters a query must percent-encode.
    let external_id = format!("{}#1&x=y", fresh_id());
    let r = app.post_transaction(&external_id, &checkout(&user)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let encoded = external_id
        .replace('#', "%23")
        .replace('&', "%26")
        .replace('=', "%3D");
    let found = lookup(&app, &app.merchant, &format!("external_id={encoded}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.data()["api_call_id"], r.body["api_call_id"]);
    // Unknown parameters are ignored, as the listings ignore them.
    let extra = lookup(
        &app,
        &app.merchant,
        &format!("external_id={encoded}&page=2"),
    )
    .await;
    assert_eq!(extra.status, 200, "{}", extra.body);

    let long = "x".repeat(129);
    let cases: Vec<(&Key, String, &str, &str)> = vec![
        (
            &app.merchant,
            String::new(),
            "INVALID_MANDATORY",
            "external_id",
        ),
        (
            &app.merchant,
            "endpoint=payment".into(),
            "INVALID_MANDATORY",
            "external_id",
        ),
        (
            &app.admin,
            "external_id=A".into(),
            "INVALID_MANDATORY",
            "merchant",
        ),
        (
            &app.merchant,
            "external_id=".into(),
            "INVALID_VALUE",
            "external_id",
        ),
        (
            &app.merchant,
            format!("external_id={long}"),
            "INVALID_VALUE",
            "external_id",
        ),
        (
            &app.merchant,
            "external_id=a%20b".into(),
            "INVALID_VALUE",
            "external_id",
        ),
        (
            &app.merchant,
            "external_id=a%2".into(),
            "INVALID_VALUE",
            "external_id",
        ),
        (
            &app.merchant,
            "external_id=A&endpoint=refunds".into(),
            "INVALID_VALUE",
            "endpoint",
        ),
        (
            &app.merchant,
            "external_id=A&endpoint=".into(),
            "INVALID_VALUE",
            "endpoint",
        ),
        (
            &app.merchant,
            "external_id=A&merchant=a.b".into(),
            "INVALID_VALUE",
            "merchant",
        ),
        (
            &app.admin,
            "external_id=A&merchant=".into(),
            "INVALID_VALUE",
            "merchant",
        ),
    ];
    for (key, query, action, field) in cases {
        let r = lookup(&app, key, &query).await;
        assert_eq!((r.status, r.action()), (400, action), "{query}: {}", r.body);
        assert!(
            r.message().contains(&format!("`{field}`")),
            "{query}: {}",
            r.body
        );
    }
    app.shutdown().await;
}
