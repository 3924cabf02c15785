//! Per-key rate limits (SPEC §3: 429 RATE_LIMITED with Retry-After), shared through Redis.

use crate::helpers::*;
use std::time::Duration;

#[sqlx::test(migrations = "../migrations")]
async fn a_key_over_its_limit_gets_429_while_another_key_is_served(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let limited = new_key(&app.pool, "slowshop", shared::db::keys::Role::Merchant).await;
    assert!(
        shared::db::keys::set_rate(&app.pool, &limited.client_id, Some(5), Some(5))
            .await
            .expect("set")
    );
    // Keys reload every 500 ms in tests.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let path = format!("/users/{user}/limits");
    let ts = now_ts();
    let burst = futures_util::future::join_all(
        (0..30).map(|_| app.send_at(&limited, "GET", &path, None, None, &[], &ts)),
    )
    .await;
    let ok = burst.iter().filter(|r| r.status == 200).count();
    let limited_count = burst.iter().filter(|r| r.status == 429).count();
    assert_eq!(ok + limited_count, 30, "only 200 or 429");
    assert!((5..=7).contains(&ok), "a burst of 5 passes, got {ok}");
    for r in burst.iter().filter(|r| r.status == 429) {
        assert_eq!(r.action(), "RATE_LIMITED");
        assert!(r.headers.contains_key("retry-after"));
        assert!(r.message().contains("5 requests per second"), "{}", r.body);
    }
    // The default key is not affected.
    let others = futures_util::future::join_all(
        (0..30).map(|_| app.send_at(&app.merchant, "GET", &path, None, None, &[], &ts)),
    )
    .await;
    assert!(others.iter().all(|r| r.status == 200));
    // A POST refused with 429 claimed nothing: after waiting it goes through with the same id.
    let ext = fresh_id();
    let body = transaction_body(&user, "100", "0", "100", "0", 1);
    let mut status = 429;
    for _ in 0..20 {
        let r = app
            .send(
                &limited,
                "POST",
                "/transaction",
                Some(&ext),
                Some(body.as_bytes()),
                &[],
            )
            .await;
        status = r.status;
        if status != 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 202);
    app.shutdown().await;
}

