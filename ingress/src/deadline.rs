//! The request deadline (`REQUEST_TIMEOUT_MS`): no request waits forever. Each wait below it
//! is bounded on its own (a publish by the confirm timeout, the batchers' queues, MySQL reads,
//! the audit channel), so the deadline is the safety net for whatever nothing else bounds.
//!
//! The frame (`pipeline::frame`) runs every request in its own task and waits for it until the
//! deadline; past it, it answers SPEC §3's envelope, 503 `SERVICE_UNAVAILABLE` with
//! `Retry-After`, with the request's api call id and audit row. The task is never cut: a
//! claim is always accepted or released by the request that took it. A `Prefer: wait` ends
//! before the deadline ([`Deadline::cap`]).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::envelope::MessageAction;
use std::time::Duration;
use tokio::time::Instant;

/// What a `Prefer: wait` leaves before the deadline: time to read the status and answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The instant this request is answered 503 if it has not been answered before.
#[derive(Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// The task's result, or `None` when the deadline came first (the task goes on).
    pub async fn wait<T>(
        self,
        task: tokio::task::JoinHandle<T>,
    ) -> Option<Result<T, tokio::task::JoinError>> {
        tokio::time::timeout_at(self.0, task).await.ok()
    }

    /// `wait`, shortened so that it ends [`ANSWER_MARGIN`] before the deadline.
    pub fn cap(self, wait: Duration) -> Duration {
        let left = self
            .0
            .saturating_duration_since(Instant::now())
            .saturating_sub(ANSWER_MARGIN);
        wait.min(left)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Deadline {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Deadline, ApiError> {
        crate::pipeline::set_by_a_layer(parts, "the request deadline")
    }
}

/// The 503 of a request past its deadline.
pub(crate) fn exceeded(state: &AppState) -> Response {
    metrics::counter!("xyz_request_deadline_exceeded_total").increment(1);
    tracing::warn!(
        timeout_ms = state.request_timeout.as_millis() as u64,
        "request past its deadline: answering 503"
    );
    ApiError {
        action: MessageAction::ServiceUnavailable,
        data: json!("the request took too long; retry with the same X-External-Id"),
        retry_after: Some(1),
    }
    .into_response()
}
