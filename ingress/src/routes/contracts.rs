//! `GET /contracts/{nomor_kontrak}`: the contract as it is now.

use crate::error::ApiError;
use crate::pipeline::{Ctx, Reply};
use crate::state::AppState;
use serde_json::json;
use shared::ids::is_plausible_id;

pub async fn get(state: &AppState, ctx: &Ctx, nomor_kontrak: &str) -> Result<Reply, ApiError> {
    if !is_plausible_id(nomor_kontrak) {
        return Err(ApiError::not_found());
    }
    let (merchant, contract) = shared::db::contracts::load_contract(&state.pool, nomor_kontrak)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !ctx.owns(&merchant) {
        return Err(ApiError::not_found());
    }
    Ok(Reply::ok(json!(contract)))
}
