//! Real worker processes: several share the queue; one is SIGKILLed mid-burst; ten are
//! restarted while their batches wait; poison messages are dead-lettered while good ones flow;
//! a command queue declared by an earlier release keeps working.

use crate::helpers::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::time::Duration;

/// Nothing lost, nothing doubled: every call final, SPEC §5's equation for every user and
/// tenor, and one outcome per accepted call.
async fn assert_each_call_decided_once(app: &TestApp, calls: &[String]) {
    assert_all_final(app, calls).await;
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
}

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
    assert_each_call_decided_once(&app, &calls).await;
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
    assert_each_call_decided_once(&app, &calls).await;
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

/// Stops a worker process without blocking the runtime the ingress runs on: SIGKILL, or
/// SIGTERM and its exit status.
async fn stop_worker(worker: WorkerProcess, graceful: bool) {
    let status = tokio::task::spawn_blocking(move || {
        let mut worker = worker;
        if graceful {
            Some(worker.terminate())
        } else {
            worker.kill();
            None
        }
    })
    .await
    .expect("stopping the worker");
    if let Some(status) = status {
        assert!(status.success(), "worker exit status {status}");
    }
}

/// RabbitMQ 3.x counts every return of a delivery against the queue's delivery limit, a
/// killed worker's prefetch included. With every user's limit row locked by another
/// transaction, each worker's batch waits, so each of the first seven restarts (SIGKILL) hands
/// the same prefetched commands back; the last three (SIGTERM) stop while commands flow.
/// Valid commands are never dead-lettered: poison is the worker's decision alone.
#[sqlx::test(migrations = "../migrations")]
async fn ten_worker_restarts_under_load_dead_letter_nothing_and_every_call_ends_final(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let users: Vec<String> = futures_util::future::join_all(
        (0..4).map(|_| app.create_user(["20000", "20000", "20000", "20000"])),
    )
    .await;
    let mut calls = submit_burst(&app, &users, 600).await;

    let mut blocker = app.pool.begin().await.expect("transaction");
    sqlx::query("SELECT user_id FROM user_limit_balances FOR UPDATE")
        .fetch_all(&mut *blocker)
        .await
        .expect("limit rows locked");
    for _ in 0..7 {
        let worker = WorkerProcess::start(&app);
        // Long enough to connect and take a full prefetch; its first batch then waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop_worker(worker, false).await;
    }
    blocker.rollback().await.expect("locks released");

    let restarts = async {
        for _ in 0..3 {
            let worker = WorkerProcess::start(&app);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stop_worker(worker, true).await;
        }
    };
    // Commands keep arriving through the three graceful stops.
    let load = async {
        let mut more = Vec::new();
        for _ in 0..6 {
            more.extend(submit_burst(&app, &users, 50).await);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        more
    };
    let (more, ()) = tokio::join!(load, restarts);
    calls.extend(more);

    let _last = WorkerProcess::start(&app);
    assert_eq!(
        dead_letter_count(&app.prefix).await,
        0,
        "valid commands were dead-lettered"
    );
    assert_each_call_decided_once(&app, &calls).await;
    assert_eq!(dead_letter_count(&app.prefix).await, 0);
    app.shutdown().await;
}

/// The command queue as releases before the delivery limit of 1000 declared it. Quorum-queue
/// arguments cannot change, so deployments keep this queue until they recreate it.
async fn declare_command_queue_with_delivery_limit_5(prefix: &str) {
    let topology = shared::amqp::Topology::new(prefix);
    let mut args = FieldTable::default();
    let text = |s: String| AMQPValue::LongString(LongString::from(s));
    args.insert(ShortString::from("x-queue-type"), text("quorum".into()));
    args.insert(
        ShortString::from("x-delivery-limit"),
        AMQPValue::LongLongInt(5),
    );
    args.insert(
        ShortString::from("x-overflow"),
        text("reject-publish".into()),
    );
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        text(topology.dead_letter_exchange()),
    );
    args.insert(
        ShortString::from("x-dead-letter-routing-key"),
        text(topology.dead_letter_queue()),
    );
    args.insert(
        ShortString::from("x-dead-letter-strategy"),
        text("at-least-once".into()),
    );
    let conn = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-legacy")
        .await
        .expect("amqp");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_declare(
            topology.command_queue().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .expect("the old declaration");
    let _ = conn.close(200, "bye".into()).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_command_queue_declared_with_the_old_delivery_limit_keeps_working(pool: sqlx::MySqlPool) {
    let prefix = fresh_prefix();
    declare_command_queue_with_delivery_limit_5(&prefix).await;
    let conn = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-declare")
        .await
        .expect("amqp");
    let topology = shared::amqp::Topology::new(&prefix);
    assert_eq!(
        topology.declare(&conn).await.expect("declared"),
        shared::amqp::CommandQueue::OtherDeliveryLimit
    );
    let _ = conn.close(200, "bye".into()).await;

    // The ingress and a worker task declare it too, and a worker process besides.
    let app = spawn_app_on(pool, &prefix, 1, |_| {}).await;
    let _worker = WorkerProcess::start(&app);
    let user = app.create_user(["20000", "20000", "20000", "20000"]).await;
    let calls = submit_burst(&app, std::slice::from_ref(&user), 40).await;
    assert_all_final(&app, &calls).await;
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_new_command_queue_is_declared_with_the_current_arguments() {
    let prefix = fresh_prefix();
    let conn = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-declare")
        .await
        .expect("amqp");
    let topology = shared::amqp::Topology::new(&prefix);
    for _ in 0..2 {
        assert_eq!(
            topology.declare(&conn).await.expect("declared"),
            shared::amqp::CommandQueue::Current
        );
    }
    let _ = conn.close(200, "bye".into()).await;
    delete_queues(&prefix).await;
}
