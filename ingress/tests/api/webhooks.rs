//! Webhooks (SPEC §11): registration, the outbox, and deliveries to real local receivers
//! (axum on 127.0.0.1, port 0), signatures checked by the Standard Webhooks reference library
//! (Python `standardwebhooks`, in the venv `scripts/test.sh` prepares).

use crate::helpers::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sqlx::MySqlPool;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What a receiver does with the next request.
#[derive(Debug, Clone, Copy)]
enum Act {
    Status(u16),
    /// Never answers.
    Hang,
    Redirect,
}

#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inbox {
    script: VecDeque<Act>,
    received: Vec<Received>,
    /// Requests being answered right now, and the most at once per `webhook-id`.
    in_flight: Vec<String>,
    overlapped: bool,
}

/// A local webhook receiver: answers by its script (then 200), keeps every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(script: &[Act]) -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox {
            script: script.iter().copied().collect(),
            ..Inbox::default()
        }));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            inbox,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().expect("inbox").received.clone()
    }

    fn overlapped(&self) -> bool {
        self.inbox.lock().expect("inbox").overlapped
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let act = {
        let mut inbox = inbox.lock().expect("inbox");
        inbox.received.push(Received {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
        });
        if inbox.in_flight.contains(&id) {
            inbox.overlapped = true;
        }
        inbox.in_flight.push(id.clone());
        inbox.script.pop_front().unwrap_or(Act::Status(200))
    };
    // Long enough for a second dispatcher to arrive while this one is still answering.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = match act {
        Act::Status(s) => StatusCode::from_u16(s)
            .unwrap_or(StatusCode::OK)
            .into_response(),
        Act::Hang => std::future::pending::<Response>().await,
        Act::Redirect => (
            StatusCode::FOUND,
            [("location", format!("{}/elsewhere", uri.path()))],
        )
            .into_response(),
    };
    let mut inbox = inbox.lock().expect("inbox");
    if let Some(i) = inbox.in_flight.iter().position(|x| *x == id) {
        inbox.in_flight.remove(i);
    }
    response
}

/// A receiver that accepts connections and closes them without a word.
async fn closing_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    format!("http://127.0.0.1:{port}/hooks")
}

/// Dispatcher settings short enough for tests.
struct Dispatch {
    schedule: &'static str,
    timeout_ms: u64,
    lease_ms: u64,
    loopback: bool,
    /// Deliveries in flight per process, and of those to one endpoint.
    slots: (usize, usize),
}

const FAST: Dispatch = Dispatch {
    schedule: "1,1",
    timeout_ms: 1500,
    lease_ms: 4000,
    loopback: true,
    slots: (32, 8),
};

/// The app (loopback receivers allowed at registration) and `workers` in-process workers
/// with `dispatch`.
async fn spawn(
    pool: MySqlPool,
    workers: usize,
    dispatch: &Dispatch,
) -> (TestApp, Vec<oneshot::Sender<()>>) {
    let app = spawn_app_configured(pool, 0, |c| c.webhooks.allow_loopback = "1".into()).await;
    let stops = (0..workers)
        .map(|_| spawn_dispatching_worker(&app, dispatch))
        .collect();
    (app, stops)
}

fn spawn_dispatching_worker(app: &TestApp, dispatch: &Dispatch) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel::<()>();
    let mut config = worker_config(&app.prefix);
    config.dispatch.retry_schedule =
        shared::webhooks::RetrySchedule::parse(dispatch.schedule).expect("schedule");
    config.dispatch.timeout_ms = dispatch.timeout_ms;
    config.dispatch.lease_ms = dispatch.lease_ms;
    config.dispatch.poll_ms = 100;
    (
        config.dispatch.concurrency,
        config.dispatch.endpoint_concurrency,
    ) = dispatch.slots;
    config.webhooks.allow_loopback = if dispatch.loopback { "1" } else { "0" }.into();
    let pool = app.pool.clone();
    tokio::spawn(async move {
        let _ = worker::run(config, Some(pool), async {
            let _ = rx.await;
        })
        .await;
    });
    tx
}

async fn put_webhook(app: &TestApp, key: &Key, body: &Value) -> Resp {
    let bytes = body.to_string();
    app.send(key, "PUT", "/webhooks", None, Some(bytes.as_bytes()), &[])
        .await
}

