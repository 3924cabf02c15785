//! No request waits forever. MySQL is reached through a proxy that can stop forwarding, so
//! its connections hang rather than fail (as with a frozen server), without touching the
//! machine's shared MariaDB. Every request is still answered, in the envelope, with its
//! api call id and its audit row, and a `503` is safe to retry.

use crate::helpers::*;
use sqlx::MySqlPool;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to the test's MariaDB that forwards nothing while frozen.
struct FreezableProxy {
    port: u16,
    frozen: watch::Sender<bool>,
}

impl FreezableProxy {
    async fn start(pool: &MySqlPool) -> FreezableProxy {
        let options = pool.connect_options();
        let upstream = (options.get_host().to_owned(), options.get_port());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let (frozen, _) = watch::channel(false);
        let tx = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, tx.subscribe()));
                tokio::spawn(forward(server_read, client_write, tx.subscribe()));
            }
        });
        FreezableProxy { port, frozen }
    }

    /// A pool through the proxy. No ping before use: a frozen server must hang the statement
    /// itself, as a server that froze mid-query does.
    async fn pool(&self, pool: &MySqlPool) -> MySqlPool {
        let options = (*pool.connect_options())
            .clone()
            .host("127.0.0.1")
            .port(self.port);
        shared::db::pool_options(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .expect("a pool through the proxy")
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

/// Copies bytes one way, holding them while the proxy is frozen.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The answer, which must come rather than the request hanging (the limit is the test's
/// own, far above any deadline here; it says nothing of speed).
async fn answered(request: impl Future<Output = Resp>) -> Resp {
    tokio::time::timeout(Duration::from_secs(90), request)
        .await
        .expect("the request was answered rather than left waiting")
}

/// The HTTP status of the audit row of `api_call_id`, once it is written.
async fn audited_status(pool: &MySqlPool, api_call_id: &str) -> u16 {
    for _ in 0..600 {
        let status: Option<u16> =
            sqlx::query_scalar("SELECT http_status FROM api_call_logs WHERE api_call_id = ?")
                .bind(api_call_id)
                .fetch_optional(pool)
                .await
                .expect("audit read");
        if let Some(status) = status {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{api_call_id} has no audit row");
}

/// The app, with no worker, reaching MySQL through a proxy; its requests' deadline.
async fn behind_a_proxy(pool: &MySqlPool, request_timeout_ms: u64) -> (FreezableProxy, TestApp) {
    let proxy = FreezableProxy::start(pool).await;
    let app = spawn_app_configured(proxy.pool(pool).await, 0, |c| {
        c.request_timeout_ms = request_timeout_ms;
    })
    .await;
    (proxy, app)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_read_mysql_never_answers_is_answered_503_at_the_deadline_with_its_audit_row(
    pool: MySqlPool,
) {
    let (proxy, app) = behind_a_proxy(&pool, 2000).await;
    proxy.freeze();
    let r = answered(app.get(&app.admin, "/users/USR_frozen")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.action(), "SERVICE_UNAVAILABLE");
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    let api_call_id = r.body["api_call_id"].as_str().expect("api_call_id");
    assert_eq!(r.headers["x-api-call-id"], api_call_id);
    proxy.thaw();
    assert_eq!(audited_status(&pool, api_call_id).await, 503);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_submission_whose_lookup_mysql_never_answers_is_answered_503_and_its_retry_is_accepted(
    pool: MySqlPool,
) {
    let (proxy, app) = behind_a_proxy(&pool, 30_000).await;
    let body = transaction_body("USR_frozen", "1000", "100", "900", "2.5", 3);
    // A fresh deployment's filter of claimed ids is not complete (its rebuild reads MySQL),
    // so the claim asks MySQL whether the id was used.
    proxy.freeze();
    let r = answered(app.post_transaction("frozen-lookup", &body)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.action(), "SERVICE_UNAVAILABLE");
    proxy.thaw();
    // The claim was released: the retry with the same external id is accepted.
    let mut retry = answered(app.post_transaction("frozen-lookup", &body)).await;
    for _ in 0..30 {
        if retry.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        retry = answered(app.post_transaction("frozen-lookup", &body)).await;
    }
    assert_eq!(retry.status, 202, "{}", retry.body);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_claiming_request_past_its_deadline_still_finishes_and_settles_its_claim(
    pool: MySqlPool,
) {
    let (proxy, app) = behind_a_proxy(&pool, 2000).await;
    let body = user_body("3201234567890123", ["100000", "200000", "300000", "400000"]);
    let external_id = fresh_id();
    proxy.freeze();
    let first = answered(app.post(&app.admin, "/create-user", &external_id, &body)).await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(first.action(), "SERVICE_UNAVAILABLE");
    let first_call = first.body["api_call_id"].as_str().expect("api_call_id");
    proxy.thaw();
    // The creation ran on in its own task once MySQL answered: the retry is told the id is
    // used, by that very call, with the same body (not a second user, not a taken-over claim).
    let mut retry = answered(app.post(&app.admin, "/create-user", &external_id, &body)).await;
    for _ in 0..30 {
        if retry.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        retry = answered(app.post(&app.admin, "/create-user", &external_id, &body)).await;
    }
    assert_eq!(retry.status, 409, "{}", retry.body);
    assert_eq!(retry.action(), "CONFLICT_EXTERNAL_ID");
    assert_eq!(retry.data()["original_api_call_id"], first_call);
    assert_eq!(retry.data()["same_payload"], true);
    app.shutdown().await;
}
