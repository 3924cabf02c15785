//! `GET /contracts/{nomor_kontrak}`: the contract as it is now.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::state::AppState;
use axum::extract::State;
use shared::db::contracts::ContractView;
use shared::ids::is_plausible_id;

/// A contract.
///
/// Its merchant and admins (another merchant's is `404`). The contract as it is now, with its
/// installments and the user's limits now.
#[utoipa::path(
    get,
    path = "/contracts/{nomor_kontrak}",
    operation_id = "getContract",
    tag = "calls",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("nomor_kontrak" = String, Path, description = "The contract number (`KTR_…`)."),
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "The contract.", body = crate::openapi::ContractEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(nomor_kontrak): PathId,
) -> Result<Reply<ContractView>, ApiError> {
    if !is_plausible_id(&nomor_kontrak) {
        return Err(ApiError::not_found());
    }
    let (merchant, contract) = shared::db::contracts::load_contract(&state.pool, &nomor_kontrak)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !ctx.owns(&merchant) {
        return Err(ApiError::not_found());
    }
    Ok(Reply::ok(contract))
}
