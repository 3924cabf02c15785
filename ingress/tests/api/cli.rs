//! The operator CLI, run as the real binary against this test's database and queues.

use crate::helpers::*;
use shared::messages::{COMMAND_SCHEMA_VERSION, Command, CommandPayload, TransactionPayload};
use std::process::Output;
use std::time::Duration;
use tokio::process::Command as Process;

/// Runs the CLI without blocking the runtime (the in-process ingress must keep serving).
pub(crate) async fn xyzctl(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("xyzctl");
    assert!(
        bin.exists(),
        "{} missing: run the tests with scripts/test.sh",
        bin.display()
    );
    let mut cmd = Process::new(bin);
    cmd.env("MIGRATION_DATABASE_URL", database_url(&app.pool))
        .env("AMQP_PREFIX", &app.prefix)
        .env("RUST_LOG", "error")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("xyzctl runs")
}

fn json_line(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "xyzctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("one line")).expect("JSON line")
}

#[sqlx::test(migrations = "../migrations")]
async fn keys_are_created_listed_rotated_and_revoked(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let user = app.create_user(["100", "100", "100", "100"]).await;
    let created = json_line(
        &xyzctl(
            &app,
            &["keys", "create", "--name", "shop", "--role", "merchant"],
            &[],
        )
        .await,
    );
    assert_eq!(created["role"], "merchant");
    assert_eq!(created["name"], "shop");
    let key = Key {
        client_id: created["client_id"].as_str().expect("id").to_owned(),
        secret: created["secret"].as_str().expect("secret").to_owned(),
        merchant_id: "shop".into(),
    };
    let list = xyzctl(&app, &["keys", "list"], &[]).await;
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains(&key.client_id));
    assert!(!listed.contains(&key.secret), "list never shows secrets");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT secret_ciphertext FROM api_keys WHERE client_id = ?")
            .bind(&key.client_id)
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert!(
        !stored
            .windows(key.secret.len())
            .any(|w| w == key.secret.as_bytes()),
        "secret stored encrypted"
    );

    let path = format!("/users/{user}/limits");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.get(&key, &path).await.status, 200);

    // Rotation: the new secret works at once, the old one during its grace period.
    let rotated = json_line(
        &xyzctl(
            &app,
            &["keys", "rotate", &key.client_id, "--grace-secs", "3"],
            &[],
        )
        .await,
    );
    let new_key = Key {
        secret: rotated["secret"].as_str().expect("secret").to_owned(),
        ..key.clone()
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.get(&new_key, &path).await.status, 200);
    assert_eq!(
        app.get(&key, &path).await.status,
        200,
        "old secret within grace"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.get(&key, &path).await.status,
        401,
        "old secret after grace"
    );
    assert_eq!(app.get(&new_key, &path).await.status, 200);

    let revoked = json_line(&xyzctl(&app, &["keys", "revoke", &key.client_id], &[]).await);
    assert_eq!(revoked["revoked"], true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.get(&new_key, &path).await.status, 401);
    assert!(
        !xyzctl(&app, &["keys", "revoke", &key.client_id], &[])
            .await
            .status
            .success()
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn call_signs_and_sends_a_request(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["100", "100", "100", "100"]).await;
    let env = [
        ("BASE_URL", app.base.as_str()),
        ("CLIENT_ID", app.admin.client_id.as_str()),
        ("CLIENT_SECRET", app.admin.secret.as_str()),
    ];
    let out = xyzctl(
        &app,
        &["call", "GET", &format!("/users/{user}/limits")],
        &env,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("200\n"), "{text}");
    assert!(text.contains("\"granted\": \"100.00\""), "{text}");
    let body = transaction_body(&user, "50", "0", "50", "0", 1);
    let out = xyzctl(
        &app,
        &["call", "POST", "/transaction", &body, "--wait", "10"],
        &env,
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("201\n"), "{text}");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn dead_lettered_commands_replay_exactly_once(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "1000", "1000", "1000"]).await;
    let topology = shared::amqp::Topology::new(&app.prefix);
    let call = shared::ids::new_api_call_id();
    let command = Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: call.clone(),
        merchant_id: app.merchant.merchant_id.clone(),
        client_id: app.merchant.client_id.clone(),
        external_id: fresh_id(),
        body_sha256: "00".repeat(32),
        accepted_at: chrono::Utc::now(),
        reply_to: None,
        payload: CommandPayload::Transaction(TransactionPayload {
            user_id: user.clone(),
            terms: shared::contract::ContractTerms {
                otr: "100".parse().expect("money"),
                admin_fee: "0".parse().expect("money"),
                harga_aset: "100".parse().expect("money"),
                bunga_persen: shared::money::Rate::parse_json("0").expect("rate"),
                tenor: shared::contract::Tenor::One,
            },
            nama_aset: "TV".into(),
        }),
    };
    // As if dead-lettered during an outage: twice the same command, and one that is garbage.
    publish_raw(
        &topology.dead_letter_queue(),
        &[command.encode(), command.encode(), b"garbage".to_vec()],
    )
    .await;
    assert_eq!(dead_letter_count_settled(&app.prefix, 3).await, 3);

    let listed = xyzctl(&app, &["dlq", "list"], &[]).await;
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(text.matches(&call).count(), 2);
    assert_eq!(
        dead_letter_count_settled(&app.prefix, 3).await,
        3,
        "listing leaves them in place"
    );

    let replay = xyzctl(&app, &["dlq", "replay", "--all"], &[]).await;
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&replay.stdout).lines().count(), 2);
    // The call never passed an ingress, so it has no PENDING status: wait for its outcome.
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        let r = app.get(&app.merchant, &format!("/status/{call}")).await;
        if r.status == 200 {
            status = r.data().clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "APPROVED", "{status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let contracts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE api_call_id = ?")
            .bind(&call)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(contracts, 1, "completed exactly once");
    assert_eq!(app.limits(&user).await["1"]["available"], "900.00");
    assert_eq!(
        dead_letter_count_settled(&app.prefix, 1).await,
        1,
        "the garbage stays"
    );

    // Safe to run twice: nothing more to replay.
    let again = xyzctl(&app, &["dlq", "replay", "--all"], &[]).await;
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout).lines().count(), 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn master_key_rotation_reencrypts_secrets_and_niks(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    app.create_user(["100", "100", "100", "100"]).await;
    let new_key = "k2=bmV3LW1hc3Rlci1rZXktZm9yLXRoZS1yb3RhdGlvbi0=";
    let keys = format!("{},{new_key}", shared::config::DEV_MASTER_KEYS);
    let env = [("MASTER_KEYS", keys.as_str()), ("MASTER_KEY_ID", "k2")];
    let out = json_line(&xyzctl(&app, &["rotate-master-key"], &env).await);
    assert_eq!(out["master_key_id"], "k2");
    assert_eq!(out["key_secrets_reencrypted"], 3);
    assert_eq!(out["niks_reencrypted"], 1);
    let ids: Vec<String> = sqlx::query_scalar("SELECT secret_key_id FROM api_keys")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    assert!(ids.iter().all(|id| id == "k2"));
    let nik_ids: Vec<String> = sqlx::query_scalar("SELECT nik_key_id FROM users")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    assert!(nik_ids.iter().all(|id| id == "k2"));
    // The secrets still decrypt to what they were, under the new key.
    let keyring =
        shared::crypto::Keyring::from_config(&keys, "k2", shared::config::DEV_BLIND_INDEX_KEY)
            .expect("keyring");
    let loaded = shared::db::keys::load_active_keys(&app.pool, &keyring)
        .await
        .expect("keys");
    let admin = loaded
        .iter()
        .find(|k| k.client_id == app.admin.client_id)
        .expect("admin");
    assert_eq!(admin.secret, app.admin.secret.as_bytes());
    // Running it again moves nothing.
    let again = json_line(&xyzctl(&app, &["rotate-master-key"], &env).await);
    assert_eq!(again["key_secrets_reencrypted"], 0);
    assert_eq!(again["niks_reencrypted"], 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_app_user_has_data_rights_only_and_runs_the_engine(pool: sqlx::MySqlPool) {
    let user = format!("t_app_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = "app-password-for-tests-1";
    let probe = spawn_app_with(pool.clone(), 0).await;
    let out = json_line(
        &xyzctl(
            &probe,
            &[
                "grant-app-user",
                "--user",
                &user,
                "--password",
                password,
                "--hosts",
                "127.0.0.1,localhost",
            ],
            &[],
        )
        .await,
    );
    assert_eq!(out["privileges"], "SELECT, INSERT, UPDATE");
    probe.shutdown().await;
    let db = database_url(&pool)
        .rsplit('/')
        .next()
        .expect("db name")
        .to_owned();
    let app_pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(8)
        .connect(&format!("mysql://{user}:{password}@127.0.0.1:3306/{db}"))
        .await
        .expect("the app user connects");
    for ddl in [
        "CREATE TABLE t_x (id INT)",
        "DROP TABLE merchants",
        "ALTER TABLE users ADD COLUMN x INT",
        "DELETE FROM merchants",
        "TRUNCATE TABLE bills",
    ] {
        let e = sqlx::query(ddl).execute(&app_pool).await.expect_err(ddl);
        assert!(e.to_string().contains("denied"), "{ddl}: {e}");
    }
    // The whole engine runs on these rights.
    let app = spawn_app_with(app_pool, 1).await;
    let u = app.create_user(["1000", "1000", "1000", "1000"]).await;
    let body = transaction_body(&u, "100", "0", "100", "0", 1);
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
    app.shutdown().await;
    for host in ["127.0.0.1", "localhost"] {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{user}'@'{host}'"
        )))
        .execute(&pool)
        .await;
    }
}
