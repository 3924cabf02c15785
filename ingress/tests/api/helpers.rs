//! `spawn_app()` and a signing client.

use ingress::config::IngressConfig;
use ingress::startup::Application;
use lapin::options::QueueDeleteOptions;
use serde_json::{Value, json};
use shared::db::keys::{Role, create_key};
use shared::signature::{sign, string_to_sign};
use sqlx::MySqlPool;
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct Key {
    pub client_id: String,
    pub secret: String,
    pub merchant_id: String,
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

pub fn ingress_config(prefix: &str) -> IngressConfig {
    use clap::Parser;
    let mut c = IngressConfig::parse_from(["ingress"]);
    c.listen_addr = "127.0.0.1:0".into();
    c.redis.prefix = prefix.into();
    c.amqp.prefix = prefix.into();
    c.key_refresh_ms = 500;
    c
}

pub fn worker_config(prefix: &str) -> worker::config::WorkerConfig {
    use clap::Parser;
    let mut c = worker::config::WorkerConfig::parse_from(["worker"]);
    c.redis.prefix = prefix.into();
    c.amqp.prefix = prefix.into();
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
    shared::telemetry::init("warn");
    let prefix = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let admin = new_key(&pool, "platform", Role::Admin).await;
    let merchant = new_key(&pool, "tokopedia", Role::Merchant).await;
    let other_merchant = new_key(&pool, "shopee", Role::Merchant).await;
    let app = Application::build(ingress_config(&prefix), Some(pool.clone()))
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
    let (tx, rx) = oneshot::channel::<()>();
    let config = worker_config(prefix);
    let pool = pool.clone();
    tokio::spawn(async move {
        let _ = worker::run(config, Some(pool), async {
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
        self.send_at(key, method, path, external_id, body, headers, &now_ts()).await
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
        let body = body.unwrap_or(b"");
        let sts = string_to_sign(method, path, timestamp, external_id, body);
        let signature = sign(key.secret.as_bytes(), &sts);
        let mut req = self
            .http
            .request(method.parse().expect("method"), format!("{}{}", self.base, path))
            .header("X-Client-Id", &key.client_id)
            .header("X-Timestamp", timestamp)
            .header("X-Signature", signature)
            .body(body.to_vec());
        if let Some(ext) = external_id {
            req = req.header("X-External-Id", ext);
        }
        if !body.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req = req.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        Resp { status, body, headers }
    }

    pub async fn get(&self, key: &Key, path: &str) -> Resp {
        self.send(key, "GET", path, None, None, &[]).await
    }

    pub async fn post(&self, key: &Key, path: &str, external_id: &str, body: &Value) -> Resp {
        let bytes = body.to_string();
        self.send(key, "POST", path, Some(external_id), Some(bytes.as_bytes()), &[]).await
    }

    pub async fn post_wait(&self, key: &Key, path: &str, external_id: &str, body: &Value) -> Resp {
        let bytes = body.to_string();
        self.send(key, "POST", path, Some(external_id), Some(bytes.as_bytes()), &[("Prefer", "wait=20")])
            .await
    }

    /// Creates a user with the given granted limits (tenors 1, 2, 3, 6).
    pub async fn create_user(&self, limits: [&str; 4]) -> String {
        let nik = format!("32{:014}", rand_u64() % 100_000_000_000_000);
        let body = user_body(&nik, limits);
        let r = self.post(&self.admin, "/create-user", &fresh_id(), &body).await;
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
        let r = self.get(&self.admin, &format!("/users/{user_id}/limits")).await;
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

    pub fn stop_workers(&mut self) {
        for tx in self.worker_stop.drain(..) {
            let _ = tx.send(());
        }
    }

    pub fn add_worker(&mut self) {
        let tx = spawn_worker(&self.pool, &self.prefix);
        self.worker_stop.push(tx);
    }
}

pub async fn delete_queues(prefix: &str) {
    let Ok(conn) = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-cleanup").await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let t = shared::amqp::Topology::new(prefix);
        for q in [t.command_queue(), t.dead_letter_queue()] {
            let _ = ch.queue_delete(q.into(), QueueDeleteOptions::default()).await;
        }
        let _ = ch
            .exchange_delete(t.dead_letter_exchange().into(), lapin::options::ExchangeDeleteOptions::default())
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

pub fn transaction_body(user_id: &str, otr: &str, fee: &str, aset: &str, rate: &str, tenor: u32) -> String {
    format!(
        r#"{{"user_id":"{user_id}","otr":{otr},"admin_fee":{fee},"harga_aset":{aset},"bunga_persen":{rate},"tenor":{tenor},"nama_aset":"Kulkas 2 Pintu"}}"#
    )
}
