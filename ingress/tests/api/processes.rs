//! Real worker processes: several share the queue; one is SIGKILLed mid-burst; poison
//! messages are dead-lettered while good ones flow.

use crate::helpers::*;
use std::time::Duration;

#[sqlx::test(migrations = "../migrations")]
async fn a_worker_killed_mid_burst_loses_and_doubles_nothing(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let users: Vec<String> = futures_util::future::join_all(
        (0..4).map(|_| app.create_user(["20000", "20000", "20000", "20000"])),
    )
    .await;
    let mut first = WorkerProcess::start(&app);
    let _second = WorkerProcess::start(&app);
    let calls = submit_burst(&app, &users, 500).await;
    // Kill one worker while the queue is still draining, then replace it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();
    let _third = WorkerProcess::start(&app);
    assert_all_final(&app, &calls).await;
    assert_limit_equation(&app.pool).await;
    let outcomes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM async_outcomes")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(
        outcomes,
        calls.len() as i64,
        "one outcome per accepted call"
    );
    assert_eq!(dead_letter_count(&app.prefix).await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn sigterm_finishes_the_batch_in_hand_and_exits_zero(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let users: Vec<String> = futures_util::future::join_all(
        (0..2).map(|_| app.create_user(["20000", "20000", "20000", "20000"])),
    )
    .await;
    let mut worker = WorkerProcess::start(&app);
    let calls = submit_burst(&app, &users, 200).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let status = worker.terminate();
    assert!(status.success(), "worker exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "worker took {:?} to stop",
        started.elapsed()
    );
    // What it did not take is still queued: a new worker finishes it, nothing applied twice.
    let _next = WorkerProcess::start(&app);
    assert_all_final(&app, &calls).await;
    assert_limit_equation(&app.pool).await;
    let outcomes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM async_outcomes")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(outcomes, calls.len() as i64);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn poison_messages_are_dead_lettered_while_good_ones_flow(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let topology = shared::amqp::Topology::new(&app.prefix);
    let good = app.get(&app.admin, &format!("/users/{user}/limits")).await;
    assert_eq!(good.status, 200);
    let valid_shape = serde_json::json!({
        "v": 1, "api_call_id": "API_CALL_poison", "merchant_id": "m", "client_id": "c", "external_id": "e",
        "body_sha256": "00", "accepted_at": "2026-01-01T00:00:00Z", "reply_to": null,
        "type": "TRANSACTION", "payload": {"user_id": user}
    });
    let mut unknown_type = valid_shape.clone();
    unknown_type["type"] = "REFUND".into();
    let mut unknown_version = valid_shape.clone();
    unknown_version["v"] = 99.into();
    publish_raw(
        &topology.command_queue(),
        &[
            b"\x00\x01 not json".to_vec(),
            unknown_type.to_string().into_bytes(),
            unknown_version.to_string().into_bytes(),
        ],
    )
    .await;
    let calls = submit_burst(&app, std::slice::from_ref(&user), 20).await;
    assert_all_final(&app, &calls).await;
    assert_eq!(dead_letter_count_settled(&app.prefix, 3).await, 3);
    app.shutdown().await;
}
