//! API keys when MySQL is away and when a key changes: a key set that cannot be refreshed is
//! not trusted (503, never a guess), and a revocation lands on every ingress at once.

use crate::helpers::*;
use ingress::startup::Application;
use reqwest::Method;
use shared::client::SignedClient;
use shared::db::keys::Role;
use std::time::Duration;
use tokio::sync::oneshot;

/// An ingress of its own on `prefix`, with `config` adjusted; stopped by the sender.
async fn ingress(
    pool: sqlx::MySqlPool,
    prefix: &str,
    adjust: impl FnOnce(&mut ingress::config::IngressConfig),
) -> (SignedClient, oneshot::Sender<()>) {
    let mut config = ingress_config(prefix);
    adjust(&mut config);
    let app = Application::build(config, Some(pool))
        .await
        .expect("ingress builds");
    let client = SignedClient::new(
        reqwest::Client::new(),
        &format!("http://127.0.0.1:{}", app.port()),
    );
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    (client, tx)
}

/// The status of a signed `GET /nope` (a route that touches nothing: 404 when the key holds).
async fn probe(client: &SignedClient, key: &Key) -> (u16, String) {
    let r = client
        .request(key.credentials(), Method::GET, "/nope")
        .send()
        .await
        .expect("request sent");
    let action = r
        .json()
        .ok()
        .and_then(|v| v["message_action"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (r.status, action)
}

/// Polls `probe` until it answers `status`, for at most 10 s; the last answer.
async fn until(client: &SignedClient, key: &Key, status: u16) -> (u16, String) {
    let mut last = probe(client, key).await;
    for _ in 0..100 {
        if last.0 == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = probe(client, key).await;
    }
    last
}

#[sqlx::test(migrations = "../migrations")]
async fn an_ingress_started_while_mysql_is_down_answers_503_not_401(pool: sqlx::MySqlPool) {
    let key = new_key(&pool, "platform", Role::Admin).await;
    let unreachable = sqlx::mysql::MySqlPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("mysql://root@127.0.0.1:1/none")
        .expect("a lazy pool");
    let prefix = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (client, stop) = ingress(unreachable, &prefix, |_| {}).await;
    let (status, action) = probe(&client, &key).await;
    assert_eq!(
        (status, action.as_str()),
        (503, "SERVICE_UNAVAILABLE"),
        "with no key set the ingress cannot tell a valid key from a revoked one"
    );
    let _ = stop.send(());
    delete_queues(&prefix).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn keys_not_refreshed_within_the_bound_are_not_trusted(pool: sqlx::MySqlPool) {
    let key = new_key(&pool, "platform", Role::Admin).await;
    let prefix = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (client, stop) = ingress(pool.clone(), &prefix, |c| {
        c.key_refresh_ms = 200;
        c.key_stale_after_ms = 1_000;
    })
    .await;
    assert_eq!(probe(&client, &key).await.0, 404, "the key holds");
    // MySQL goes away for this ingress: its last key set must stop being trusted.
    pool.close().await;
    let (status, action) = until(&client, &key, 503).await;
    assert_eq!((status, action.as_str()), (503, "SERVICE_UNAVAILABLE"));
    let _ = stop.send(());
    delete_queues(&prefix).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_revoked_key_is_refused_at_once_by_every_ingress(pool: sqlx::MySqlPool) {
    let key = new_key(&pool, "tokopedia", Role::Merchant).await;
    let prefix = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    // No periodic reload within the test: only the announcement can bring the revocation.
    let slow = |c: &mut ingress::config::IngressConfig| {
        c.key_refresh_ms = 600_000;
        c.key_stale_after_ms = 1_200_000;
    };
    let (first, stop_first) = ingress(pool.clone(), &prefix, slow).await;
    let (second, stop_second) = ingress(pool.clone(), &prefix, slow).await;
    for client in [&first, &second] {
        assert_eq!(probe(client, &key).await.0, 404, "the key holds");
    }
    // What `xyzctl keys revoke` does: revoke in MySQL, then announce on Redis.
    assert!(
        shared::db::keys::revoke_key(&pool, &key.client_id)
            .await
            .expect("revoked")
    );
    let redis = shared::cache::connect("redis://127.0.0.1:6379").expect("redis");
    let listeners = shared::cache::Cache::new(redis, &prefix)
        .announce_key_change(&key.client_id)
        .await
        .expect("announced");
    assert_eq!(listeners, 2, "both ingresses listen");
    for client in [&first, &second] {
        let (status, action) = until(client, &key, 401).await;
        assert_eq!((status, action.as_str()), (401, "INVALID_SIGNATURE"));
    }
    let _ = stop_first.send(());
    let _ = stop_second.send(());
    delete_queues(&prefix).await;
}
