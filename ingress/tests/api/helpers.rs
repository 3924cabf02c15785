//! `spawn_app()` and signed requests (`shared::client`, the signer of loadgen and xyzctl).

use ingress::config::IngressConfig;
use ingress::startup::Application;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::client::{Credentials, SignedClient};
use shared::db::keys::{Role, create_key};
use sqlx::MySqlPool;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct Key {
    pub client_id: String,
    pub secret: String,
    pub merchant_id: String,
}

impl Key {
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            client_id: &self.client_id,
            secret: &self.secret,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub pool: MySqlPool,
    pub admin: Key,
    pub merchant: Key,
    pub other_merchant: Key,
    pub prefix: String,
    pub http: reqwest::Client,
    pub redis: redis::aio::ConnectionManager,
    ingress_stop: Option<oneshot::Sender<()>>,
    worker_stop: Vec<oneshot::Sender<()>>,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn action(&self) -> &str {
        self.body["message_action"].as_str().unwrap_or("")
    }

    pub fn data(&self) -> &Value {
        &self.body["message_data"]
    }

    pub fn message(&self) -> String {
        self.body["message_data"].to_string()
    }
}

/// The filter size of test deployments (8 KiB of Redis each).
pub const TEST_SEEN_BITS: u64 = 1 << 16;

pub fn ingress_config(prefix: &str) -> IngressConfig {
    use clap::Parser;
    let mut c = IngressConfig::parse_from(["ingress"]);
    c.listen_addr = "127.0.0.1:0".into();
    c.redis.prefix = prefix.into();
    // A small filter of claimed ids: every test deployment leaves its own in Redis.
    c.redis.seen_filter_bits = TEST_SEEN_BITS;
    c.amqp.prefix = prefix.into();
    c.key_refresh_ms = 500;
    // Audit rows MySQL cannot take: the test's own file, out of the source tree.
    c.audit_spill_path = std::env::temp_dir().join(format!("xyz-audit-spill-{prefix}.jsonl"));
    c
}

pub fn worker_config(prefix: &str) -> worker::config::WorkerConfig {
    use clap::Parser;
    let mut c = worker::config::WorkerConfig::parse_from(["worker"]);
    c.redis.prefix = prefix.into();
    // A small filter of claimed ids: every test deployment leaves its own in Redis.
    c.redis.seen_filter_bits = TEST_SEEN_BITS;
    c.amqp.prefix = prefix.into();
    // Tests close business dates themselves (xyzctl close-of-business).
    c.cob_enabled = false;
    c
}

pub async fn new_key(pool: &MySqlPool, name: &str, role: Role) -> Key {
    let keyring = ingress_config("x").crypto.keyring().expect("dev keyring");
    let client_id = shared::ids::new_client_id();
    let secret = shared::crypto::random_token(32).expect("random");
    let merchant_id = create_key(pool, &keyring, &client_id, name, role, &secret)
        .await
        .expect("key created");
    Key {
        client_id,
        secret,
        merchant_id,
    }
}

/// The app with `workers` worker tasks.
pub async fn spawn_app_with(pool: MySqlPool, workers: usize) -> TestApp {
    spawn_app_on(pool, &fresh_prefix(), workers, |_| {}).await
}

/// A queue and Redis key prefix of a test's own.
pub fn fresh_prefix() -> String {
    format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The app with `workers` worker tasks, its ingress configured by `configure`.
pub async fn spawn_app_configured(
    pool: MySqlPool,
    workers: usize,
    configure: impl FnOnce(&mut IngressConfig),
) -> TestApp {
    spawn_app_on(pool, &fresh_prefix(), workers, configure).await
}

/// The app on a prefix chosen by the test (which may have declared queues under it first),
/// its ingress configured by `configure`.
pub async fn spawn_app_on(
    pool: MySqlPool,
    prefix: &str,
    workers: usize,
    configure: impl FnOnce(&mut IngressConfig),
) -> TestApp {
    shared::telemetry::init("warn");
    let prefix = prefix.to_owned();
    let admin = new_key(&pool, "platform", Role::Admin).await;
    let merchant = new_key(&pool, "tokopedia", Role::Merchant).await;
    let other_merchant = new_key(&pool, "shopee", Role::Merchant).await;
    let mut config = ingress_config(&prefix);
    configure(&mut config);
    let app = Application::build(config, Some(pool.clone()))
        .await
        .expect("ingress builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let mut worker_stop = Vec::new();
    for _ in 0..workers {
        worker_stop.push(spawn_worker(&pool, &prefix));
    }
    let redis = shared::cache::connect("redis://127.0.0.1:6379").expect("redis");
    let test_app = TestApp {
        base,
        pool,
        admin,
        merchant,
        other_merchant,
        prefix,
        http: reqwest::Client::new(),
        redis,
        ingress_stop: Some(tx),
        worker_stop,
    };
    test_app.wait_ready().await;
    test_app
}

pub fn spawn_worker(pool: &MySqlPool, prefix: &str) -> oneshot::Sender<()> {
    spawn_worker_on(Some(pool.clone()), worker_config(prefix))
}

/// A worker task with `config`; on its own pool from `config.database` when `pool` is None.
pub fn spawn_worker_on(
    pool: Option<MySqlPool>,
    config: worker::config::WorkerConfig,
) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = worker::run(config, pool, async {
            let _ = rx.await;
        })
        .await;
    });
    tx
}

