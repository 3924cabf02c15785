//! The filter of claimed external ids (`shared::cache::seen_positions`), kept complete.
//!
//! Every claim sets its id's bits, so the filter only needs MySQL when Redis has lost it
//! (Redis keeps no data across a restart): then its completeness bit is gone with it, every
//! claim asks MySQL as before, and one ingress rebuilds the filter from `idempotency_keys`.
//! The rebuild reads the table twice, a few seconds apart: the first pass covers every row
//! committed before it; the second, a batch that was being committed when Redis lost the
//! filter (its worker had set its bits, and they were lost). Every batch a worker starts
//! later sets its bits before it commits (`Cache::mark_seen`), so after the second pass
//! every row has its bits. The completeness bit is set only if the rebuild lock is still
//! held: a Redis that lost the filter again meanwhile lost the lock with it.

use shared::cache::{Cache, CacheError};
use shared::db::DbError;
use shared::db::outcomes::idempotency_keys_after;
use sqlx::MySqlPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often an ingress checks the filter is complete.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Ids read and marked per statement.
const CHUNK: i64 = 5_000;
/// How long a rebuild may hold its lock.
const LOCK_TTL: Duration = Duration::from_secs(600);
/// The pause between the two passes: longer than a batch takes from its start to its commit.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Keeps `complete` in step with the filter and rebuilds it when it is not complete.
pub fn spawn_maintainer(
    pool: MySqlPool,
    cache: Cache,
    holder: String,
    complete: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match cache.seen_complete().await {
                Ok(true) => complete.store(true, Ordering::Relaxed),
                Ok(false) => {
                    complete.store(false, Ordering::Relaxed);
                    match cache.lock_seen_rebuild(&holder, LOCK_TTL).await {
                        Ok(true) => match rebuild(&pool, &cache, &holder, SETTLE).await {
                            Ok(Some(ids)) => {
                                tracing::info!(ids, "filter of claimed external ids rebuilt");
                            }
                            Ok(None) => tracing::warn!(
                                "the filter was lost again during its rebuild; starting over"
                            ),
                            Err(e) => tracing::warn!(error = %e, "filter rebuild failed"),
                        },
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "filter check failed"),
                    }
                }
                // Redis is down: claims fail with it, and the next check tells.
                Err(e) => tracing::debug!(error = %e, "filter check failed"),
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    })
}

/// Sets the bits of every id in MySQL (two passes, `settle` apart), then the completeness
/// bit if `holder` still holds the rebuild lock. Returns the ids read by the last pass, or
/// `None` when the lock was lost.
pub async fn rebuild(
    pool: &MySqlPool,
    cache: &Cache,
    holder: &str,
    settle: Duration,
) -> Result<Option<u64>, RebuildError> {
    mark_every_id(pool, cache).await?;
    tokio::time::sleep(settle).await;
    let ids = mark_every_id(pool, cache).await?;
    Ok(cache.complete_seen(holder).await?.then_some(ids))
}

/// One pass: sets the bits of every id in `idempotency_keys`, chunk by chunk; returns how
/// many it read.
async fn mark_every_id(pool: &MySqlPool, cache: &Cache) -> Result<u64, RebuildError> {
    let mut ids = 0;
    let mut after = None;
    loop {
        let rows = idempotency_keys_after(pool, after.as_ref(), CHUNK).await?;
        let Some(last) = rows.last().cloned() else {
            return Ok(ids);
        };
        let positions: Vec<_> = rows
            .iter()
            .map(|(merchant, endpoint, external)| {
                cache.seen_positions(merchant, endpoint, external)
            })
            .collect();
        cache.mark_seen(&positions).await?;
        ids += rows.len() as u64;
        after = Some(last);
    }
}
