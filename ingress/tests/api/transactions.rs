//! POST /transaction end to end: ingress → RabbitMQ → worker → MariaDB, GET /status,
//! GET /contracts, Prefer: wait, idempotency and the limit equation under concurrency.

use crate::helpers::*;
use chrono::{DateTime, NaiveDate, Utc};

async fn submit(app: &TestApp, key: &Key, body: &str) -> Resp {
    app.send(
        key,
        "POST",
        "/transaction",
        Some(&fresh_id()),
        Some(body.as_bytes()),
        &[],
    )
    .await
}

async fn submit_wait(app: &TestApp, key: &Key, body: &str) -> Resp {
    app.send(
        key,
        "POST",
        "/transaction",
        Some(&fresh_id()),
        Some(body.as_bytes()),
        &[("Prefer", "wait=20")],
    )
    .await
}

fn expected_due_dates(tanggal_kontrak: &str, n: u32) -> Vec<String> {
    let instant: DateTime<Utc> = DateTime::parse_from_rfc3339(tanggal_kontrak)
        .expect("rfc3339")
        .with_timezone(&Utc);
    let anchor: NaiveDate = instant
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive();
    (1..=n)
        .map(|k| shared::contract::due_date(anchor, k).to_string())
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn spec_worked_examples_are_approved_with_exact_amounts_and_due_dates(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;

    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "1000.00", "100.00", "900.00", "2.5", 3),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS");
    let status = r.data();
    assert_eq!(status["status"], "APPROVED");
    assert_eq!(status["type"], "TRANSACTION");
    assert!(status["reason"].is_null());
    let c = &status["result"];
    assert_eq!(c["pokok"], "1100.00");
    assert_eq!(c["jumlah_bunga"], "82.50");
    assert_eq!(c["jumlah_cicilan"], "1182.50");
    assert_eq!(c["cicilan_bulanan"], "394.17");
    assert_eq!(c["bunga_persen"], "2.5000");
    assert_eq!(c["tenor"], 3);
    let amounts: Vec<&str> = c["tagihan"]
        .as_array()
        .expect("tagihan")
        .iter()
        .map(|t| t["harga_cicilan"].as_str().expect("s"))
        .collect();
    assert_eq!(amounts, ["394.17", "394.17", "394.16"]);
    let dates: Vec<String> = c["tagihan"]
        .as_array()
        .expect("tagihan")
        .iter()
        .map(|t| t["tanggal_tagihan"].as_str().expect("s").to_owned())
        .collect();
    assert_eq!(
        dates,
        expected_due_dates(c["tanggal_kontrak"].as_str().expect("date"), 3)
    );
    assert!(c["tanggal_kontrak"].as_str().expect("date").ends_with('Z'));
    for (k, t) in c["tagihan"].as_array().expect("tagihan").iter().enumerate() {
        assert_eq!(t["cicilan_ke"], k as u64 + 1);
        assert_eq!(t["status"], "UNPAID");
        assert_eq!(t["terbayar"], "0.00");
    }
    assert_eq!(c["limit_tersisa"]["3"]["available"], "498817.50");
    assert_eq!(c["limit_tersisa"]["3"]["granted"], "500000.00");

    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "100.05", "0", "100", "0", 2),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let amounts: Vec<&str> = r.data()["result"]["tagihan"]
        .as_array()
        .expect("tagihan")
        .iter()
        .map(|t| t["harga_cicilan"].as_str().expect("s"))
        .collect();
    assert_eq!(amounts, ["50.03", "50.02"]);

    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "1000.50", "0", "1000", "2.5", 2),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.data()["result"]["jumlah_bunga"], "50.03");
    let amounts: Vec<&str> = r.data()["result"]["tagihan"]
        .as_array()
        .expect("tagihan")
        .iter()
        .map(|t| t["harga_cicilan"].as_str().expect("s"))
        .collect();
    assert_eq!(amounts, ["525.27", "525.26"]);

    // The contract read shows the same contract, with the limits as they are now.
    let nomor = c["nomor_kontrak"].as_str().expect("nomor");
    let read = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.data()["tagihan"], c["tagihan"]);
    assert_eq!(read.data()["jumlah_cicilan"], "1182.50");
    // 300000 − 100.05 − (1000.50 + 50.03)
    assert_eq!(read.data()["limit_tersisa"]["2"]["available"], "298849.42");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn accepted_call_answers_202_then_status_becomes_final(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let r = submit(
        &app,
        &app.merchant,
        &transaction_body(&user, "1000", "0", "1000", "0", 1),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.action(), "ACCEPTED");
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();
    assert_eq!(r.data()["status"], "PENDING");
    assert_eq!(r.data()["status_url"], format!("/status/{call}"));
    assert_eq!(r.headers["location"], format!("/status/{call}").as_str());
    assert!(r.headers.contains_key("retry-after"));

    let status = app.wait_final(&app.merchant, &call).await;
    assert_eq!(status["status"], "APPROVED");
    assert_eq!(status["api_call_id"], call.as_str());
    assert!(
        status["completed_at"]
            .as_str()
            .expect("completed")
            .ends_with('Z')
    );

    // Only the submitting merchant (any of its keys) and admins may read it.
    let second_key = new_key(&app.pool, "tokopedia", shared::db::keys::Role::Merchant).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        app.get(&second_key, &format!("/status/{call}"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&app.admin, &format!("/status/{call}")).await.status,
        200
    );
    let other = app
        .get(&app.other_merchant, &format!("/status/{call}"))
        .await;
    assert_eq!(other.status, 404);
    assert_eq!(other.action(), "NOT_FOUND");
    assert_eq!(
        app.get(&app.merchant, "/status/API_CALL_unknown")
            .await
            .status,
        404
    );

    let nomor = status["result"]["nomor_kontrak"].as_str().expect("nomor");
    assert_eq!(
        app.get(&app.other_merchant, &format!("/contracts/{nomor}"))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&app.admin, &format!("/contracts/{nomor}"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&app.merchant, "/contracts/KTR_nope").await.status,
        404
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_202_reads_pending_at_once_and_its_claim_is_then_marked_accepted(pool: sqlx::MySqlPool) {
    // No worker: the call stays PENDING however long the test takes.
    let app = spawn_app_with(pool, 0).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let ext = fresh_id();
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let r = app.post_transaction(&ext, &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();
    // Written with the claim, before the 202 could exist: there on the very next read.
    let status = app.get(&app.merchant, &format!("/status/{call}")).await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.data()["status"], "PENDING");
    assert_eq!(status.data()["api_call_id"], call.as_str());

    // The claim is marked accepted off the request path, soon after.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let claim = app.transaction_claim(&ext).await;
        if claim
            .as_deref()
            .is_some_and(|c| c.starts_with(&format!("accepted|{call}|")))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "claim never marked accepted: {claim:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = app.post_transaction(&ext, &body).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.data()["original_api_call_id"], call.as_str());
    assert_eq!(again.data()["same_payload"], true);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_released_claim_takes_the_pending_status_it_wrote_with_it(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let cache = shared::cache::Cache::new(app.redis.clone(), &app.prefix);
    let merchant = app.merchant.merchant_id.clone();
    let pending = |call: &str| shared::cache::StatusRecord {
        merchant_id: merchant.clone(),
        status: shared::status::CallStatus::pending(
            call,
            shared::messages::CallType::Transaction,
            Utc::now(),
        ),
    };
    let claim = |ext: String, call: String| {
        let cache = cache.clone();
        let record = pending(&call);
        let merchant = merchant.clone();
        async move {
            let key = cache.names.claim(&merchant, "transaction", &ext);
            let positions = cache.seen_positions(&merchant, "transaction", &ext);
            let outcome = cache
                .claim(
                    &key,
                    &positions,
                    &call,
                    &"0".repeat(64),
                    None,
                    Some(&record),
                )
                .await
                .expect("claim");
            (key, outcome)
        }
    };
    let status_of = |call: String| {
        let cache = cache.clone();
        async move { cache.get_status(&call).await.expect("status") }
    };

    // A claim writes its call's PENDING status; giving the claim up drops it.
    let call = shared::ids::new_api_call_id();
    let (key, outcome) = claim(fresh_id(), call.clone()).await;
    assert!(matches!(outcome, shared::cache::ClaimOutcome::Claimed(_)));
    let written = status_of(call.clone()).await.expect("PENDING written");
    assert_eq!(written.status.status, shared::status::CallState::Pending);
    cache.release(&key, &call, true).await.expect("release");
    assert!(status_of(call.clone()).await.is_none());
    assert_eq!(app.transaction_claim_key(&key).await, None);

    // A claim refused (the id is taken) writes nothing for the refused call.
    let ext = fresh_id();
    let first = shared::ids::new_api_call_id();
    claim(ext.clone(), first.clone()).await;
    let second = shared::ids::new_api_call_id();
    let (_, outcome) = claim(ext, second.clone()).await;
    assert!(matches!(outcome, shared::cache::ClaimOutcome::Taken(_)));
    assert!(status_of(second).await.is_none());
    assert!(status_of(first).await.is_some());

    // Pointing a claim at MySQL's owner drops the losing call's status.
    let loser = shared::ids::new_api_call_id();
    let (key, _) = claim(fresh_id(), loser.clone()).await;
    cache
        .set_claim(&key, "API_CALL_owner", &"0".repeat(64), Some(&loser))
        .await
        .expect("set claim");
    assert!(status_of(loser).await.is_none());
    assert_eq!(
        app.transaction_claim_key(&key).await.as_deref(),
        Some(format!("accepted|API_CALL_owner|{}|0", "0".repeat(64)).as_str())
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_batch_of_marks_moves_only_the_claims_that_are_still_their_calls(pool: sqlx::MySqlPool) {
    use redis::AsyncCommands;
    let app = spawn_app_with(pool, 0).await;
    let cache = shared::cache::Cache::new(app.redis.clone(), &app.prefix);
    let mut redis = app.redis.clone();
    let merchant = app.merchant.merchant_id.clone();
    let sha = "0".repeat(64);
    let mut marks = Vec::new();
    for _ in 0..3 {
        let ext = fresh_id();
        let key = cache.names.claim(&merchant, "transaction", &ext);
        let positions = cache.seen_positions(&merchant, "transaction", &ext);
        let call = shared::ids::new_api_call_id();
        let outcome = cache
            .claim(&key, &positions, &call, &sha, None, None)
            .await
            .expect("claim");
        assert!(matches!(outcome, shared::cache::ClaimOutcome::Claimed(_)));
        marks.push((key, call));
    }
    // Meanwhile the second id was taken over by another call, and the third's claim is gone.
    let other = format!("publishing|API_CALL_other|{sha}|0");
    let _: () = redis.set(&marks[1].0, &other).await.expect("set");
    let _: () = redis.del(&marks[2].0).await.expect("del");

    cache.mark_accepted_many(&marks).await.expect("mark");

    let first: String = redis.get(&marks[0].0).await.expect("get");
    assert!(
        first.starts_with(&format!("accepted|{}|{sha}|", marks[0].1)),
        "{first}"
    );
    let ttl: i64 = redis.ttl(&marks[0].0).await.expect("ttl");
    assert!(ttl > 86_000, "the claim keeps its TTL: {ttl}");
    let second: String = redis.get(&marks[1].0).await.expect("get");
    assert_eq!(second, other, "another call's claim is left alone");
    let third: Option<String> = redis.get(&marks[2].0).await.expect("get");
    assert_eq!(third, None, "a mark recreates nothing");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn limits_are_exact_per_tenor(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "1182.50", "5000"]).await;

    // Over the limit: rejected, nothing debited.
    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "1000", "0", "1000", "0", 1),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "0.01", "0", "0.01", "0", 1),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.action(), "INSUFFICIENT_LIMIT");
    assert_eq!(r.data()["status"], "REJECTED");
    assert_eq!(r.data()["reason"], "INSUFFICIENT_LIMIT");

    // Exactly equal to the limit: approved, available 0.
    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "1000.00", "100.00", "900.00", "2.5", 3),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let limits = app.limits(&user).await;
    assert_eq!(limits["1"]["available"], "0.00");
    assert_eq!(limits["3"]["available"], "0.00");
    // Tenors are independent.
    assert_eq!(limits["2"]["available"], "2000.00");
    assert_eq!(limits["6"]["available"], "5000.00");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_and_locked_users_are_rejected(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body("USR_nobody", "1000", "0", "1000", "0", 1),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.action(), "USER_NOT_FOUND");

    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let body = br#"{"user_status":"LOCK"}"#;
    let lock = app
        .send(
            &app.admin,
            "PATCH",
            &format!("/users/{user}/status"),
            None,
            Some(body),
            &[],
        )
        .await;
    assert_eq!(lock.status, 200, "{}", lock.body);
    let r = submit_wait(
        &app,
        &app.merchant,
        &transaction_body(&user, "1000", "0", "1000", "0", 1),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.action(), "USER_NOT_ACTIVE");
    assert_eq!(app.limits(&user).await["1"]["available"], "100000.00");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_transactions_are_refused_before_anything_is_claimed(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let u = "USR_x";
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            transaction_body(u, "1000", "0", "1000", "0", 4),
            400,
            "TENOR_NOT_ALLOWED",
            "tenor",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 12),
            400,
            "TENOR_NOT_ALLOWED",
            "tenor",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 0),
            400,
            "TENOR_NOT_ALLOWED",
            "tenor",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 3)
                .replace("\"tenor\":3", "\"tenor\":3.0"),
            400,
            "INVALID_VALUE",
            "tenor",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 3)
                .replace("\"tenor\":3", "\"tenor\":3e0"),
            400,
            "INVALID_VALUE",
            "tenor",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 3)
                .replace("\"tenor\":3", "\"tenor\":\"3\""),
            400,
            "INVALID_VALUE",
            "tenor",
        ),
        (
            transaction_body(u, "0", "0", "1", "0", 1),
            400,
            "INVALID_VALUE",
            "otr",
        ),
        (
            transaction_body(u, "1000", "0", "1000.01", "0", 1),
            400,
            "INVALID_VALUE",
            "harga_aset",
        ),
        (
            transaction_body(u, "1000", "0", "0", "0", 1),
            400,
            "INVALID_VALUE",
            "harga_aset",
        ),
        (
            transaction_body(u, "1000", "-1", "1000", "0", 1),
            400,
            "INVALID_VALUE",
            "admin_fee",
        ),
        (
            transaction_body(u, "1000.001", "0", "1000", "0", 1),
            400,
            "INVALID_VALUE",
            "otr",
        ),
        (
            transaction_body(u, "1e30", "0", "1000", "0", 1),
            400,
            "INVALID_VALUE",
            "otr",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "100.0001", 1),
            400,
            "INVALID_VALUE",
            "bunga_persen",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "2.00001", 1),
            400,
            "INVALID_VALUE",
            "bunga_persen",
        ),
        (
            transaction_body(u, "0.05", "0", "0.05", "0", 6),
            400,
            "INVALID_VALUE",
            "tenor",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1).replace("Kulkas 2 Pintu", ""),
            400,
            "INVALID_VALUE",
            "nama_aset",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1)
                .replace("Kulkas 2 Pintu", &"x".repeat(201)),
            400,
            "INVALID_VALUE",
            "nama_aset",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1)
                .replace("\"user_id\":\"USR_x\"", "\"user_id\":\"\""),
            400,
            "INVALID_VALUE",
            "user_id",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1).replace("{", "{\"limit\":1,"),
            400,
            "INVALID_PAYLOAD_KEY",
            "limit",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1).replace("\"admin_fee\":0,", ""),
            400,
            "INVALID_MANDATORY",
            "admin_fee",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1)
                .replace("\"admin_fee\":0", "\"admin_fee\":null"),
            400,
            "INVALID_MANDATORY",
            "admin_fee",
        ),
        (
            transaction_body(u, "1000", "0", "1000", "0", 1)
                .replace("\"otr\":1000", "\"otr\":true"),
            400,
            "INVALID_VALUE",
            "otr",
        ),
    ];
    let ext = fresh_id();
    for (body, status, action, field) in &cases {
        let r = app
            .send(
                &app.merchant,
                "POST",
                "/transaction",
                Some(&ext),
                Some(body.as_bytes()),
                &[],
            )
            .await;
        assert_eq!(r.status, *status, "{body}: {}", r.body);
        assert_eq!(r.action(), *action, "{body}");
        assert!(
            r.message().contains(field),
            "{body}: message should name {field}: {}",
            r.body
        );
    }
    // Nothing was claimed: the same external id is still free.
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let good = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let r = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(good.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn one_external_id_gives_one_contract_under_concurrent_submissions(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let ext = fresh_id();
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let results = futures_util::future::join_all((0..20).map(|_| {
        app.send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(body.as_bytes()),
            &[],
        )
    }))
    .await;
    let accepted: Vec<&Resp> = results.iter().filter(|r| r.status == 202).collect();
    assert_eq!(
        accepted.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let original = accepted[0].body["api_call_id"].as_str().expect("id");
    for r in results.iter().filter(|r| r.status != 202) {
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.action(), "CONFLICT_EXTERNAL_ID");
        assert_eq!(r.data()["original_api_call_id"], original);
        assert_eq!(r.data()["same_payload"], true);
    }
    app.wait_final(&app.merchant, original).await;

    // Redis forgets everything of this deployment: the id is still used (MySQL remembers).
    forget_redis(&app).await;
    let again = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(body.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.data()["original_api_call_id"], original);
    // ... and the status of the original is still readable.
    let status = app.get(&app.merchant, &format!("/status/{original}")).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.data()["status"], "APPROVED");
    assert_eq!(contracts_with_external_id(&app.pool, &ext).await, 1);
    // The same external id on another endpoint or for another merchant is another id.
    let other = app
        .send(
            &app.other_merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(body.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(other.status, 202, "{}", other.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn limit_equation_holds_under_a_burst_with_two_workers(pool: sqlx::MySqlPool) {
    let mut app = spawn_app_with(pool, 2).await;
    app.add_worker();
    let users: Vec<String> = futures_util::future::join_all(
        (0..4).map(|_| app.create_user(["5000", "5000", "5000", "5000"])),
    )
    .await;
    let tenors = [1u32, 2, 3, 6];
    let amounts = ["100", "250.50", "99.99", "333.33", "1000"];
    let mut bodies = Vec::new();
    for i in 0..520usize {
        let user = &users[i % users.len()];
        let otr = amounts[i % amounts.len()];
        bodies.push(transaction_body(
            user,
            otr,
            "0",
            otr,
            "1.5",
            tenors[(i / 4) % 4],
        ));
    }
    let mut calls = Vec::new();
    for chunk in bodies.chunks(40) {
        let rs =
            futures_util::future::join_all(chunk.iter().map(|b| submit(&app, &app.merchant, b)))
                .await;
        for r in rs {
            assert_eq!(r.status, 202, "{}", r.body);
            calls.push(r.body["api_call_id"].as_str().expect("id").to_owned());
        }
    }
    let mut approved = 0;
    for call in &calls {
        let s = app.wait_final(&app.merchant, call).await;
        match s["status"].as_str() {
            Some("APPROVED") => approved += 1,
            Some("REJECTED") => assert_eq!(s["reason"], "INSUFFICIENT_LIMIT"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(approved > 0);
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_claim_orphaned_by_a_dead_ingress_is_taken_over_after_the_grace_period(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let ext = fresh_id();
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let now_ms = chrono::Utc::now().timestamp_millis();

    // An ingress claimed the id and died before the broker confirmed: a retry is not told
    // about a call that may never exist; it gets a 503 (retry is safe) …
    let fresh = format!("publishing|API_CALL_ghost|{}|{now_ms}", "0".repeat(64));
    app.set_transaction_claim(&ext, &fresh).await;
    // Its claim wrote its PENDING status, as every claim of a submit does.
    app.set_pending_status("API_CALL_ghost").await;
    let r = app.post_transaction(&ext, &body).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    // … and once the grace period has passed, the retry takes the claim over.
    let stale = format!(
        "publishing|API_CALL_ghost|{}|{}",
        "0".repeat(64),
        now_ms - 31_000
    );
    app.set_transaction_claim(&ext, &stale).await;
    let r = app.post_transaction(&ext, &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.wait_final(&app.merchant, &call).await["status"],
        "APPROVED"
    );
    // The orphaned call no longer reads as PENDING once taken over: it was never accepted.
    assert_eq!(
        app.get(&app.merchant, "/status/API_CALL_ghost")
            .await
            .status,
        404
    );
    // A request in flight elsewhere is waited for, then named: one 202, the rest 409.
    let again = app.post_transaction(&ext, &body).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.data()["original_api_call_id"], call.as_str());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn ids_that_cannot_exist_are_rejected_not_dead_lettered(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    // Valid strings for the ingress (1–128 characters), but no id has this shape.
    for user in ["USR_é", "用户", "a b", &"x".repeat(128)] {
        let body = transaction_body(user, "100", "0", "100", "0", 1);
        let r = app
            .send(
                &app.merchant,
                "POST",
                "/transaction",
                Some(&fresh_id()),
                Some(body.as_bytes()),
                &[("Prefer", "wait=10")],
            )
            .await;
        assert_eq!(r.status, 404, "{user}: {}", r.body);
        assert_eq!(r.action(), "USER_NOT_FOUND");
    }
    let body = serde_json::json!({"nomor_kontrak": "KTR_ü", "jumlah": 1});
    let r = app
        .post_wait(&app.admin, "/payment", &fresh_id(), &body)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.action(), "CONTRACT_NOT_FOUND");
    assert_eq!(dead_letter_count(&app.prefix).await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_retry_after_a_lost_confirm_resends_the_same_call(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    // Call X was published, but its confirm was lost with the connection: the ingress
    // answered 503 and left the claim "unconfirmed". X is in the queue all the same.
    let command = checkout_command(&app, &user);
    let (x, ext, sha) = (
        command.api_call_id.clone(),
        command.external_id.clone(),
        command.body_sha256.clone(),
    );
    let accepted_at = command.accepted_at;
    let claim = format!("unconfirmed|{x}|{sha}|{}", accepted_at.timestamp_millis());
    app.set_transaction_claim(&ext, &claim).await;
    publish_raw(
        &shared::amqp::Topology::new(&app.prefix).command_queue(),
        &[command.encode()],
    )
    .await;

    // A different body with that id is a conflict naming X.
    let other = transaction_body(&user, "999", "0", "999", "0", 1);
    let r = app.post_transaction(&ext, &other).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.data()["original_api_call_id"], x.as_str());
    // The merchant's retry re-sends X: the answer names X, and X is approved once.
    let r = app.post_transaction(&ext, &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.data()["status_url"], format!("/status/{x}"));
    let status = app.wait_final(&app.merchant, &x).await;
    assert_eq!(status["status"], "APPROVED", "{status}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(contracts_with_external_id(&app.pool, &ext).await, 1);
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM async_outcomes WHERE reason = 'DUPLICATE_EXTERNAL_ID'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(duplicates, 0, "no call ends as a duplicate of itself");
    assert_eq!(app.limits(&user).await["1"]["available"], "99000.00");
    app.shutdown().await;
}

/// A command as the ingress would publish it: a 1,000 checkout on tenor 1 for `user`.
fn checkout_command(app: &TestApp, user: &str) -> shared::messages::Command {
    use shared::messages::{COMMAND_SCHEMA_VERSION, Command, CommandPayload, TransactionPayload};
    let body = transaction_body(user, "1000", "0", "1000", "0", 1);
    Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: shared::ids::new_api_call_id(),
        merchant_id: app.merchant.merchant_id.clone(),
        client_id: app.merchant.client_id.clone(),
        external_id: fresh_id(),
        body_sha256: shared::signature::sha256_hex(body.as_bytes()),
        accepted_at: Utc::now(),
        reply_to: None,
        payload: CommandPayload::Transaction(TransactionPayload {
            user_id: user.to_owned(),
            terms: shared::contract::ContractTerms {
                otr: "1000".parse().expect("money"),
                admin_fee: "0".parse().expect("money"),
                harga_aset: "1000".parse().expect("money"),
                bunga_persen: shared::money::Rate::parse_json("0").expect("rate"),
                tenor: shared::contract::Tenor::One,
            },
            nama_aset: "Kulkas 2 Pintu".into(),
        }),
    }
}

/// The ingress sends the commands of concurrent requests in one message; the worker decides
/// each on its own. A message with one command that cannot be applied is dead-lettered whole,
/// and its good commands are decided all the same (a replay changes nothing).
#[sqlx::test(migrations = "../migrations")]
async fn a_message_carrying_a_group_of_commands_decides_each(pool: sqlx::MySqlPool) {
    use shared::messages::encode_group;
    let app = spawn_app_with(pool, 1).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let group: Vec<_> = (0..3).map(|_| checkout_command(&app, &user)).collect();
    let good = checkout_command(&app, &user);
    let mut poison = checkout_command(&app, &user);
    poison.body_sha256 = "not hex".into();

    publish_raw(
        &shared::amqp::Topology::new(&app.prefix).command_queue(),
        &[
            encode_group(group.iter().map(|c| c.encode()).collect()),
            encode_group(vec![good.encode(), poison.encode()]),
        ],
    )
    .await;

    // Published behind the ingress's back, these calls have no PENDING status: GET /status
    // answers 404 until the worker has decided them.
    for c in group.iter().chain([&good]) {
        let path = format!("/status/{}", c.api_call_id);
        let mut r = app.get(&app.merchant, &path).await;
        for _ in 0..100 {
            if r.status != 404 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            r = app.get(&app.merchant, &path).await;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.data()["status"], "APPROVED", "{}", r.body);
    }
    let contracts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE user_id = ?")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(contracts, 4, "three from the group, one beside the poison");
    assert_eq!(app.limits(&user).await["1"]["available"], "96000.00");
    assert_eq!(
        dead_letter_count_settled(&app.prefix, 1).await,
        1,
        "the message with the poison command, whole"
    );
    app.shutdown().await;
}
