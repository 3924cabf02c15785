//! The worker: consumes commands with manual acks, applies each batch in one MySQL
//! transaction, acks after the commit, then caches statuses and answers waiting ingresses.

mod cob;
pub mod config;
mod consumer;
mod handlers;
pub mod lanes;
mod supervise;
pub mod unit;
mod webhooks;

use config::WorkerConfig;
use consumer::{Deps, run_consumer};
use shared::connections::Connections;
use sqlx::MySqlPool;
use std::future::Future;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("configuration: {0}")]
    Config(String),
}

/// How long the consumers have to finish their batches after the stop signal (operators and
/// `scripts/stop.sh` expect an exit within 10 s).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(9);

/// Runs the consumers and the webhook dispatcher until `shutdown` resolves; each consumer
/// stops consuming (`basic.cancel`), commits and acks the batch it holds and then the
/// deliveries already prefetched, for up to 5 s, and closes its channel (what is left returns
/// to the queue); the dispatcher stops leasing and lets its deliveries in flight finish.
pub async fn run<F>(
    config: WorkerConfig,
    pool: Option<MySqlPool>,
    shutdown: F,
) -> Result<(), WorkerError>
where
    F: Future<Output = ()>,
{
    let Connections {
        pool,
        cache,
        topology,
    } = Connections::open(&config.database, &config.redis, &config.amqp, pool)
        .await
        .map_err(|e| WorkerError::Config(e.to_string()))?;
    let keyring = config
        .crypto
        .keyring()
        .map_err(|e| WorkerError::Config(e.to_string()))?;
    let dispatcher = webhooks::dispatcher::Dispatcher::new(
        pool.clone(),
        keyring,
        config.dispatch.clone(),
        config.webhooks.loopback(),
    )
    .map_err(WorkerError::Config)?;
    let (handoff, handed) = dispatcher.handoff();
    let (stop_tx, stop_rx) = watch::channel(false);
    let cob = config.cob_enabled.then(|| {
        tokio::spawn(cob::schedule(
            pool.clone(),
            cob::options(&config),
            stop_rx.clone(),
        ))
    });
    let deps = Deps {
        pool,
        cache,
        topology,
        config: config.clone(),
        handoff: Some(handoff),
    };
    let handles: Vec<_> = (0..config.concurrency.max(1))
        .map(|i| {
            let (deps, stop) = (deps.clone(), stop_rx.clone());
            tokio::spawn(supervise::supervise(i, stop_rx.clone(), move || {
                run_consumer(deps.clone(), i, stop.clone())
            }))
        })
        .collect();
    // Deliveries still in flight get most of the grace; what they cannot finish, their
    // leases bring back.
    let dispatching = tokio::spawn(dispatcher.run(stop_rx.clone(), handed, SHUTDOWN_GRACE / 2));
    shutdown.await;
    tracing::info!("stopping: finishing the batches in hand");
    let _ = stop_tx.send(true);
    // Bounded: a consumer stuck on a half-dead connection must not keep the process alive
    // (its unacked deliveries return to the queue when the process exits).
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for h in handles {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            tracing::warn!("a consumer did not stop in time; exiting anyway");
        }
    }
    if tokio::time::timeout_at(deadline, dispatching)
        .await
        .is_err()
    {
        tracing::warn!("the webhook dispatcher did not stop in time; exiting anyway");
    }
    if let Some(cob) = cob {
        // A COB chunk in flight rolls back with its connection; a rerun redoes only its rows.
        cob.abort();
    }
    tracing::info!("worker stopped");
    Ok(())
}
