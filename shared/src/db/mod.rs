//! MySQL/MariaDB: pool, migrations, error classification, and the queries every binary shares.

pub mod activity;
pub mod audit;
pub mod cob;
pub mod contracts;
mod failover;
pub mod keys;
pub mod limit_changes;
pub mod outcomes;
pub mod settlement;
pub mod users;
pub mod webhooks;

use crate::nodes::Nodes;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::query_builder::Separated;
use sqlx::{ConnectOptions, Executor, MySql, QueryBuilder};
use std::str::FromStr;
use std::time::Duration;

/// Strict, and the same on MariaDB 10.11 and MySQL 8.4.
pub(crate) const SQL_MODE: &str = "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Sqlx(e) if is_unique_violation(e))
    }
}

/// The pool for `nodes` (`DATABASE_URL`), every connection in UTC with an explicit
/// `sql_mode`, in READ COMMITTED. With several nodes, on one of them at a time (`failover`).
///
/// READ COMMITTED because nothing here relies on a repeatable snapshot: every decision that
/// must not race reads its rows with a locking read (`FOR UPDATE`) or a conditional write.
/// Under REPEATABLE READ those locking reads also lock the gaps between index records, so a
/// payment's read of its installments would hold up every other batch inserting installments
/// of new contracts next to them (with time-ordered contract numbers: at the same edge).
pub async fn connect(nodes: &Nodes, max_connections: u32) -> Result<MySqlPool, sqlx::Error> {
    if nodes.count() > 1 {
        return failover::pool(nodes, pool_options(max_connections));
    }
    let options = connect_options(nodes.url(0))?;
    Ok(pool_options(max_connections).connect_lazy_with(options))
}

/// Prepared statements each connection keeps. A worker batch's multi-row statements come in
/// one shape per row count (a few hundred shapes at the default batch size), and evicting a
/// statement costs far more than keeping it: sqlx 0.9.0 sends the close and the next command
/// as two writes on a socket without TCP_NODELAY, so the second waits for the server's delayed
/// ACK, 40 ms, with the batch's row locks held (launchbadge/sqlx#4335, fixed after 0.9.0).
/// Measured: batches 3× slower once the default cache of 100 was full. Bounded by the server's
/// `max_prepared_stmt_count` (16382 by default) across all connections.
pub(crate) const STATEMENT_CACHE_CAPACITY: usize = 1024;

pub fn connect_options(url: &str) -> Result<MySqlConnectOptions, sqlx::Error> {
    Ok(MySqlConnectOptions::from_str(url)?
        .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
        .timezone(Some("+00:00".to_owned()))
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

pub fn pool_options(max_connections: u32) -> MySqlPoolOptions {
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET SESSION sql_mode = '{SQL_MODE}'"
                )))
                .await?;
                // The statement form both MariaDB and MySQL 8 know.
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                Ok(())
            })
        })
}

/// The row counts a multi-row write is sent in: powers of two, largest first (37 rows go as
/// 32 + 4 + 1 in three statements). Each shape (number of placeholders) is then one of a
/// dozen that every connection prepares once and keeps. With one statement per row count, a
/// fresh engine prepared ~1000 statements (a parse and a plan each, in MariaDB) in its first
/// 6000 requests at a moderate rate, and still ~100 per run after five runs.
pub fn fixed_size_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = 1usize << (usize::BITS - 1 - rest.len().leading_zeros());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// A multi-row write: `head`, then `VALUES` with one tuple per row (`bind` pushes a row's
/// values), then `tail`; sent in [`fixed_size_chunks`], so the statements stay prepared.
/// Several statements, so a caller that needs all or none runs it in a transaction. The rows
/// the statements affected, in all.
pub async fn write_rows<T>(
    conn: &mut MySqlConnection,
    head: &str,
    tail: &str,
    rows: &[T],
    mut bind: impl FnMut(Separated<'_, MySql, &'static str>, &T),
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in fixed_size_chunks(rows) {
        let mut query = QueryBuilder::new(head);
        query.push_values(chunk, &mut bind);
        query.push(tail);
        affected += query.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

/// Appends `(?, ?, …)` to `query`, binding each id: the list of an `IN`. The caller makes
/// sure there is at least one id (`IN ()` is not SQL). The list is padded to a power of two
/// by repeating its last id (the same set), so a statement comes in a dozen shapes, each
/// prepared once per connection, rather than one per length (see
/// [`STATEMENT_CACHE_CAPACITY`]).
pub fn push_in_list<'a>(query: &mut QueryBuilder<MySql>, ids: impl IntoIterator<Item = &'a str>) {
    query.push("(");
    let mut list = query.separated(", ");
    let mut n = 0usize;
    let mut last = None;
    for id in ids {
        list.push_bind(id);
        n += 1;
        last = Some(id);
    }
    if let Some(last) = last {
        for _ in n..n.next_power_of_two() {
            list.push_bind(last);
        }
    }
    query.push(")");
}

fn mysql_error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|m| m.number()),
        _ => None,
    }
}

/// MariaDB reports no constraint name; the error number is what counts (1062).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    mysql_error_number(e) == Some(1062)
}

/// Errors after which the whole transaction may simply be run again: deadlock (1213, also a
/// Galera certification failure), lock wait timeout (1205), server shutdown or a killed
/// connection (1053, 1927, 2006, 2013), a Galera node out of the primary component (1047
/// "WSREP has not yet prepared node for application use", or 1180 at its commit; the pool
/// moves to another node, `failover`), a lost or refused connection, or a pool that could
/// not connect.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(_) => matches!(
            mysql_error_number(e),
            Some(1213 | 1205 | 1053 | 1927 | 2006 | 2013 | 1040 | 1317 | 1047 | 1180)
        ),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

pub fn to_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

pub(crate) fn from_naive(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Readiness: one round trip.
pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::fixed_size_chunks;

    #[test]
    fn chunks_are_descending_powers_of_two_that_keep_every_row_in_order() {
        for n in [0usize, 1, 2, 3, 7, 32, 37, 64, 191, 500] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_size_chunks(&rows).collect();
            let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert!(sizes.iter().all(|s| s.is_power_of_two()), "{n}: {sizes:?}");
            assert!(sizes.windows(2).all(|w| w[0] > w[1]), "{n}: {sizes:?}");
            assert_eq!(chunks.concat(), rows, "{n}");
        }
        let rows = [0u8; 37];
        let sizes: Vec<usize> = fixed_size_chunks(&rows).map(<[u8]>::len).collect();
        assert_eq!(sizes, [32, 4, 1]);
    }
}
