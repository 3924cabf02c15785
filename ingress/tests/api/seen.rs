//! The filter of claimed external ids (`ingress::seen`, `shared::cache::seen_positions`)
//! against the real Redis and MariaDB: it proves fresh ids new, never an id MySQL holds,
//! and a rebuild after Redis lost it restores every id from MySQL.

use crate::helpers::{
    TEST_SEEN_BITS, contracts_with_external_id, forget_prefix, fresh_id, ingress_config, spawn_app,
    transaction_body,
};
use shared::cache::{Cache, ClaimOutcome, Seen};
use std::time::Duration;

/// Claims (merchant, "transaction", id) straight in Redis under `cache`'s prefix.
async fn claim(cache: &Cache, merchant: &str, external_id: &str) -> ClaimOutcome {
    let key = cache.names.claim(merchant, "transaction", external_id);
    let positions = cache.seen_positions(merchant, "transaction", external_id);
    cache
        .claim(&key, &positions, &fresh_id(), &"0".repeat(64), None, None)
        .await
        .expect("claim")
}

/// The filter is not marked complete: no claim is proved new, MySQL decides.
async fn assert_incomplete(cache: &Cache, merchant: &str) {
    assert!(!cache.seen_complete().await.expect("redis"));
    assert!(matches!(
        claim(cache, merchant, &fresh_id()).await,
        ClaimOutcome::Claimed(Seen::Unknown)
    ));
}

async fn forget_key(redis: &redis::aio::ConnectionManager, key: &str) {
    let mut c = redis.clone();
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut c)
        .await
        .expect("del");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_id_mysql_holds_is_refused_when_redis_forgot_its_claim_but_not_the_filter(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let cache = Cache::new(app.redis.clone(), &app.prefix).with_seen_bits(TEST_SEEN_BITS);
    // The ingress rebuilds the (missing) filter of its fresh prefix at start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cache.seen_complete().await.expect("redis") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the filter was never rebuilt"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let merchant = app.merchant.merchant_id.clone();
    assert!(matches!(
        claim(&cache, &merchant, &fresh_id()).await,
        ClaimOutcome::Claimed(Seen::New)
    ));

    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let ext = fresh_id();
    let first = app
        .post_transaction(&ext, &transaction_body(&user, "1000", "0", "1000", "0", 1))
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    let original = first.body["api_call_id"].as_str().expect("id").to_owned();
    app.wait_final(&app.merchant, &original).await;

    // Redis loses this one claim (expired, evicted) but keeps the filter: the filter cannot
    // prove the id new, so MySQL is asked and the id stays used.
    forget_key(
        &app.redis,
        &cache.names.claim(&merchant, "transaction", &ext),
    )
    .await;
    let again = app
        .post_transaction(&ext, &transaction_body(&user, "2000", "0", "2000", "0", 1))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.action(), "CONFLICT_EXTERNAL_ID");
    assert_eq!(again.data()["original_api_call_id"], original.as_str());
    assert_eq!(again.data()["same_payload"], false);
    // Its claim wrote its PENDING status; refused, it has none.
    let refused = again.body["api_call_id"].as_str().expect("id");
    assert_eq!(
        app.get(&app.merchant, &format!("/status/{refused}"))
            .await
            .status,
        404
    );
    assert_eq!(contracts_with_external_id(&app.pool, &ext).await, 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rebuild_restores_every_id_mysql_holds_and_only_then_marks_the_filter_complete(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let mut used = Vec::new();
    for _ in 0..3 {
        let ext = fresh_id();
        let r = app
            .post_transaction(&ext, &transaction_body(&user, "1000", "0", "1000", "0", 1))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        app.wait_final(&app.merchant, r.body["api_call_id"].as_str().expect("id"))
            .await;
        used.push(ext);
    }
    let merchant = app.merchant.merchant_id.clone();

    // A Redis that has lost everything, as after a restart: a prefix no ingress uses, over
    // the same MySQL rows.
    let cache = Cache::new(app.redis.clone(), &format!("{}-lost", app.prefix))
        .with_seen_bits(TEST_SEEN_BITS);
    assert_incomplete(&cache, &merchant).await;

    // A rebuild whose lock is lost meanwhile (Redis lost it again) does not mark it complete.
    assert!(
        cache
            .lock_seen_rebuild("a", Duration::from_secs(60))
            .await
            .expect("lock")
    );
    forget_key(&app.redis, &cache.names.seen_rebuild()).await;
    let lost = ingress::seen::rebuild(&app.pool, &cache, "a", Duration::ZERO)
        .await
        .expect("rebuild");
    assert_eq!(lost, None);
    assert!(!cache.seen_complete().await.expect("redis"));

    assert!(
        cache
            .lock_seen_rebuild("b", Duration::from_secs(60))
            .await
            .expect("lock")
    );
    let read = ingress::seen::rebuild(&app.pool, &cache, "b", Duration::ZERO)
        .await
        .expect("rebuild");
    // Every used id: these transactions' and the user's own (POST /create-user claims one).
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(read, Some(rows as u64));
    assert_eq!(rows, used.len() as i64 + 1);
    assert!(cache.seen_complete().await.expect("redis"));
    // Every id MySQL holds has its bits again; a fresh one is proved new.
    for ext in &used {
        assert!(matches!(
            claim(&cache, &merchant, ext).await,
            ClaimOutcome::Claimed(Seen::Maybe)
        ));
    }
    assert!(matches!(
        claim(&cache, &merchant, &fresh_id()).await,
        ClaimOutcome::Claimed(Seen::New)
    ));
    forget_key(&app.redis, cache.names.seen()).await;
    app.shutdown().await;
}

/// `mark_seen` (what a worker does before each batch) sets every bit of every id of a batch
/// larger than a worker's and than one of its commands (1024 ids), and no other id's: with
/// the filter complete, each marked id claims as "maybe", a fresh one is still proved new.
#[tokio::test]
async fn mark_seen_sets_every_bit_of_every_id_it_is_given() {
    let config = ingress_config(&format!("xyztest-seen-{}", fresh_id()));
    let redis = shared::cache::connect(&config.redis.url).expect("redis");
    let cache = Cache::new(redis.clone(), &config.redis.prefix).with_seen_bits(TEST_SEEN_BITS);
    let merchant = "m-seen";
    let marked: Vec<String> = (0..1100).map(|_| fresh_id()).collect();
    let positions: Vec<_> = marked
        .iter()
        .map(|ext| cache.seen_positions(merchant, "transaction", ext))
        .collect();
    cache.mark_seen(&positions).await.expect("mark_seen");
    // Marking is not completing: until bit 0 is set, no claim is proved new.
    assert_incomplete(&cache, merchant).await;
    assert!(
        cache
            .lock_seen_rebuild("t", Duration::from_secs(60))
            .await
            .expect("lock")
    );
    assert!(cache.complete_seen("t").await.expect("complete"));

    for ext in &marked {
        assert!(
            matches!(
                claim(&cache, merchant, ext).await,
                ClaimOutcome::Claimed(Seen::Maybe)
            ),
            "{ext} was marked but a bit is clear"
        );
    }
    // 1100 ids set at most 7700 of 65,536 bits: a fresh id has all 7 set with odds ~3e-7.
    for _ in 0..20 {
        assert!(matches!(
            claim(&cache, merchant, &fresh_id()).await,
            ClaimOutcome::Claimed(Seen::New)
        ));
    }
    forget_prefix(&redis, &config.redis.prefix).await;
}
