//! The security claims of SECURITY.md that no other module proves.

use crate::helpers::*;
use std::time::Duration;

#[sqlx::test(migrations = "../migrations")]
async fn every_read_of_another_merchants_resource_is_404(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let r = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[("Prefer", "wait=10")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let call = r.body["api_call_id"].as_str().expect("id").to_owned();
    let nomor = r.data()["result"]["nomor_kontrak"]
        .as_str()
        .expect("nomor")
        .to_owned();
    for path in [format!("/status/{call}"), format!("/contracts/{nomor}")] {
        let own = app.get(&app.merchant, &path).await;
        assert_eq!(own.status, 200, "{path}");
        let other = app.get(&app.other_merchant, &path).await;
        assert_eq!(other.status, 404, "{path}");
        assert_eq!(other.action(), "NOT_FOUND");
        // Indistinguishable from an id that does not exist.
        let missing = app
            .get(
                &app.other_merchant,
                &path.replace(&call, "API_CALL_x").replace(&nomor, "KTR_x"),
            )
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.data(), other.data());
    }
    app.shutdown().await;
}

/// A write without an external id (`PATCH`) is claimed by its signature: the same signed
/// request sent again within the window is refused with 409, naming the first call, and
/// changes nothing; signed again with a fresh timestamp it goes through.
#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_patch_is_refused_and_changes_nothing(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let path = format!("/users/{user}/status");
    let send = |status: &'static str, ts: String| {
        let (app, path) = (&app, path.clone());
        async move {
            let body = format!(r#"{{"user_status":"{status}"}}"#);
            app.send_at(
                &app.admin,
                "PATCH",
                &path,
                None,
                Some(body.as_bytes()),
                &[("Content-Type", "application/json")],
                &ts,
            )
            .await
        }
    };
    let ts = now_ts();
    let lock = send("LOCK", ts.clone()).await;
    assert_eq!(lock.status, 200, "{}", lock.body);
    let unlock = send("ACTIVE", now_ts_after(&ts)).await;
    assert_eq!(unlock.status, 200, "{}", unlock.body);
    // The captured LOCK, replayed byte for byte: refused, and the user stays ACTIVE.
    let replay = send("LOCK", ts.clone()).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    assert_eq!(replay.action(), "CONFLICT_EXTERNAL_ID");
    assert_eq!(
        replay.data()["original_api_call_id"],
        lock.body["api_call_id"],
        "{}",
        replay.body
    );
    let now = app.get(&app.admin, &format!("/users/{user}")).await;
    assert_eq!(now.data()["user_status"], "ACTIVE", "{}", now.body);
    app.shutdown().await;
}

