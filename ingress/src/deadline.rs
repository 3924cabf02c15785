//! The request deadline (`REQUEST_TIMEOUT_MS`): no request waits forever. Each wait below it
//! is bounded on its own (a publish by the confirm timeout, the batchers' queues, MySQL reads,
//! the audit channel), so the deadline is the safety net for whatever nothing else bounds.
//!
//! Past the deadline tower-http's timeout drops the routes' future and answers a bare 408,
//! which [`mark`] turns into SPEC §3's envelope: 503 `SERVICE_UNAVAILABLE` with `Retry-After`.
//! Both sit inside the frame (`routes::router`), so the request keeps its api call id and its
//! audit row. Dropping a future must not cut a claim halfway (claimed, then neither accepted
//! nor released): the endpoints that claim run in their own task ([`own_task`]), which the
//! deadline stops waiting for, never stops; a `Prefer: wait` ends before it ([`Deadline::cap`]).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::envelope::MessageAction;
use std::time::Duration;
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

/// What the timeout layer answers. No endpoint answers 408 (no SPEC action maps to it), so a
/// 408 inside the frame is the deadline's.
const ELAPSED: StatusCode = StatusCode::REQUEST_TIMEOUT;

/// What a `Prefer: wait` leaves before the deadline: time to read the status and answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The instant this request is answered 503 if it has not been answered before.
#[derive(Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
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

/// The timeout itself, inside [`mark`].
pub(crate) fn timeout(state: &AppState) -> TimeoutLayer {
    TimeoutLayer::with_status_code(ELAPSED, state.request_timeout)
}

/// Sets the request's [`Deadline`], and answers a request that passed it in the envelope.
pub(crate) async fn mark(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(Deadline(Instant::now() + state.request_timeout));
    let response = next.run(req).await;
    if response.status() != ELAPSED {
        return response;
    }
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

/// Runs the endpoint in its own task, to its end: the deadline (or anything else dropping the
/// request's future) then stops waiting for it, never cuts it after its claim.
pub(crate) async fn own_task(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req).in_current_span()).await {
        Ok(response) => response,
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
