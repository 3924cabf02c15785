//! The per-key rate limit (SPEC §3: after the signature, before everything else): GCRA in
//! Redis, shared by every ingress. If Redis is down the limit fails open (availability over
//! throttling) and says so in the log and a metric.
//!
//! Two layers, one rule. Most routes spend the request before anything else runs
//! ([`first`]). A submission spends it inside its claim, in the same Redis call
//! ([`at_claim`]: one round trip per checkout instead of two); when it is refused before it
//! claims, the layer spends it afterwards and a 429 replaces the refusal, so the order of
//! checks seen from outside is the same.

use crate::error::ApiError;
use crate::state::AppState;
use crate::verify::Signer;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::cache::Allowance;
use shared::db::keys::ActiveKey;
use shared::envelope::MessageAction;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A rate limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Set on a submission's request: the claim takes it and spends the request.
#[derive(Clone, Default)]
pub(crate) struct DeferredRate(Arc<AtomicBool>);

impl DeferredRate {
    /// True the first time: the caller spends the request now.
    pub fn take(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }
}

/// What a request of `key` spends.
pub(crate) fn allowance<'a>(state: &AppState, key: &'a ActiveKey) -> Allowance<'a> {
    Allowance {
        client_id: &key.client_id,
        per_second: key.rate_per_second.unwrap_or(state.rate_limit.per_second),
        burst: key.rate_burst.unwrap_or(state.rate_limit.burst),
    }
}

async fn spend(state: &AppState, key: &ActiveKey) -> Result<(), ApiError> {
    let allowance = allowance(state, key);
    match state.cache.rate_limit(allowance).await {
        Ok(None) => Ok(()),
        Ok(Some(retry_after)) => Err(rate_limited(allowance, retry_after)),
        Err(e) => {
            metrics::counter!("xyz_rate_limiter_fail_open_total").increment(1);
            tracing::warn!(error = %e, "rate limiter unavailable; failing open");
            Ok(())
        }
    }
}

/// The 429 for a key over its limit.
pub(crate) fn rate_limited(allowance: Allowance<'_>, retry_after: std::time::Duration) -> ApiError {
    metrics::counter!("xyz_rate_limited_total").increment(1);
    let mut e = ApiError::new(
        MessageAction::RateLimited,
        format!(
            "this key is limited to {} requests per second (burst {})",
            allowance.per_second, allowance.burst
        ),
    );
    e.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
    e
}

/// Middleware: spends the request before the route runs.
pub(crate) async fn first(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(Signer(key)) = req.extensions().get::<Signer>().cloned()
        && let Err(e) = spend(&state, &key).await
    {
        return e.into_response();
    }
    next.run(req).await
}

/// Middleware for submissions: their claim spends the request; one refused before it claims
/// spends it here, afterwards.
pub(crate) async fn at_claim(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(Signer(key)) = req.extensions().get::<Signer>().cloned() else {
        return next.run(req).await;
    };
    let deferred = DeferredRate::default();
    req.extensions_mut().insert(deferred.clone());
    let response = next.run(req).await;
    if deferred.take()
        && let Err(e) = spend(&state, &key).await
    {
        return e.into_response();
    }
    response
}
