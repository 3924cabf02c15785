//! External-id lookups in MySQL, batched. Every accepted submission asks MySQL whether its
//! external id was used before Redis's memory (SPEC §7: forever for anything that reached
//! MySQL). One point read per request made that read the most frequent statement the engine
//! runs; here the requests that arrive while earlier lookups are in flight share one
//! primary-key range read instead. With nothing in flight a lookup goes out at once, so a
//! quiet engine pays no batching delay.
//!
//! A MySQL that stops answering costs each request [`QUEUE_WAIT`] plus [`READ_TIMEOUT`] at
//! most, then a 503: a read past its timeout fails its whole batch, and a request no
//! statement takes in time gives up.

use crate::batcher::{Batcher, Unanswered};
use shared::db::DbError;
use shared::db::outcomes::{ExternalIdKey, find_idempotency_many};
use sqlx::MySqlPool;
use std::sync::Arc;
use std::time::Duration;

/// Ids read by one statement at most.
const BATCH_MAX: usize = 64;
/// Statements in flight at once; more requests wait and are read together.
const IN_FLIGHT: usize = 4;
/// How long one range read may take (the pool's own wait for a connection is 3 s).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a statement to take its id.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The call that used an id and the SHA-256 of its body; `None` when the id is unused.
pub type Found = Option<(String, [u8; 32])>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error("external id lookup failed: {0}")]
    Db(Arc<DbError>),
    #[error("the external id lookup task has stopped")]
    Stopped,
    #[error("external id lookup: no answer within {0:?}")]
    Timeout(Duration),
}

#[derive(Clone)]
pub struct Lookups {
    batcher: Batcher<ExternalIdKey, Result<Found, LookupError>>,
}

impl Lookups {
    pub fn start(pool: MySqlPool) -> Lookups {
        let batcher = Batcher::start(BATCH_MAX, IN_FLIGHT, move |keys| {
            let pool = pool.clone();
            async move { answer(&pool, keys).await }
        });
        Lookups { batcher }
    }

    /// Who used (merchant, endpoint, external id), if anyone.
    pub async fn find(
        &self,
        merchant_id: &str,
        endpoint: &str,
        external_id: &str,
    ) -> Result<Found, LookupError> {
        let key = (
            merchant_id.to_owned(),
            endpoint.to_owned(),
            external_id.to_owned(),
        );
        match self.batcher.call(key, QUEUE_WAIT).await {
            Ok(found) => found,
            Err(Unanswered::Expired) => Err(LookupError::Timeout(QUEUE_WAIT)),
            Err(Unanswered::Stopped) => Err(LookupError::Stopped),
        }
    }
}

/// One range read for the batch; each key answered in order.
async fn answer(pool: &MySqlPool, keys: Vec<ExternalIdKey>) -> Vec<Result<Found, LookupError>> {
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    metrics::histogram!("xyz_external_id_lookup_batch").record(distinct.len() as f64);
    let read = tokio::time::timeout(READ_TIMEOUT, find_idempotency_many(pool, &distinct)).await;
    let e = match read {
        Ok(Ok(found)) => return keys.iter().map(|k| Ok(found.get(k).cloned())).collect(),
        Ok(Err(e)) => LookupError::Db(Arc::new(e)),
        Err(_) => LookupError::Timeout(READ_TIMEOUT),
    };
    vec![Err(e); keys.len()]
}
