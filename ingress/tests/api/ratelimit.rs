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