pub async fn spawn_app(pool: MySqlPool) -> TestApp {
    spawn_app_with(pool, 1).await
}

pub fn now_ts() -> String {
    chrono::Utc::now().timestamp().to_string()
}

impl TestApp {
    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the app never became ready");
    }

    /// A signed request; `headers` are added after signing.
    pub async fn send(
        &self,
        key: &Key,
        method: &str,
        path: &str,
        external_id: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send_at(key, method, path, external_id, body, headers, &now_ts())
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn send_at(
        &self,
        key: &Key,
        method: &str,
        path: &str,
        external_id: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
        timestamp: &str,
    ) -> Resp {
        self.send_via(
            &self.base,
            key,
            method,
            path,
            external_id,
            body,
            headers,
            timestamp,
        )
        .await
    }

    /// A signed request to another base URL (nginx, another ingress).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_via(
        &self,
        base: &str,
        key: &Key,
        method: &str,
        path: &str,
        external_id: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
        timestamp: &str,
    ) -> Resp {
        let client = SignedClient::new(self.http.clone(), base);
        let mut request = client
            .request(key.credentials(), method.parse().expect("method"), path)
            .external_id(external_id)
            .body(body.unwrap_or(b""))
            .timestamp(timestamp);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let r = request.send().await.expect("request sent");
        let body = r
            .json()
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", r.status, r.text()));
        Resp {
            status: r.status,
            body,
            headers: r.headers,
        }
    }

    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        Resp {
            status,
            body,
            headers,
        }
    }

    /// POST /transaction with the merchant key.
    pub async fn post_transaction(&self, external_id: &str, body: &str) -> Resp {
        self.send(
            &self.merchant,
            "POST",
            "/transaction",
            Some(external_id),
            Some(body.as_bytes()),
            &[],
        )
        .await
    }

    /// Writes the Redis claim of one of the merchant's transaction external ids, as an
    /// ingress would have left it (`state|api_call_id|body_sha256|claimed_at_ms`).
    /// The claim of `external_id` on `/transaction` as Redis holds it.
    pub async fn transaction_claim(&self, external_id: &str) -> Option<String> {
        let key = shared::cache::RedisNames::new(&self.prefix).claim(
            &self.merchant.merchant_id,
            "transaction",
            external_id,
        );
        self.transaction_claim_key(&key).await
    }

    /// A claim as Redis holds it, by its key.
    pub async fn transaction_claim_key(&self, key: &str) -> Option<String> {
        let mut c = self.redis.clone();
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("claim get")
    }

    /// Writes `api_call_id`'s cached status as a claim leaves it: PENDING.
    pub async fn set_pending_status(&self, api_call_id: &str) {
        let record = shared::cache::StatusRecord {
            merchant_id: self.merchant.merchant_id.clone(),
            status: shared::status::CallStatus::pending(
                api_call_id,
                shared::messages::CallType::Transaction,
                chrono::Utc::now(),
            ),
        };
        let mut c = self.redis.clone();
        let _: () = redis::cmd("SET")
            .arg(shared::cache::RedisNames::new(&self.prefix).status(api_call_id))
            .arg(serde_json::to_string(&record).expect("json"))
            .arg("EX")
            .arg(600)
            .query_async(&mut c)
            .await
            .expect("status set");
    }

    pub async fn set_transaction_claim(&self, external_id: &str, value: &str) {
        let key = format!(
            "{}:idem:{}:transaction:{external_id}",
            self.prefix, self.merchant.merchant_id
        );
        let mut c = self.redis.clone();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("EX")
            .arg(600)
            .query_async(&mut c)
            .await
            .expect("claim set");
    }

    pub async fn get(&self, key: &Key, path: &str) -> Resp {
        self.send(key, "GET", path, None, None, &[]).await
    }

    pub async fn post(&self, key: &Key, path: &str, external_id: &str, body: &Value) -> Resp {
        let bytes = body.to_string();
        self.send(
            key,
            "POST",
            path,
            Some(external_id),
            Some(bytes.as_bytes()),
            &[],
        )
        .await
    }

    pub async fn post_wait(&self, key: &Key, path: &str, external_id: &str, body: &Value) -> Resp {
        let bytes = body.to_string();
        self.send(
            key,
            "POST",
            path,
            Some(external_id),
            Some(bytes.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await
    }

    /// Creates a user with the given granted limits (tenors 1, 2, 3, 6).
    pub async fn create_user(&self, limits: [&str; 4]) -> String {
        let nik = format!("32{:014}", rand_u64() % 100_000_000_000_000);
        let body = user_body(&nik, limits);
        let r = self
            .post(&self.admin, "/create-user", &fresh_id(), &body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.data()["user_id"].as_str().expect("user_id").to_owned()
    }

    /// Polls `GET /status` until the call is final.
    pub async fn wait_final(&self, key: &Key, api_call_id: &str) -> Value {
        for _ in 0..300 {
            let r = self.get(key, &format!("/status/{api_call_id}")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            if r.data()["status"] != "PENDING" {
                return r.data().clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{api_call_id} never became final");
    }

    pub async fn limits(&self, user_id: &str) -> Value {
        let r = self
            .get(&self.admin, &format!("/users/{user_id}/limits"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.data()["limits"].clone()
    }

    /// Stops the workers and the ingress, and deletes this test's queues.
    pub async fn shutdown(mut self) {
        for tx in self.worker_stop.drain(..) {
            let _ = tx.send(());
        }
        if let Some(tx) = self.ingress_stop.take() {
            let _ = tx.send(());
        }
        delete_queues(&self.prefix).await;
    }

    pub fn add_worker(&mut self) {
        let tx = spawn_worker(&self.pool, &self.prefix);
        self.worker_stop.push(tx);
    }

    /// A worker task on the app's prefix, configured by `configure`, on its own pool from
    /// its `DATABASE_URL` (not the test's pool).
    pub fn add_worker_configured(
        &mut self,
        configure: impl FnOnce(&mut worker::config::WorkerConfig),
    ) {
        let mut config = worker_config(&self.prefix);
        configure(&mut config);
        let tx = spawn_worker_on(None, config);
        self.worker_stop.push(tx);
    }
}

pub async fn delete_queues(prefix: &str) {
    let Ok(conn) =
        shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-cleanup").await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let t = shared::amqp::Topology::new(prefix);
        for q in [t.command_queue(), t.dead_letter_queue()] {
            let _ = ch
                .queue_delete(q.into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = ch
            .exchange_delete(
                t.dead_letter_exchange().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
    let _ = conn.close(200, "bye".into()).await;
}

pub fn rand_u64() -> u64 {
    let b = *uuid::Uuid::new_v4().as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

pub fn fresh_id() -> String {
    format!("EXT-{}", uuid::Uuid::new_v4().simple())
}

pub fn user_body(nik: &str, limits: [&str; 4]) -> Value {
    json!({
        "nik": nik,
        "full_name": "Budi Santoso",
        "legal_name": "Budi Santoso",
        "tempat_lahir": "Bandung",
        "tanggal_lahir": "1997-03-02",
        "gaji": 12000000,
        "foto_ktp": "https://cdn.example.com/ktp.jpg",
        "foto_selfie": "https://cdn.example.com/selfie.jpg",
        "limit_one_month": limits[0].parse::<serde_json::Number>().expect("number"),
        "limit_two_month": limits[1].parse::<serde_json::Number>().expect("number"),
        "limit_three_month": limits[2].parse::<serde_json::Number>().expect("number"),
        "limit_sixth": limits[3].parse::<serde_json::Number>().expect("number"),
    })
}

pub fn transaction_body(
    user_id: &str,
    otr: &str,
    fee: &str,
    aset: &str,
    rate: &str,
    tenor: u32,
) -> String {
    format!(
        r#"{{"user_id":"{user_id}","otr":{otr},"admin_fee":{fee},"harga_aset":{aset},"bunga_persen":{rate},"tenor":{tenor},"nama_aset":"Kulkas 2 Pintu"}}"#
    )
}

/// An approved contract (the merchant's, waited for), `harga_aset` = `otr`.
pub async fn contract(
    app: &TestApp,
    user: &str,
    otr: &str,
    fee: &str,
    rate: &str,
    tenor: u32,
) -> Value {
    let body = transaction_body(user, otr, fee, otr, rate, tenor);
    let r = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.data()["result"].clone()
}

/// POST /payment with the admin key, waited for.
pub async fn pay(app: &TestApp, nomor: &str, jumlah: &str) -> Resp {
    let body: Value = serde_json::from_str(&format!(
        r#"{{"nomor_kontrak":"{nomor}","jumlah":{jumlah}}}"#
    ))
    .expect("json");
    app.post_wait(&app.admin, "/payment", &fresh_id(), &body)
        .await
}

/// The worker binary next to this test binary (target/debug/worker); `scripts/test.sh`
/// builds every binary of the workspace first.
fn worker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("worker");
    assert!(
        bin.exists(),
        "{} missing: run the tests with scripts/test.sh (it builds all binaries)",
        bin.display()
    );
    bin
}

pub fn database_url(pool: &sqlx::MySqlPool) -> String {
    let opts = pool.connect_options();
    let db = opts.get_database().expect("test database name");
    format!("mysql://root@127.0.0.1:3306/{db}")
}

pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    pub fn start(app: &TestApp) -> WorkerProcess {
        WorkerProcess::start_with(app, &[])
    }

    /// A worker process with these environment variables besides the test's own.
    pub fn start_with(app: &TestApp, env: &[(&str, &str)]) -> WorkerProcess {
        let child = Command::new(worker_binary())
            .envs(env.iter().copied())
            .env("DATABASE_URL", database_url(&app.pool))
            .env("AMQP_PREFIX", &app.prefix)
            .env("REDIS_PREFIX", &app.prefix)
            .env("WORKER_CONCURRENCY", "2")
            .env("METRICS_ADDR", "")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts");
        WorkerProcess(child)
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        self.0.wait().expect("worker exits")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn submit_burst(app: &TestApp, users: &[String], n: usize) -> Vec<String> {
    let mut calls = Vec::with_capacity(n);
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            transaction_body(
                &users[i % users.len()],
                "150.25",
                "0",
                "150.25",
                "1",
                [1, 2, 3, 6][i % 4],
            )
        })
        .collect();
    for chunk in bodies.chunks(25) {
        let ids: Vec<String> = chunk.iter().map(|_| fresh_id()).collect();
        let rs = futures_util::future::join_all(chunk.iter().zip(&ids).map(|(b, id)| {
            app.send(
                &app.merchant,
                "POST",
                "/transaction",
                Some(id),
                Some(b.as_bytes()),
                &[],
            )
        }))
        .await;
        for r in rs {
            assert_eq!(r.status, 202, "{}", r.body);
            calls.push(r.body["api_call_id"].as_str().expect("id").to_owned());
        }
    }
    calls
}

pub async fn assert_all_final(app: &TestApp, calls: &[String]) {
    for call in calls {
        let s = app.wait_final(&app.merchant, call).await;
        assert!(
            s["status"] == "APPROVED" || s["reason"] == "INSUFFICIENT_LIMIT",
            "{s}"
        );
    }
}

/// The dead-letter queue's message count once it is `expected`, or the last count read after
/// 10 s: a quorum queue's count, read with a passive declare, lags behind publishes and
/// settles for a moment.
/// Publishes each payload to `queue` as a persistent message, behind the ingress's back, and
/// returns once the broker has confirmed every one (they are in the queue).
pub async fn publish_raw(queue: &str, payloads: &[Vec<u8>]) {
    let conn = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-raw")
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for payload in payloads {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                lapin::options::BasicPublishOptions::default(),
                payload,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "the broker took the message");
    }
    let _ = conn.close(200, "bye".into()).await;
}

pub async fn dead_letter_count_settled(prefix: &str, expected: u32) -> u32 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count = dead_letter_count(prefix).await;
        if count == expected || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub async fn dead_letter_count(prefix: &str) -> u32 {
    let conn = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test")
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            shared::amqp::Topology::new(prefix)
                .dead_letter_queue()
                .into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("dlq exists");
    let _ = conn.close(200, "bye".into()).await;
    q.message_count()
}

/// Contracts created for an external id.
pub async fn contracts_with_external_id(pool: &MySqlPool, external_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE external_id = ?")
        .bind(external_id)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Deletes every Redis key of this test's deployment, as a FLUSHALL would.
pub async fn forget_redis(app: &TestApp) {
    forget_prefix(&app.redis, &app.prefix).await;
}

/// Deletes every Redis key under `prefix`.
pub async fn forget_prefix(redis: &redis::aio::ConnectionManager, prefix: &str) {
    let mut c = redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .expect("keys");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut c)
            .await
            .expect("del");
    }
}

/// A `user_limit_balances` row: user, the four granted limits, the four available ones.
type LimitRow = (
    String,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
);

/// SPEC §9's form of §5 for every user and tenor: available = granted − Σ approved
/// jumlah_cicilan + Σ installment parts paid + Σ mengurangi_tagihan, within bounds.
pub async fn assert_limit_equation(pool: &sqlx::MySqlPool) {
    let rows: Vec<LimitRow> = sqlx::query_as(
        "SELECT user_id, limit_one_month, limit_two_month, limit_three_month, limit_sixth,
                available_one_month, available_two_month, available_three_month, available_sixth
         FROM user_limit_balances",
    )
    .fetch_all(pool)
    .await
    .expect("limits");
    for (user, g1, g2, g3, g6, a1, a2, a3, a6) in rows {
        for (tenor, granted, available) in [(1u8, g1, a1), (2, g2, a2), (3, g3, a3), (6, g6, a6)] {
            let debited: Option<Decimal> = sqlx::query_scalar(
                "SELECT SUM(jumlah_cicilan) FROM transactions WHERE user_id = ? AND tenor = ?",
            )
            .bind(&user)
            .bind(tenor)
            .fetch_one(pool)
            .await
            .expect("sum");
            // Installment parts only: what payments paid to late fees never touches limits (§12).
            let paid: Option<Decimal> = sqlx::query_scalar(
                "SELECT SUM(b.terbayar) FROM monthly_billings b JOIN transactions t ON t.nomor_kontrak = b.nomor_kontrak WHERE t.user_id = ? AND t.tenor = ?",
            )
            .bind(&user)
            .bind(tenor)
            .fetch_one(pool)
            .await
            .expect("sum");
            let cancelled: Option<Decimal> = sqlx::query_scalar(
                "SELECT SUM(r.mengurangi_tagihan) FROM refunds r JOIN transactions t ON t.nomor_kontrak = r.nomor_kontrak WHERE t.user_id = ? AND t.tenor = ?",
            )
            .bind(&user)
            .bind(tenor)
            .fetch_one(pool)
            .await
            .expect("sum");
            let expected = granted - debited.unwrap_or_default()
                + paid.unwrap_or_default()
                + cancelled.unwrap_or_default();
            assert_eq!(available, expected, "user {user} tenor {tenor}");
            assert!(
                available >= Decimal::ZERO && available <= granted,
                "user {user} tenor {tenor}: {available}"
            );
        }
    }
    let doubled: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT merchant_id, external_id FROM transactions GROUP BY merchant_id, external_id HAVING COUNT(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .expect("count");
    assert_eq!(doubled, 0, "an external id has two contracts");
}

/// The audit row of a call: (request body, response body), once the writer has flushed it.
pub(crate) async fn audited(app: &TestApp, api_call_id: &str) -> (Option<String>, String) {
    for _ in 0..100 {
        let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT request_body, response_body FROM api_call_logs WHERE api_call_id = ?",
        )
        .bind(api_call_id)
        .fetch_optional(&app.pool)
        .await
        .expect("audit row read");
        if let Some((request, response)) = row {
            return (request, response.unwrap_or_default());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{api_call_id} was never audited");
}