/// A timestamp one second after `ts` (a fresh signature for the same request).
fn now_ts_after(ts: &str) -> String {
    (ts.parse::<i64>().expect("a timestamp") + 1).to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_request_is_refused(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let ext = fresh_id();
    // A captured request, replayed byte for byte within the window: the id is used → 409.
    let ts = now_ts();
    let first = app
        .send_at(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(body.as_bytes()),
            &[],
            &ts,
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    let replay = app
        .send_at(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(body.as_bytes()),
            &[],
            &ts,
        )
        .await;
    assert_eq!(replay.status, 409);
    assert_eq!(replay.data()["same_payload"], true);
    // The same capture 301 s later: its timestamp is out of the window → 401.
    let old = (chrono::Utc::now().timestamp() - 301).to_string();
    let ext2 = fresh_id();
    let late = app
        .send_at(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext2),
            Some(body.as_bytes()),
            &[],
            &old,
        )
        .await;
    assert_eq!(late.status, 401);
    assert_eq!(late.action(), "INVALID_SIGNATURE");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn every_response_carries_security_headers(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let signed_ok = app.get(&app.admin, "/users/USR_nope/limits").await;
    let unsigned = App::read(
        app.http
            .get(format!("{}/status/x", app.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    let health = App::read(
        app.http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    for r in [&signed_ok, &unsigned, &health] {
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.headers["cache-control"], "no-store");
        assert_eq!(r.headers["x-frame-options"], "DENY");
        assert_eq!(r.headers["referrer-policy"], "no-referrer");
        assert!(r.headers.contains_key("content-security-policy"));
    }
    // No debug endpoints.
    for path in ["/debug", "/debug/pprof", "/admin", "/env", "/actuator"] {
        let r = app.get(&app.admin, path).await;
        assert_eq!(r.status, 404, "{path}");
    }
    app.shutdown().await;
}

type App = TestApp;

/// The child dies with the test, even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn no_plaintext_nik_or_secret_in_tables_redis_messages_or_logs(pool: sqlx::MySqlPool) {
    // An ingress process with debug logs, so its log file can be searched.
    let app = spawn_app_with(pool, 0).await;
    let dir = std::env::temp_dir().join(format!("logs-{}", app.prefix));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("ingress.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let exe = std::env::current_exe().expect("exe");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target")
        .join("ingress");
    let mut child = KillOnDrop(
        std::process::Command::new(bin)
            .env("DATABASE_URL", database_url(&app.pool))
            .env("AMQP_PREFIX", &app.prefix)
            .env("REDIS_PREFIX", &app.prefix)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&log).expect("log"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ingress"),
    );
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if app
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nik = format!("32{:014}", rand_u64() % 100_000_000_000_000);
    let user_body = user_body(&nik, ["1000", "1000", "1000", "1000"]).to_string();
    let r = app
        .send_via(
            &base,
            &app.admin,
            "POST",
            "/create-user",
            Some(&fresh_id()),
            Some(user_body.as_bytes()),
            &[],
            &now_ts(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = r.data()["user_id"].as_str().expect("id").to_owned();
    // A duplicate and a malformed one too: error paths log as well.
    let _ = app
        .send_via(
            &base,
            &app.admin,
            "POST",
            "/create-user",
            Some(&fresh_id()),
            Some(user_body.as_bytes()),
            &[],
            &now_ts(),
        )
        .await;
    let broken = user_body.replace("\"gaji\":12000000", "\"gaji\":true");
    let _ = app
        .send_via(
            &base,
            &app.admin,
            "POST",
            "/create-user",
            Some(&fresh_id()),
            Some(broken.as_bytes()),
            &[],
            &now_ts(),
        )
        .await;
    // A transaction sits in the queue (no worker runs): drain it and look at its bytes.
    let body = transaction_body(&user, "100", "0", "100", "0", 1);
    let t = app
        .send_via(
            &base,
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[],
            &now_ts(),
        )
        .await;
    assert_eq!(t.status, 202);
    // SIGTERM at once: the graceful stop flushes the audit rows still in the channel.
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status();
    let exit = child.0.wait().expect("ingress exits");
    assert!(exit.success(), "ingress exit status {exit}");
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_call_logs WHERE api_call_id = ?")
            .bind(t.body["api_call_id"].as_str().expect("id"))
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(
        audited, 1,
        "the last request's audit row was flushed on shutdown"
    );

    let secrets = [
        app.admin.secret.clone(),
        app.merchant.secret.clone(),
        app.other_merchant.secret.clone(),
    ];
    let forbidden: Vec<&str> = std::iter::once(nik.as_str())
        .chain(secrets.iter().map(String::as_str))
        .collect();

    // Process logs.
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(logs.contains("request done"), "the log was captured");
    for f in &forbidden {
        assert!(!logs.contains(f), "a secret or the NIK is in the logs");
    }
    // Every table, every column, as bytes.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tables");
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?",
        )
        .bind(&table)
        .fetch_all(&app.pool)
        .await
        .expect("columns");
        for column in columns {
            let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(`{column}` AS BINARY) FROM `{table}`"
            )))
            .fetch_all(&app.pool)
            .await
            .expect("values");
            for v in values.into_iter().flatten() {
                for f in &forbidden {
                    assert!(
                        !v.windows(f.len()).any(|w| w == f.as_bytes()),
                        "{table}.{column} holds a secret or the NIK"
                    );
                }
            }
        }
    }
    // Redis keys and values of this deployment.
    let mut c = app.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.prefix))
        .query_async(&mut c)
        .await
        .expect("keys");
    assert!(!keys.is_empty());
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .expect("type");
        // Read as bytes: the filter of claimed ids is a bitmap, not text.
        let value: String = if kind == "string" {
            let raw: Vec<u8> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut c)
                .await
                .expect("get");
            String::from_utf8_lossy(&raw).into_owned()
        } else {
            String::new()
        };
        for f in &forbidden {
            assert!(!k.contains(f) && !value.contains(f), "redis {k}");
        }
    }
    // A drained message.
    let conn = shared::amqp::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "test-drain")
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    let msg = ch
        .basic_get(
            shared::amqp::Topology::new(&app.prefix)
                .command_queue()
                .into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get")
        .expect("the transaction's command is queued");
    let text = String::from_utf8_lossy(&msg.delivery.data);
    assert!(text.contains(&user));
    for f in &forbidden {
        assert!(!text.contains(f), "a message holds a secret or the NIK");
    }
    let _ = conn.close(200, "bye".into()).await;
    let _ = std::fs::remove_dir_all(&dir);
    app.shutdown().await;
}