async fn register(app: &TestApp, key: &Key, url: &str, events: &[&str]) -> String {
    let r = put_webhook(app, key, &json!({"url": url, "events": events})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data()["secret"]
        .as_str()
        .expect("secret on creation")
        .to_owned()
}

/// A transaction of `key`'s merchant, decided; its api call id.
async fn checkout(app: &TestApp, key: &Key, user_id: &str) -> String {
    let body = transaction_body(user_id, "1000", "100", "900", "2.5", 3);
    let r = app
        .send(
            key,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let call = r.data()["status_url"]
        .as_str()
        .and_then(|s| s.strip_prefix("/status/"))
        .expect("status url")
        .to_owned();
    app.wait_final(key, &call).await;
    call
}

async fn deliveries(app: &TestApp, key: &Key, query: &str) -> Resp {
    app.get(key, &format!("/webhooks/deliveries{query}")).await
}

/// Polls the merchant's deliveries until `done` holds for the newest page.
async fn wait_deliveries(app: &TestApp, key: &Key, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..300 {
        let r = deliveries(app, key, "?limit=100").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.data()["items"].as_array().cloned().unwrap_or_default();
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = deliveries(app, key, "?limit=100").await;
    panic!("deliveries never reached the expected state: {}", r.body);
}

/// Events in the outbox, whatever their state.
async fn events_recorded(pool: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn wait_received(receiver: &Receiver, n: usize) -> Vec<Received> {
    for _ in 0..300 {
        let got = receiver.received();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the receiver never got {n} requests");
}

/// How long a checkout of `other_merchant` takes to reach its receiver `good`.
async fn other_merchants_delivery(app: &TestApp, user: &str, good: &Receiver) -> Duration {
    let started = std::time::Instant::now();
    checkout(app, &app.other_merchant, user).await;
    wait_received(good, 1).await;
    started.elapsed()
}

/// The Python of the venv with the reference library: `XYZ_TEST_PYTHON`, else the venv
/// `scripts/test.sh` creates. Missing is a failure, not a skip.
fn reference_python() -> std::path::PathBuf {
    let path = std::env::var_os("XYZ_TEST_PYTHON").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/venv-test/bin/python"),
        std::path::PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} missing: run scripts/test.sh (it creates the venv with `standardwebhooks`) or set XYZ_TEST_PYTHON",
        path.display()
    );
    path
}

/// Verifies a delivery with the Standard Webhooks reference library; the payload it returns.
fn verify_with_reference_library(secret: &str, received: &Received) -> Value {
    let dir = std::env::temp_dir().join(format!("xyz-webhook-{}", fresh_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let headers: serde_json::Map<String, Value> = received
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    std::fs::write(dir.join("headers.json"), Value::Object(headers).to_string()).expect("write");
    std::fs::write(dir.join("body"), &received.body).expect("write");
    let script = "import json, sys\n\
        from standardwebhooks import Webhook\n\
        secret, headers, body = sys.argv[1:4]\n\
        payload = Webhook(secret).verify(open(body, 'rb').read(), json.load(open(headers)))\n\
        print(json.dumps(payload))\n";
    let out = std::process::Command::new(reference_python())
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(dir.join("headers.json"))
        .arg(dir.join("body"))
        .output()
        .expect("python runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the reference library rejected the delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("verified payload")
}

#[sqlx::test(migrations = "../migrations")]
async fn an_endpoint_is_registered_read_rotated_and_deleted_and_its_secret_shown_only_when_issued(
    pool: MySqlPool,
) {
    let (app, _workers) = spawn(pool, 0, &FAST).await;
    let m = app.merchant.clone();

    assert_eq!(app.get(&m, "/webhooks").await.status, 404);
    // Signed a second earlier than the DELETE below, which would otherwise be its replay.
    let earlier = (chrono::Utc::now().timestamp() - 1).to_string();
    let r = app
        .send_at(&m, "DELETE", "/webhooks", None, None, &[], &earlier)
        .await;
    assert_eq!((r.status, r.action()), (404, "NOT_FOUND"));

    let created = put_webhook(
        &app,
        &m,
        &json!({"url": "http://127.0.0.1:9/hooks", "events": ["contract.paid_off", "call.completed"]}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let secret = created.data()["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let key = base64_decode(&secret["whsec_".len()..]);
    assert_eq!(key.len(), 32);
    assert_eq!(
        created.data()["events"],
        json!(["call.completed", "contract.paid_off"])
    );
    assert_eq!(created.data()["url"], "http://127.0.0.1:9/hooks");

    let read = app.get(&m, "/webhooks").await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.data(),
        &json!({"url": "http://127.0.0.1:9/hooks", "events": ["call.completed", "contract.paid_off"],
            "created_at": created.data()["created_at"]})
    );

    // An update keeps the secret, and does not show it.
    let updated = put_webhook(
        &app,
        &m,
        &json!({"url": "http://localhost:9/other", "events": ["installment.overdue"], "rotate_secret": false}),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert!(updated.data().get("secret").is_none(), "{}", updated.body);
    assert_eq!(updated.data()["created_at"], created.data()["created_at"]);

    let rotated = put_webhook(
        &app,
        &m,
        &json!({"url": "http://localhost:9/other", "events": ["call.completed"], "rotate_secret": true}),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.data()["secret"].as_str().expect("rotated secret");
    assert_ne!(new_secret, secret);

    // Another merchant has none.
    assert_eq!(app.get(&app.other_merchant, "/webhooks").await.status, 404);

    let deleted = app.send(&m, "DELETE", "/webhooks", None, None, &[]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.data(), &json!({"deleted": true}));
    assert_eq!(app.get(&m, "/webhooks").await.status, 404);

    // Registering again creates it afresh, with a new secret.
    let again = register(&app, &m, "http://127.0.0.1:9/hooks", &["call.completed"]).await;
    assert_ne!(again, new_secret);
    app.shutdown().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[sqlx::test(migrations = "../migrations")]
async fn webhooks_are_for_merchants_only_and_bad_bodies_get_the_contract_codes(pool: MySqlPool) {
    let (app, _workers) = spawn(pool, 0, &FAST).await;
    let m = app.merchant.clone();
    let ok = json!({"url": "http://127.0.0.1:9/h", "events": ["call.completed"]});
    for (method, path) in [
        ("GET", "/webhooks"),
        ("DELETE", "/webhooks"),
        ("GET", "/webhooks/deliveries"),
    ] {
        let r = app.send(&app.admin, method, path, None, None, &[]).await;
        assert_eq!(
            (r.status, r.action()),
            (403, "FORBIDDEN"),
            "{method} {path}"
        );
    }
    let r = put_webhook(&app, &app.admin, &ok).await;
    assert_eq!((r.status, r.action()), (403, "FORBIDDEN"));
    let r = app
        .send(
            &app.admin,
            "POST",
            "/webhooks/deliveries/evt_x/retry",
            Some(&fresh_id()),
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.action()), (403, "FORBIDDEN"));

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"url": "http://127.0.0.1:9/h"}),
            "INVALID_MANDATORY",
            "events",
        ),
        (
            json!({"url": null, "events": ["call.completed"]}),
            "INVALID_MANDATORY",
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["call.completed"], "x": 1}),
            "INVALID_PAYLOAD_KEY",
            "x",
        ),
        (
            json!({"url": 5, "events": ["call.completed"]}),
            "INVALID_VALUE",
            "url",
        ),
        (
            json!({"url": "ftp://example.com/h", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "url",
        ),
        (
            json!({"url": "http://example.com/h", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/h", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": []}),
            "INVALID_VALUE",
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": "call.completed"}),
            "INVALID_VALUE",
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["call.completed", "payment.made"]}),
            "INVALID_VALUE",
            "payment.made",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["call.completed"], "rotate_secret": "yes"}),
            "INVALID_VALUE",
            "rotate_secret",
        ),
        // Addresses that are never public, loopback allowed or not.
        (
            json!({"url": "https://169.254.169.254/latest", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "169.254.169.254",
        ),
        (
            json!({"url": "https://10.0.0.8/h", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "10.0.0.8",
        ),
        (
            json!({"url": "https://[fd00::1]/h", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "fd00::1",
        ),
        (
            json!({"url": "https://100.64.1.1/h", "events": ["call.completed"]}),
            "INVALID_VALUE",
            "100.64.1.1",
        ),
    ];
    for (body, action, names) in cases {
        let r = put_webhook(&app, &m, &body).await;
        assert_eq!((r.status, r.action()), (400, action), "{body}: {}", r.body);
        assert!(r.message().contains(names), "{body}: {}", r.body);
    }
    let r = app
        .send(&m, "PUT", "/webhooks", None, Some(b"[1]"), &[])
        .await;
    assert_eq!((r.status, r.action()), (400, "INVALID_PAYLOAD_FORMAT"));
    assert_eq!(
        app.get(&m, "/webhooks").await.status,
        404,
        "nothing was registered"
    );

    // The same signed PUT again is a replay.
    let ts = now_ts();
    let bytes = ok.to_string();
    let first = app
        .send_at(
            &m,
            "PUT",
            "/webhooks",
            None,
            Some(bytes.as_bytes()),
            &[],
            &ts,
        )
        .await;
    assert_eq!(first.status, 200);
    let replay = app
        .send_at(
            &m,
            "PUT",
            "/webhooks",
            None,
            Some(bytes.as_bytes()),
            &[],
            &ts,
        )
        .await;
    assert_eq!(
        (replay.status, replay.action()),
        (409, "CONFLICT_EXTERNAL_ID")
    );

    for query in ["?status=done", "?limit=0", "?cursor=abc"] {
        let r = deliveries(&app, &m, query).await;
        assert_eq!((r.status, r.action()), (400, "INVALID_VALUE"), "{query}");
    }
    let r = app
        .send(
            &m,
            "POST",
            "/webhooks/deliveries/evt_x/retry",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.action()), (400, "INVALID_MANDATORY"));
    let r = app
        .send(
            &m,
            "POST",
            "/webhooks/deliveries/evt_nothing/retry",
            Some(&fresh_id()),
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.action()), (404, "NOT_FOUND"));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_completed_transaction_delivers_call_completed_signed_as_the_reference_library_verifies(
    pool: MySqlPool,
) {
    let (app, _workers) = spawn(pool, 1, &FAST).await;
    let receiver = Receiver::start(&[]).await;
    let secret = register(&app, &app.merchant, &receiver.url, &["call.completed"]).await;
    let user = app
        .create_user(["100000", "100000", "100000", "100000"])
        .await;
    let call = checkout(&app, &app.merchant, &user).await;

    let got = wait_received(&receiver, 1).await;
    let delivery = &got[0];
    let payload = verify_with_reference_library(&secret, delivery);
    assert_eq!(payload["type"], "call.completed");
    let status = app.get(&app.merchant, &format!("/status/{call}")).await;
    assert_eq!(payload["data"], *status.data(), "data is the status object");
    assert!(
        chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap_or("")).is_ok()
    );
    let event_id = delivery.header("webhook-id").to_owned();
    assert!(event_id.starts_with("evt_"), "{event_id}");

    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event_id"], event_id.as_str());
    assert_eq!(items[0]["type"], "call.completed");
    let attempts = items[0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["http_status"], 200);
    assert_eq!(attempts[0]["error"], Value::Null);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_delivery_is_retried_on_500_and_timeout_then_failed_and_a_manual_retry_delivers_it(
    pool: MySqlPool,
) {
    let (app, _workers) = spawn(pool, 1, &FAST).await;
    // 500, no answer, 503: three attempts for a schedule of two retries.
    let receiver = Receiver::start(&[Act::Status(500), Act::Hang, Act::Status(503)]).await;
    register(&app, &app.merchant, &receiver.url, &["call.completed"]).await;
    let user = app
        .create_user(["100000", "100000", "100000", "100000"])
        .await;
    checkout(&app, &app.merchant, &user).await;

    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let attempts = items[0]["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[0]["http_status"], 500);
    assert_eq!(attempts[1]["http_status"], Value::Null);
    assert!(attempts[1]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(attempts[2]["http_status"], 503);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let id = got[0].header("webhook-id");
    assert!(
        got.iter().all(|r| r.header("webhook-id") == id),
        "the same webhook-id on every retry"
    );
    // The first attempt sends the body its batch built; the retries render it again from the
    // stored outcome: the same bytes.
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same body on every retry"
    );
    let failed = deliveries(&app, &app.merchant, "?status=failed").await;
    assert_eq!(failed.data()["items"].as_array().map(Vec::len), Some(1));
    let pending = deliveries(&app, &app.merchant, "?status=pending").await;
    assert_eq!(pending.data()["items"].as_array().map(Vec::len), Some(0));

    // The receiver now answers 200: one manual retry delivers it.
    let external_id = fresh_id();
    let r = app
        .send(
            &app.merchant,
            "POST",
            &format!("/webhooks/deliveries/{id}/retry"),
            Some(&external_id),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["event_id"], id);
    assert_eq!(r.data()["status"], "pending");
    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(items[0]["attempts"].as_array().map(Vec::len), Some(4));
    assert_eq!(receiver.received()[3].body, got[0].body);
    // The external id is claimed.
    let again = app
        .send(
            &app.merchant,
            "POST",
            &format!("/webhooks/deliveries/{id}/retry"),
            Some(&external_id),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (again.status, again.action()),
        (409, "CONFLICT_EXTERNAL_ID")
    );
    // Another merchant's event is not found.
    let other = app
        .send(
            &app.other_merchant,
            "POST",
            &format!("/webhooks/deliveries/{id}/retry"),
            Some(&fresh_id()),
            None,
            &[],
        )
        .await;
    assert_eq!(other.status, 404);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn hanging_closing_redirecting_and_metadata_receivers_do_not_hold_up_another_merchants_delivery(
    pool: MySqlPool,
) {
    let (app, _workers) = spawn(
        pool.clone(),
        1,
        &Dispatch {
            schedule: "60",
            timeout_ms: 8000,
            lease_ms: 20_000,
            ..FAST
        },
    )
    .await;
    // The bad receivers belong to merchants of their own; the good one to `other_merchant`.
    let bad = [
        ("hang", Receiver::start(&[Act::Hang; 8]).await.url),
        ("close", closing_receiver().await),
        ("redirect", Receiver::start(&[Act::Redirect; 8]).await.url),
    ];
    let mut bad_merchants = Vec::new();
    for name in ["hang", "close", "redirect", "metadata"] {
        let role = shared::db::keys::Role::Merchant;
        bad_merchants.push(new_key(&pool, &format!("bad-{name}"), role).await);
    }
    // The ingress knows keys from its next refresh (500 ms in tests).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for ((_, url), key) in bad.iter().zip(&bad_merchants) {
        register(&app, key, url, &["call.completed"]).await;
    }
    // An endpoint whose host now points at the metadata address (as after a DNS change):
    // stored as it is, refused at delivery.
    let metadata = &bad_merchants[3];
    register(&app, metadata, "http://127.0.0.1:9/h", &["call.completed"]).await;
    sqlx::query(
        "UPDATE webhook_endpoints SET url = 'https://169.254.169.254/latest' WHERE merchant_id = ?",
    )
    .bind(&metadata.merchant_id)
    .execute(&pool)
    .await
    .expect("update");
    let good = Receiver::start(&[]).await;
    register(&app, &app.other_merchant, &good.url, &["call.completed"]).await;

    let user = app
        .create_user(["1000000", "1000000", "1000000", "1000000"])
        .await;
    for key in &bad_merchants {
        checkout(&app, key, &user).await;
    }
    let took = other_merchants_delivery(&app, &user, &good).await;
    // Delivered while the hanging receiver still holds its attempt (8 s timeout).
    assert!(took < Duration::from_secs(8), "{took:?}");

    for key in &bad_merchants[1..] {
        let items = wait_deliveries(&app, key, |items| {
            items
                .first()
                .is_some_and(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
        })
        .await;
        assert_eq!(items[0]["status"], "pending", "retried later: {items:?}");
        let attempt = &items[0]["attempts"][0];
        assert!(
            attempt["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{attempt}"
        );
    }
    let redirected = wait_deliveries(&app, &bad_merchants[2], |i| !i.is_empty()).await;
    assert_eq!(redirected[0]["attempts"][0]["http_status"], 302);
    let refused = wait_deliveries(&app, &bad_merchants[3], |i| !i.is_empty()).await;
    let error = refused[0]["attempts"][0]["error"].as_str().unwrap_or("");
    assert!(error.contains("169.254.169.254"), "{error}");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_receiver_that_hangs_with_a_backlog_holds_only_its_own_lanes(pool: MySqlPool) {
    // Four slots in the process, two per endpoint.
    let (app, _workers) = spawn(
        pool.clone(),
        1,
        &Dispatch {
            schedule: "60",
            timeout_ms: 8000,
            lease_ms: 20_000,
            loopback: true,
            slots: (4, 2),
        },
    )
    .await;
    let hanging = Receiver::start(&[Act::Hang; 16]).await;
    let stuck = new_key(&pool, "stuck", shared::db::keys::Role::Merchant).await;
    // The ingress knows keys from its next refresh (500 ms in tests).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    register(&app, &stuck, &hanging.url, &["call.completed"]).await;
    let good = Receiver::start(&[]).await;
    register(&app, &app.other_merchant, &good.url, &["call.completed"]).await;
    let user = app
        .create_user(["1000000", "1000000", "1000000", "1000000"])
        .await;
    // More events than the process has slots, all to the receiver that hangs.
    for _ in 0..6 {
        checkout(&app, &stuck, &user).await;
    }
    wait_received(&hanging, 2).await;
    let took = other_merchants_delivery(&app, &user, &good).await;
    // Delivered while the hanging receiver still holds its attempts (8 s timeout), and that
    // receiver never had more than its two lanes.
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(hanging.received().len(), 2);
    // The events left waiting go out as the hanging attempts time out, two at a time: the
    // last two not before the next two have timed out in turn.
    assert_eq!(wait_received(&hanging, 4).await.len(), 4);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_host_that_resolves_to_loopback_is_refused_at_delivery_when_loopback_is_not_allowed(
    pool: MySqlPool,
) {
    let (app, _workers) = spawn(
        pool.clone(),
        1,
        &Dispatch {
            loopback: false,
            ..FAST
        },
    )
    .await;
    let receiver = Receiver::start(&[]).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("port");
    register(&app, &app.merchant, &receiver.url, &["call.completed"]).await;
    // `localhost` resolves to loopback addresses: what a public name pointed at 127.0.0.1 does.
    sqlx::query("UPDATE webhook_endpoints SET url = ? WHERE merchant_id = ?")
        .bind(format!("https://localhost:{port}/hooks"))
        .bind(&app.merchant.merchant_id)
        .execute(&pool)
        .await
        .expect("update");
    let user = app
        .create_user(["100000", "100000", "100000", "100000"])
        .await;
    checkout(&app, &app.merchant, &user).await;
    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    for attempt in items[0]["attempts"].as_array().expect("attempts") {
        assert_eq!(attempt["http_status"], Value::Null);
        assert!(
            attempt["error"]
                .as_str()
                .is_some_and(|e| e.contains("loopback")),
            "{attempt}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the loopback receiver"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_whose_dispatcher_was_killed_mid_delivery_is_delivered_once_its_lease_runs_out(
    pool: MySqlPool,
) {
    let (app, _) = spawn(pool, 0, &FAST).await;
    let receiver = Receiver::start(&[Act::Hang]).await;
    register(&app, &app.merchant, &receiver.url, &["call.completed"]).await;
    let mut process = WorkerProcess::start_with(
        &app,
        &[
            ("WEBHOOK_ALLOW_LOOPBACK", "1"),
            ("WEBHOOK_TIMEOUT_MS", "2500"),
            ("WEBHOOK_LEASE_MS", "3000"),
            ("WEBHOOK_POLL_MS", "100"),
        ],
    );
    let user = app
        .create_user(["100000", "100000", "100000", "100000"])
        .await;
    checkout(&app, &app.merchant, &user).await;
    let first = wait_received(&receiver, 1).await;
    process.kill();

    let _stop = spawn_dispatching_worker(&app, &FAST);
    let got = wait_received(&receiver, 2).await;
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(got[1].body, first[0].body, "rendered again, the same bytes");
    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    // The killed attempt left no record; the one that delivered did.
    assert_eq!(items[0]["attempts"].as_array().map(Vec::len), Some(1));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn two_dispatchers_never_deliver_one_event_twice_at_once(pool: MySqlPool) {
    let (app, _workers) = spawn(pool, 2, &FAST).await;
    let receiver = Receiver::start(&[]).await;
    register(&app, &app.merchant, &receiver.url, &["call.completed"]).await;
    let user = app
        .create_user(["10000000", "10000000", "10000000", "10000000"])
        .await;
    let n = 20;
    let calls = submit_burst(&app, std::slice::from_ref(&user), n).await;
    assert_all_final(&app, &calls).await;
    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.len() == n && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(
        items
            .iter()
            .all(|d| d["attempts"].as_array().map(Vec::len) == Some(1))
    );
    let got = receiver.received();
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (got.len(), ids.len()),
        (n, n),
        "each event delivered exactly once"
    );
    assert!(!receiver.overlapped());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn events_are_recorded_only_for_merchants_subscribed_to_their_type(pool: MySqlPool) {
    let (app, _workers) = spawn(pool, 1, &FAST).await;
    let receiver = Receiver::start(&[]).await;
    // The merchant hears of paid-off contracts only; the other merchant of nothing at all.
    let secret = register(&app, &app.merchant, &receiver.url, &["contract.paid_off"]).await;
    let user = app
        .create_user(["100000", "100000", "100000", "100000"])
        .await;
    let call = checkout(&app, &app.merchant, &user).await;
    checkout(&app, &app.other_merchant, &user).await;
    let contract = app.wait_final(&app.merchant, &call).await["result"]["nomor_kontrak"]
        .as_str()
        .expect("contract")
        .to_owned();
    // A partial payment, then the rest (payments are an admin's).
    for amount in ["394.17", "788.33"] {
        let r = app
            .post_wait(
                &app.admin,
                "/payment",
                &fresh_id(),
                &json!({"nomor_kontrak": contract, "jumlah": amount.parse::<serde_json::Number>().expect("n")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let got = wait_received(&receiver, 1).await;
    let payload = verify_with_reference_library(&secret, &got[0]);
    assert_eq!(payload["type"], "contract.paid_off");
    let now = app
        .get(&app.merchant, &format!("/contracts/{contract}"))
        .await;
    assert_eq!(
        payload["data"],
        *now.data(),
        "data is the contract as GET /contracts shows it"
    );

    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(items.len(), 1, "only the subscribed type: {items:?}");
    let recorded = events_recorded(&app.pool).await;
    assert_eq!(recorded, 1);
    let other = deliveries(&app, &app.other_merchant, "").await;
    assert_eq!(other.data()["items"], json!([]));

    // Deleting the endpoint stops the recording.
    let r = app
        .send(&app.merchant, "DELETE", "/webhooks", None, None, &[])
        .await;
    assert_eq!(r.status, 200);
    checkout(&app, &app.merchant, &user).await;
    let recorded = events_recorded(&app.pool).await;
    assert_eq!(recorded, 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn deleting_the_endpoint_cancels_pending_deliveries_and_the_listing_pages_newest_first(
    pool: MySqlPool,
) {
    // The worker refuses loopback receivers: the events stay pending, retried in 5 s.
    let app = spawn_app_configured(pool, 1, |c| c.webhooks.allow_loopback = "1".into()).await;
    register(
        &app,
        &app.merchant,
        "http://127.0.0.1:9/h",
        &["call.completed"],
    )
    .await;
    let user = app
        .create_user(["1000000", "1000000", "1000000", "1000000"])
        .await;
    let mut calls = Vec::new();
    for _ in 0..3 {
        calls.push(checkout(&app, &app.merchant, &user).await);
    }
    // Newest first, two to a page.
    let first = deliveries(&app, &app.merchant, "?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let page1 = first.data()["items"].as_array().expect("items").clone();
    assert_eq!(page1.len(), 2);
    let cursor = first.data()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    assert!(
        cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    let second = deliveries(&app, &app.merchant, &format!("?limit=2&cursor={cursor}")).await;
    let page2 = second.data()["items"].as_array().expect("items").clone();
    assert_eq!(page2.len(), 1);
    assert_eq!(second.data()["next_cursor"], Value::Null);
    let ids: Vec<&str> = page1
        .iter()
        .chain(&page2)
        .filter_map(|d| d["event_id"].as_str())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
    // A cursor of another listing (another status) is not this one's.
    let r = deliveries(
        &app,
        &app.merchant,
        &format!("?status=pending&cursor={cursor}"),
    )
    .await;
    assert_eq!((r.status, r.action()), (400, "INVALID_VALUE"));

    let pending = deliveries(&app, &app.merchant, "?status=pending").await;
    assert_eq!(pending.data()["items"].as_array().map(Vec::len), Some(3));
    let r = app
        .send(&app.merchant, "DELETE", "/webhooks", None, None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pending = deliveries(&app, &app.merchant, "?status=pending").await;
    assert_eq!(pending.data()["items"], json!([]));
    let failed = deliveries(&app, &app.merchant, "?status=failed").await;
    assert_eq!(failed.data()["items"].as_array().map(Vec::len), Some(3));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn close_of_business_sends_installment_overdue_once_per_installment_with_the_contract_as_of_that_date(
    pool: MySqlPool,
) {
    use crate::cob::{close, days, due_date};
    let (app, _workers) = spawn(pool, 1, &FAST).await;
    let receiver = Receiver::start(&[]).await;
    let secret = register(&app, &app.merchant, &receiver.url, &["installment.overdue"]).await;
    let user = app
        .create_user(["100000", "100000", "100000", "100000"])
        .await;
    let c = contract(&app, &user, "1000.00", "0", "0", 2).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    // Another merchant's contract falls overdue too: that merchant has no endpoint.
    checkout(&app, &app.other_merchant, &user).await;

    // The first installment is overdue on the day after its due date: one event, its data
    // the contract as GET /contracts shows it after that COB (a day late, 1 % charged).
    close(&app, due_date(&c, 0) + days(1), "1").await;
    let got = wait_received(&receiver, 1).await;
    let first = verify_with_reference_library(&secret, &got[0]);
    assert_eq!(first["type"], "installment.overdue");
    let now = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(first["data"], *now.data());
    assert_eq!(first["data"]["tagihan"][0]["hari_terlambat"], 1);
    assert_eq!(first["data"]["tagihan"][0]["denda"], "5.00");
    assert_eq!(first["data"]["tagihan"][1]["hari_terlambat"], 0);

    // Later COBs charge it again but it is not newly overdue; the second installment is.
    close(&app, due_date(&c, 1) + days(1), "1").await;
    let got = wait_received(&receiver, 2).await;
    let second = verify_with_reference_library(&secret, &got[1]);
    assert_eq!(second["type"], "installment.overdue");
    assert_eq!(second["data"]["tagihan"][1]["hari_terlambat"], 1);
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    close(&app, due_date(&c, 1) + days(40), "1").await;

    let items = wait_deliveries(&app, &app.merchant, |items| {
        items.len() == 2 && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(items.iter().all(|d| d["type"] == "installment.overdue"));
    let recorded = events_recorded(&app.pool).await;
    assert_eq!(
        recorded, 2,
        "one event per installment, none for the other merchant"
    );
    assert_eq!(receiver.received().len(), 2);
    app.shutdown().await;
}

/// An event's status, attempts and recorded attempt rows, straight from MySQL.
async fn event_state(pool: &MySqlPool, event_id: &str) -> (String, u32, i64) {
    let (status, attempts): (String, u32) =
        sqlx::query_as("SELECT status, attempts FROM webhook_events WHERE event_id = ?")
            .bind(event_id)
            .fetch_one(pool)
            .await
            .expect("event");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts WHERE event_id = ?")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("attempts");
    (status, attempts, rows)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_finisher_moves_on_only_the_events_it_still_holds_and_records_every_attempt(
    pool: MySqlPool,
) {
    use shared::db::webhooks::{
        Finished, Lease, NewEvent, Next, finish_attempts, insert_events, lease_due,
    };
    use shared::webhooks::EventType;
    let now = chrono::Utc::now();
    let seconds = chrono::Duration::seconds;
    let events: Vec<NewEvent> = (0..4)
        .map(|i| {
            NewEvent::new(
                "m_finish",
                EventType::ContractPaidOff,
                &format!("call_{i}"),
                &json!({ "i": i }),
                now,
            )
            .expect("event")
        })
        .collect();
    let id = |i: usize| events[i].event_id.clone();
    let mut conn = pool.acquire().await.expect("connection");
    // Events 0 and 1 were handed to a dispatcher whose lease has run out; 2 and 3 to one whose
    // lease runs.
    let lapsed = Lease {
        id: "lease_lapsed",
        until: now - seconds(1),
    };
    let running = Lease {
        id: "lease_running",
        until: now + seconds(60),
    };
    insert_events(&mut conn, &events[..2], Some(lapsed))
        .await
        .expect("insert");
    insert_events(&mut conn, &events[2..], Some(running))
        .await
        .expect("insert");
    drop(conn);
    let taken = lease_due(&pool, "lease_other", now, now + seconds(60), 10, &[])
        .await
        .expect("lease");
    let mut taken: Vec<String> = taken.into_iter().map(|e| e.event_id).collect();
    taken.sort();
    let mut expected = vec![id(0), id(1)];
    expected.sort();
    assert_eq!(taken, expected, "another dispatcher takes the lapsed two");

    let finished = |i: usize, next: Next, error: Option<&str>| Finished {
        event_id: id(i),
        at: chrono::Utc::now(),
        http_status: Some(if error.is_some() { 500 } else { 204 }),
        error: error.map(str::to_owned),
        duration_ms: 3,
        next,
    };
    // Every event still held: delivered, and a retry scheduled.
    let moved = finish_attempts(
        &pool,
        "lease_running",
        &[
            finished(2, Next::Delivered, None),
            finished(3, Next::RetryAt(now + seconds(30)), Some("HTTP 500")),
        ],
    )
    .await
    .expect("finish");
    assert_eq!(moved, [true, true]);
    // The lapsed dispatcher finishes late: its attempts are kept, its events not moved.
    let moved = finish_attempts(
        &pool,
        "lease_lapsed",
        &[
            finished(0, Next::Delivered, None),
            finished(1, Next::Delivered, None),
        ],
    )
    .await
    .expect("finish");
    assert_eq!(moved, [false, false]);
    // The one that took them over, with a stale attempt of an event delivered already.
    let moved = finish_attempts(
        &pool,
        "lease_other",
        &[
            finished(0, Next::Delivered, None),
            finished(1, Next::Failed, Some("HTTP 500")),
            finished(2, Next::Failed, Some("HTTP 500")),
        ],
    )
    .await
    .expect("finish");
    assert_eq!(moved, [true, true, false]);

    assert_eq!(event_state(&pool, &id(0)).await, ("delivered".into(), 1, 2));
    assert_eq!(event_state(&pool, &id(1)).await, ("failed".into(), 1, 2));
    assert_eq!(event_state(&pool, &id(2)).await, ("delivered".into(), 1, 2));
    assert_eq!(event_state(&pool, &id(3)).await, ("pending".into(), 1, 1));
    let (due, lease): (chrono::NaiveDateTime, String) =
        sqlx::query_as("SELECT next_attempt_at, lease_id FROM webhook_events WHERE event_id = ?")
            .bind(id(3))
            .fetch_one(&pool)
            .await
            .expect("event");
    assert_eq!(
        (due.and_utc().timestamp(), lease.as_str()),
        ((now + seconds(30)).timestamp(), ""),
        "the retry is due when scheduled, and held by no one"
    );
}
