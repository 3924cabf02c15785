//! `GET /status/{api_call_id}`: Redis first, MySQL when Redis forgot or is down.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::state::AppState;
use axum::extract::State;
use shared::ids::is_plausible_id;
use shared::status::CallStatus;

/// The outcome of an asynchronous call.
///
/// The submitting merchant and admins. `200` whatever the outcome; unknown ids, ids of
/// synchronous calls and other merchants' calls are `404`.
#[utoipa::path(
    get,
    path = "/status/{api_call_id}",
    operation_id = "getStatus",
    tag = "calls",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("api_call_id" = String, Path, description = "The api call id of a `POST /transaction` \
            or `POST /payment`."),
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "The call's status.", body = crate::openapi::StatusEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(api_call_id): PathId,
) -> Result<Reply<CallStatus>, ApiError> {
    let (ctx, api_call_id) = (&ctx, api_call_id.as_str());
    if !is_plausible_id(api_call_id) {
        return Err(ApiError::not_found());
    }
    let cached = match state.cache.get_status(api_call_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "status cache unavailable; reading MySQL");
            None
        }
    };
    if let Some(record) = cached.clone()
        && record.status.is_final()
    {
        return owned(ctx, &record.merchant_id, record.status);
    }
    // PENDING in Redis may be stale (a worker that died between its commit and the cache
    // write), so the outcome table decides.
    if let Some((merchant, status)) =
        shared::db::outcomes::get_outcome(&state.pool, api_call_id).await?
    {
        return owned(ctx, &merchant, status);
    }
    if let Some(record) = cached {
        return owned(ctx, &record.merchant_id, record.status);
    }
    if let Some(call) = shared::db::outcomes::find_accepted_call(&state.pool, api_call_id).await? {
        return owned(
            ctx,
            &call.merchant_id,
            CallStatus::pending(api_call_id, call.call_type, call.accepted_at),
        );
    }
    Err(ApiError::not_found())
}

fn owned(
    ctx: &Caller,
    merchant_id: &str,
    status: CallStatus,
) -> Result<Reply<CallStatus>, ApiError> {
    if !ctx.owns(merchant_id) {
        return Err(ApiError::not_found());
    }
    Ok(Reply::ok(status))
}
