//! External-id lookups in MySQL, batched. Every accepted submission asks MySQL whether its
//! external id was used before Redis's memory (SPEC §7: forever for anything that reached
//! MySQL). One point read per request made that read the most frequent statement the engine
//! runs; here the requests that arrive while earlier lookups are in flight share one
//! primary-key range read instead. With nothing in flight a lookup goes out at once, so a
//! quiet engine pays no batching delay.

use shared::db::DbError;
use shared::db::outcomes::{ExternalIdKey, find_idempotency_many};
use sqlx::MySqlPool;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Ids read by one statement at most.
const BATCH_MAX: usize = 64;
/// Statements in flight at once; more requests wait and are read together.
const IN_FLIGHT: usize = 4;
/// Lookups waiting for a statement; a full queue makes requests wait.
const QUEUE: usize = 4096;

/// The call that used an id and the SHA-256 of its body; `None` when the id is unused.
pub type Found = Option<(String, [u8; 32])>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error("external id lookup failed: {0}")]
    Db(Arc<DbError>),
    #[error("the external id lookup task has stopped")]
    Stopped,
}

struct Lookup {
    key: ExternalIdKey,
    reply: oneshot::Sender<Result<Found, LookupError>>,
}

#[derive(Clone)]
pub struct Lookups {
    tx: mpsc::Sender<Lookup>,
}

impl Lookups {
    pub fn start(pool: MySqlPool) -> Lookups {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        Lookups { tx }
    }

    /// Who used (merchant, endpoint, external id), if anyone.
    pub async fn find(
        &self,
        merchant_id: &str,
        endpoint: &str,
        external_id: &str,
    ) -> Result<Found, LookupError> {
        let (reply, rx) = oneshot::channel();
        let key = (
            merchant_id.to_owned(),
            endpoint.to_owned(),
            external_id.to_owned(),
        );
        self.tx
            .send(Lookup { key, reply })
            .await
            .map_err(|_| LookupError::Stopped)?;
        rx.await.map_err(|_| LookupError::Stopped)?
    }
}

async fn run(pool: MySqlPool, mut rx: mpsc::Receiver<Lookup>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Waiting for a permit first lets lookups pile up while the statements in flight run.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH_MAX);
        if rx.recv_many(&mut batch, BATCH_MAX).await == 0 {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(permit);
        });
    }
}

async fn answer(pool: &MySqlPool, batch: Vec<Lookup>) {
    let mut keys: Vec<ExternalIdKey> = batch.iter().map(|l| l.key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    metrics::histogram!("xyz_external_id_lookup_batch").record(keys.len() as f64);
    match find_idempotency_many(pool, &keys).await {
        Ok(found) => {
            for lookup in batch {
                let _ = lookup.reply.send(Ok(found.get(&lookup.key).cloned()));
            }
        }
        Err(e) => {
            let e = LookupError::Db(Arc::new(e));
            for lookup in batch {
                let _ = lookup.reply.send(Err(e.clone()));
            }
        }
    }
}
