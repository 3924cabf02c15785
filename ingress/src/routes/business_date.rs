//! `GET /business-date`: the last business date closed by close of business (SPEC §12).

use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::state::AppState;
use axum::extract::State;
use shared::db::cob::BusinessDate;

/// The business date.
///
/// Admins only. The last date close of business closed (Asia/Jakarta), `null` before the first.
#[utoipa::path(
    get,
    path = "/business-date",
    operation_id = "getBusinessDate",
    tag = "calls",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The last closed business date.", body = crate::openapi::BusinessDateEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    _ctx: Caller,
) -> Result<Reply<BusinessDate>, ApiError> {
    let last_closed = shared::db::cob::last_closed(&state.pool).await?;
    Ok(Reply::ok(BusinessDate { last_closed }))
}
