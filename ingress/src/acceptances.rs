//! Claims marked accepted off the request path. Once the broker confirms a command, its claim
//! turns from "publishing" to "accepted" so that a duplicate is refused at once instead of
//! waiting for the request in flight. The call's PENDING status was already written with the
//! claim, so nothing a client can read depends on this mark: the 202 goes out without waiting
//! for it (one Redis round trip fewer on every submit), and the marks of concurrent requests
//! travel together in one pipeline.
//!
//! A mark that never lands (Redis down, or this process killed before the writer ran) leaves
//! the claim "publishing": a duplicate then waits for it, and after the takeover grace a retry
//! takes the id over, when the worker's unique external id (MySQL) still refuses a second
//! contract. That is the same outcome as a failed accept before this writer existed.

use backon::{ExponentialBuilder, Retryable};
use shared::cache::Cache;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Marks waiting for the writer; a full channel makes requests wait (backpressure).
const CHANNEL_CAPACITY: usize = 20_000;
/// Marks in one pipeline at most.
const BATCH_MAX: usize = 512;

/// (claim key, call id)
type Mark = (String, String);

#[derive(Clone)]
pub struct Acceptances {
    tx: mpsc::Sender<Mark>,
}

impl Acceptances {
    /// Starts the writer; the returned handle ends once every sender is dropped and the
    /// channel is drained.
    pub fn start(cache: Cache) -> (Acceptances, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (Acceptances { tx }, tokio::spawn(writer(cache, rx)))
    }

    /// Queues the mark of `key` accepted for `api_call_id`.
    pub async fn mark(&self, key: String, api_call_id: String) {
        if self.tx.send((key, api_call_id)).await.is_err() {
            tracing::warn!("acceptance writer is gone; the claim stays publishing");
        }
    }
}

async fn writer(cache: Cache, mut rx: mpsc::Receiver<Mark>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let marked = (|| cache.mark_accepted_many(&batch))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(20))
                    .with_max_delay(Duration::from_millis(500))
                    .with_max_times(4),
            )
            .await;
        match marked {
            Ok(()) => {
                metrics::histogram!("xyz_acceptance_marks_per_batch").record(batch.len() as f64);
            }
            Err(e) => tracing::warn!(
                error = %e,
                claims = batch.len(),
                "claims could not be marked accepted; they stay publishing until taken over"
            ),
        }
        batch.clear();
    }
}
