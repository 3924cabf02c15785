//! One writer among the nodes of `DATABASE_URL`. Every node of a Galera cluster takes writes,
//! but two nodes changing the same rows at once conflict at certification (one commit fails
//! with 1213); the usual setup, kept here, is to write on one node and move to the next one
//! when it fails.
//!
//! A task checks the current node every second (at once when a pooled connection finds its
//! node gone) on a connection of its own: it must answer
//! and, when it runs Galera (`wsrep_on`), be ready (`wsrep_ready`: a node cut off from the
//! primary component answers every query with 1047). When it is not, the task moves the pool
//! to the next node that is: new connections go there (`Pool::set_connect_options`), and the
//! pool's connections to the node it left are closed as they are next acquired. The batch or
//! request that failed meanwhile is retried (`is_transient`); the writer stays where it moved,
//! so a node back in service is used again when the next one fails.

use super::connect_options;
use crate::nodes::Nodes;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the current node is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a check (a connection included) may take before the node counts as gone.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// When the writer last moved: connections opened before it lead to the node it left.
#[derive(Default)]
struct LastMove(Mutex<Option<Instant>>);

impl LastMove {
    fn record(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether a connection opened `age` ago predates the last move.
    fn predates(&self, age: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|moved| age > moved.elapsed())
    }
}

/// Why a node cannot be the writer.
#[derive(Debug, thiserror::Error)]
enum Unready {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("the Galera node is not ready (wsrep_ready is not ON)")]
    NotReady,
}

impl From<std::io::Error> for Unready {
    fn from(e: std::io::Error) -> Unready {
        Unready::Sqlx(e.into())
    }
}

/// The pool on the first of `nodes` and the task that keeps it on a node that answers.
pub(super) fn pool(
    nodes: &Nodes,
    pool_options: MySqlPoolOptions,
) -> Result<MySqlPool, sqlx::Error> {
    let options = (0..nodes.count())
        .map(|node| connect_options(nodes.url(node)))
        .collect::<Result<Vec<_>, _>>()?;
    let last_move = Arc::new(LastMove::default());
    let retired = last_move.clone();
    let wake = Arc::new(Notify::new());
    let lost = wake.clone();
    let pool = pool_options
        // An idle connection to the node left is closed instead of handed out, before the
        // ping that `test_before_acquire` would send first: that node may answer pings
        // (out of the primary component) or nothing at all (a ping waits for the acquire
        // timeout). Connections opened since the move are pinged as usual.
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let retire = retired.predates(meta.age);
            let lost = lost.clone();
            Box::pin(async move {
                if retire {
                    return Ok(false);
                }
                if let Err(e) = conn.ping().await {
                    lost.notify_one();
                    return Err(e);
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options[0].clone());
    metrics::gauge!("xyz_db_node").set(0.0);
    tokio::spawn(keep_writer(
        pool.clone(),
        nodes.clone(),
        options,
        last_move,
        wake,
    ));
    Ok(pool)
}

/// Checks the writer every second, or when `wake` is notified, and moves the pool when it
/// fails, until the pool closes.
async fn keep_writer(
    pool: MySqlPool,
    nodes: Nodes,
    options: Vec<MySqlConnectOptions>,
    last_move: Arc<LastMove>,
    wake: Arc<Notify>,
) {
    let mut writer = 0;
    let mut checker: Option<MySqlConnection> = None;
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        let answered = match checker.as_mut() {
            Some(conn) => matches!(
                tokio::time::timeout(CHECK_TIMEOUT, ready(conn)).await,
                Ok(Ok(()))
            ),
            None => false,
        };
        if !answered {
            if let Some(conn) = checker.take() {
                // Bounded: the node may be gone without a reset.
                let _ = tokio::time::timeout(CHECK_TIMEOUT, conn.close()).await;
            }
            // A fresh connection to the writer first (the checker's own may be all that broke),
            // then each other node in turn.
            let found = nodes
                .first_answering(writer, CHECK_TIMEOUT, "MySQL", |node| {
                    open_ready(&options[node])
                })
                .await;
            match found {
                Ok((conn, node)) => {
                    checker = Some(conn);
                    if node != writer {
                        pool.set_connect_options(options[node].clone());
                        last_move.record();
                        metrics::gauge!("xyz_db_node").set(node as f64);
                        tracing::warn!(from = writer, node, host = %nodes.label(node), "MySQL writer moved to another node");
                        writer = node;
                    }
                }
                Err(e) => {
                    tracing::warn!(node = writer, error = %e, "no MySQL node is ready; the writer stays")
                }
            }
        }
        tokio::select! {
            () = &mut closed => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = wake.notified() => {}
        }
    }
}

async fn open_ready(options: &MySqlConnectOptions) -> Result<MySqlConnection, Unready> {
    let mut conn = options.connect().await?;
    ready(&mut conn).await?;
    Ok(conn)
}

/// Whether the node takes the application's queries: it answers one, and a Galera node is
/// ready. MySQL and MariaDB without Galera have no `wsrep_on` or have it OFF.
async fn ready(conn: &mut MySqlConnection) -> Result<(), Unready> {
    sqlx::raw_sql("SELECT 1").execute(&mut *conn).await?;
    if show(conn, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")
        .await?
        .as_deref()
        == Some("ON")
        && show(conn, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'")
            .await?
            .as_deref()
            != Some("ON")
    {
        return Err(Unready::NotReady);
    }
    Ok(())
}

/// The value of the one row a `SHOW … LIKE` returns, if any.
async fn show(
    conn: &mut MySqlConnection,
    statement: &'static str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::raw_sql(statement).fetch_optional(&mut *conn).await?;
    row.map(|r| r.try_get::<String, _>(1)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_opened_before_a_move_are_retired() {
        let last_move = LastMove::default();
        assert!(!last_move.predates(Duration::from_secs(3600)));
        last_move.record();
        std::thread::sleep(Duration::from_millis(20));
        assert!(last_move.predates(Duration::from_secs(1)));
        assert!(!last_move.predates(Duration::from_millis(1)));
    }
}
