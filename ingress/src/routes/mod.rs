//! One module per resource; `dispatch` sends a verified request to its endpoint.

pub mod contracts;
pub mod health;
pub mod listings;
pub mod status;
pub mod submit;
pub mod users;

use crate::error::ApiError;
use crate::pipeline::{Ctx, Reply};
use crate::route::Route;
use crate::state::AppState;

pub async fn dispatch(state: &AppState, ctx: &Ctx, route: Route) -> Result<Reply, ApiError> {
    match route {
        Route::CreateUser => users::create(state, ctx).await,
        Route::GetUser(id) => users::get(state, &id).await,
        Route::SetUserStatus(id) => users::set_status(state, ctx, &id).await,
        Route::UserLimits(id) => users::limits(state, &id).await,
        Route::UserBillings(id) => listings::billings(state, ctx, &id).await,
        Route::UserBills(id) => listings::bills(state, ctx, &id).await,
        Route::Transaction => submit::transaction(state, ctx).await,
        Route::Payment => submit::payment(state, ctx).await,
        Route::Status(id) => status::get(state, ctx, &id).await,
        Route::Contract(id) => contracts::get(state, ctx, &id).await,
        // Public routes never reach dispatch.
        Route::Healthz
        | Route::Readyz
        | Route::Metrics
        | Route::OpenApi
        | Route::Docs
        | Route::DocsAsset(_) => Err(ApiError::not_found()),
    }
}