/// A submission spends its request in the same Redis call as its claim (one round trip), yet
/// SPEC §3's order holds: over the limit, a bad body gets 429, not 400; every submission,
/// accepted or refused by a body check, is counted exactly once; and a 429 claims nothing.
#[sqlx::test(migrations = "../migrations")]
async fn a_submission_is_counted_once_and_the_rate_limit_answers_before_its_body(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let limited = new_key(&app.pool, "tinyshop", shared::db::keys::Role::Merchant).await;
    // A burst of 4, then one more per second: the requests below take well under a second.
    assert!(
        shared::db::keys::set_rate(&app.pool, &limited.client_id, Some(1), Some(4))
            .await
            .expect("set")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let good = transaction_body(&user, "100", "0", "100", "0", 1);
    let bad = transaction_body(&user, "100", "0", "100", "0", 5);
    let post = |ext: String, body: String| {
        let app = &app;
        let limited = &limited;
        async move {
            app.send(
                limited,
                "POST",
                "/transaction",
                Some(&ext),
                Some(body.as_bytes()),
                &[],
            )
            .await
        }
    };
    // Within the allowance: two accepted, one refused by its body (it still counts).
    assert_eq!(post(fresh_id(), good.clone()).await.status, 202);
    let refused = post(fresh_id(), bad.clone()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.action(), "TENOR_NOT_ALLOWED");
    assert_eq!(post(fresh_id(), good.clone()).await.status, 202);
    // The fourth request is the last of the burst.
    let kept = fresh_id();
    assert_eq!(post(fresh_id(), good.clone()).await.status, 202);
    // Over the limit: the bad body and the good one both get 429, and nothing is claimed.
    let over_bad = post(fresh_id(), bad).await;
    assert_eq!(over_bad.status, 429, "{}", over_bad.body);
    assert_eq!(over_bad.action(), "RATE_LIMITED");
    let over_good = post(kept.clone(), good.clone()).await;
    assert_eq!(over_good.status, 429, "{}", over_good.body);
    let claim_key = format!(
        "{}:idem:{}:transaction:{kept}",
        app.prefix, limited.merchant_id
    );
    let claimed: Option<String> = redis::AsyncCommands::get(&mut app.redis.clone(), &claim_key)
        .await
        .expect("get");
    assert_eq!(claimed, None, "a 429 leaves the external id free");
    app.shutdown().await;
}

/// A key with a large allowance is taken 16 requests at a time (crate::rate::TAKE): still
/// one allowance in Redis, passed by at most 15 requests per ingress process, and every
/// request over it answered 429. Its requests arrive 50 at a time: its burst still passes
/// whole (less at most one take), also on a machine slow enough that what 50 takes at once
/// would hold outlives `rate::HOLD_FOR` unused.
#[sqlx::test(migrations = "../migrations")]
async fn a_large_allowance_taken_ahead_holds_its_limit_within_one_take(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let (per_second, burst) = (64u32, 1024u32);
    let (key, path) = key_with_rate_and_a_read(&app, "bigshop", per_second, burst).await;
    let ts = now_ts();
    let started = std::time::Instant::now();
    let (mut ok, mut limited) = (0usize, 0usize);
    // 3000 requests: over the limit as long as they take under (3000 - burst) / rate = 31 s,
    // which a slow, busy machine stays well within.
    let (waves, per_wave) = (60, 50);
    for _ in 0..waves {
        let wave = futures_util::future::join_all(
            (0..per_wave).map(|_| app.send_at(&key, "GET", &path, None, None, &[], &ts)),
        )
        .await;
        for r in wave {
            match r.status {
                200 => ok += 1,
                429 => {
                    assert_eq!(r.action(), "RATE_LIMITED");
                    limited += 1;
                }
                other => panic!("only 200 or 429, got {other}: {}", r.body),
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // What the limit admits over the run: the burst, then the rate.
    let admitted = f64::from(burst) + f64::from(per_second) * elapsed;
    let take = 16.0; // the ingress's rate::TAKE
    assert!(
        ok as f64 >= f64::from(burst) - (take - 1.0),
        "the burst passes (less at most one take left unused): {ok}"
    );
    assert!(
        ok as f64 <= admitted + take,
        "{ok} passed in {elapsed:.2} s, the limit admits {admitted:.0}"
    );
    assert_eq!(ok + limited, waves * per_wave);
    assert!(
        limited > 0,
        "{} requests in {elapsed:.2} s are over the limit",
        waves * per_wave
    );
    app.shutdown().await;
}

/// Requests of a large-allowance key that arrive together and find nothing held do not each
/// take ahead: what one take holds and nobody uses within `rate::HOLD_FOR` is lost to the
/// key, so fifty takes at once would spend 800 of its allowance to serve 50. Twelve waves of
/// 50 requests, each wave after the last one's holdings went stale, are 600 requests, well
/// inside a burst of 1024: none may be refused.
#[sqlx::test(migrations = "../migrations")]
async fn requests_arriving_together_spend_only_what_they_use_of_a_large_allowance(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let (key, path) = key_with_rate_and_a_read(&app, "wavyshop", 64, 1024).await;
    let ts = now_ts();
    for wave in 0..12 {
        let answers = futures_util::future::join_all(
            (0..50).map(|_| app.send_at(&key, "GET", &path, None, None, &[], &ts)),
        )
        .await;
        for r in answers {
            assert_eq!(
                r.status,
                200,
                "wave {wave}: {} of 600 requests against a burst of 1024",
                wave * 50
            );
        }
        // What this wave took ahead and did not use goes stale.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    app.shutdown().await;
}

/// A merchant key with its own rate (`per_second`, `burst`), in force once the ingress has
/// reloaded keys, and a read it may send: `GET /users/{user}/limits` of a new user.
async fn key_with_rate_and_a_read(
    app: &TestApp,
    name: &str,
    per_second: u32,
    burst: u32,
) -> (Key, String) {
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let key = new_key(&app.pool, name, shared::db::keys::Role::Merchant).await;
    assert!(
        shared::db::keys::set_rate(&app.pool, &key.client_id, Some(per_second), Some(burst))
            .await
            .expect("set")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (key, format!("/users/{user}/limits"))
}
