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
