//! Faults that touch the machine's shared services. scripts/test.sh runs this binary alone,
//! after every other test, and each test restores the service on every exit path.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use helpers::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn mariadb_answers() -> bool {
    Command::new("mariadb-admin")
        .args(["-uroot", "ping"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start_mariadb() {
    let _ = Command::new("start-stop-daemon")
        .args([
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/mariadbd",
        ])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mariadb_answers() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Stops MariaDB; starts it again when dropped, even if the test panics.
struct MariaDbOutage;

impl MariaDbOutage {
    fn begin() -> MariaDbOutage {
        let status = Command::new("mariadb-admin")
            .args(["-uroot", "shutdown"])
            .status()
            .expect("mariadb-admin runs");
        assert!(status.success(), "MariaDB did not shut down");
        MariaDbOutage
    }
}

impl Drop for MariaDbOutage {
    fn drop(&mut self) {
        if !mariadb_answers() {
            start_mariadb();
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn mariadb_stopped_for_20_seconds_mid_burst_loses_nothing(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 2).await;
    let users: Vec<String> = futures_util::future::join_all(
        (0..4).map(|_| app.create_user(["50000", "50000", "50000", "50000"])),
    )
    .await;
    let calls = submit_burst(&app, &users, 400).await;
    let outage = MariaDbOutage::begin();
    tokio::time::sleep(Duration::from_secs(20)).await;
    drop(outage);
    assert!(mariadb_answers(), "MariaDB is back");
    // Every accepted call completes once the database returns; nothing was dead-lettered.
    assert_all_final(&app, &calls).await;
    assert_eq!(dead_letter_count(&app.prefix).await, 0);
    assert_limit_equation(&app.pool).await;
    let outcomes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM async_outcomes")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(outcomes, calls.len() as i64);
    app.shutdown().await;
}

/// `rabbitmqctl` with `args`; its standard output.
fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn memory_alarm_is_on() -> bool {
    rabbitmqctl(&["eval", "rabbit_alarm:get_alarms()."]).contains("memory")
}

/// RabbitMQ's memory alarm: a watermark so low that the broker blocks every publishing
/// connection. The watermark is set back when dropped, even if the test panics.
struct MemoryAlarm {
    /// As `set_vm_memory_high_watermark` takes it: a fraction, or `absolute <bytes>`.
    watermark: Vec<String>,
}

impl MemoryAlarm {
    fn raise() -> MemoryAlarm {
        let current = rabbitmqctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]);
        let watermark = match current.strip_prefix("{absolute,") {
            Some(bytes) => vec![
                "absolute".to_owned(),
                bytes.trim_end_matches('}').trim().to_owned(),
            ],
            None => vec![current],
        };
        let alarm = MemoryAlarm { watermark };
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.0001"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !memory_alarm_is_on() {
            assert!(Instant::now() < deadline, "the memory alarm never went off");
            std::thread::sleep(Duration::from_millis(250));
        }
        alarm
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(self.watermark.iter().map(String::as_str));
        let _ = Command::new("rabbitmqctl").arg("-q").args(&args).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while memory_alarm_is_on() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_broker_memory_alarm_answers_submissions_503_and_their_retries_are_accepted_after_it(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_configured(pool, 0, |c| {
        c.confirm_timeout_ms = 2000;
        c.request_timeout_ms = 20_000;
    })
    .await;
    let body = transaction_body("USR_alarm", "1000", "100", "900", "2.5", 3);
    let ids = ["alarm-1", "alarm-2", "alarm-3"];
    let alarm = MemoryAlarm::raise();
    // A blocked broker takes a publish and never confirms it; each request is still answered
    // (the limit is the test's own, far above the ingress's timeouts).
    for id in ids {
        let r = tokio::time::timeout(Duration::from_secs(90), app.post_transaction(id, &body))
            .await
            .expect("answered rather than left waiting on the blocked broker");
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.action(), "SERVICE_UNAVAILABLE");
    }
    drop(alarm);
    // Each claim was released or kept for a re-send: the retries are accepted.
    for id in ids {
        let mut r = app.post_transaction(id, &body).await;
        for _ in 0..30 {
            if r.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            r = app.post_transaction(id, &body).await;
        }
        assert_eq!(r.status, 202, "{id}: {}", r.body);
    }
    app.shutdown().await;
}
