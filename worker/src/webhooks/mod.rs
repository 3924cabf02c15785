//! Webhooks on the worker side (SPEC §11): the outbox, written inside the batch's transaction
//! (`outbox`), and the dispatcher every worker process runs to deliver it (`dispatcher`).
//!
//! A batch's events are written already leased to its own process's dispatcher and handed to
//! it once the batch commits ([`Handoff`]): the first attempt needs neither a poll nor a read
//! of what the batch just wrote. The poll finds the rest: retries, events whose process died
//! before delivering (their lease runs out), and events written elsewhere (close of business).

pub(crate) mod dispatcher;
pub(crate) mod outbox;

use shared::db::webhooks::{Lease, LeasedEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Rung by the outbox when a batch wrote events no dispatcher was handed: the dispatchers of
/// this process look for due events at once rather than at their next poll.
static WRITTEN: Notify = Notify::const_new();

/// Events handed over and not yet taken by the dispatcher; beyond this, an event waits for
/// its lease to run out and is found by a poll.
const HANDOFF_CAPACITY: usize = 16_384;

/// How a process's batches pass the events they record to its dispatcher.
#[derive(Clone)]
pub struct Handoff {
    lease_id: Arc<str>,
    lease: Duration,
    to_dispatcher: mpsc::Sender<LeasedEvent>,
}

impl Handoff {
    fn new(lease_id: &str, lease: Duration) -> (Handoff, mpsc::Receiver<LeasedEvent>) {
        let (to_dispatcher, rx) = mpsc::channel(HANDOFF_CAPACITY);
        let handoff = Handoff {
            lease_id: lease_id.into(),
            lease,
            to_dispatcher,
        };
        (handoff, rx)
    }

    /// The lease the events written now are taken under.
    fn lease(&self, now: chrono::DateTime<chrono::Utc>) -> Lease<'_> {
        Lease {
            id: &self.lease_id,
            until: now + self.lease,
        }
    }

    /// Hands over what a batch recorded, once it has committed.
    pub(crate) fn committed(&self, recorded: outbox::Recorded) {
        for event in recorded.into_events() {
            if self.to_dispatcher.try_send(event).is_err() {
                metrics::counter!("xyz_webhook_handoff_overflow_total").increment(1);
            }
        }
    }
}
