//! Webhooks on the worker side (SPEC §11): the outbox, written inside the batch's transaction
//! (`outbox`), and the dispatcher every worker process runs to deliver it (`dispatcher`).

pub(crate) mod dispatcher;
pub(crate) mod outbox;

use tokio::sync::Notify;

/// Rung by the outbox when a batch wrote events: the dispatchers of this process look for due
/// events at once rather than at their next poll.
static WRITTEN: Notify = Notify::const_new();
