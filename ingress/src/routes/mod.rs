//! The route table: every endpoint, who may call it, and the checks around it in SPEC §3's
//! order. Each `routes!(handler)` line adds the route to the router and the handler's
//! `#[utoipa::path]` to the OpenAPI document, so the two cannot disagree.
//!
//! Layers wrap the routes they are added after, outermost last. A signed request passes:
//! the body size and the signature (`verify::signed`), the rate limit (`rate`), the route (the
//! router: unknown path 404, wrong method 405, both in the envelope), the role and
//! `X-External-Id` (the [`Caller`](crate::caller::Caller) extractor), the body (the
//! [`Body`](crate::body::Body) extractor) and its values, then the endpoint, which claims.
//! The public routes (health, metrics, the document, the docs page, the console page) skip
//! all of it.
//!
//! Around all of it, inside the frame, the request deadline (`crate::deadline`). The endpoints
//! that claim an external id run in their own task (`claims`), so the deadline answers the
//! request without cutting its claim halfway.

pub mod admin;
pub mod business_date;
pub mod contracts;
pub mod health;
pub mod listings;
pub mod reports;
pub mod status;
pub mod submit;
pub mod users;
pub mod webhooks;

use crate::caller::Audience;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{pipeline, rate, verify};
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::middleware::from_fn_with_state;
use axum::{Extension, Router};
use shared::envelope::MessageAction;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The router, and the OpenAPI document of its routes.
pub(crate) fn router(state: &AppState) -> (Router, OpenApi) {
    // Submissions spend the key's rate limit in their claim's Redis call (`rate::at_claim`).
    let (submissions, mut doc) = OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(merchants(routes!(submit::transaction)))
        .routes(routes!(submit::payment))
        .routes(merchants(routes!(submit::refund)))
        .split_for_parts();
    let submissions = submissions
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), rate::at_claim));

    let (others, others_doc) = OpenApiRouter::new()
        .routes(routes!(users::create))
        .routes(routes!(users::get))
        .routes(routes!(users::set_status))
        .routes(merchants(routes!(users::limits)))
        .routes(routes!(users::set_limits))
        .routes(routes!(listings::limit_changes))
        .routes(routes!(listings::billings))
        .routes(routes!(listings::bills))
        .routes(merchants(routes!(status::get)))
        .routes(merchants(routes!(status::lookup)))
        .routes(merchants(routes!(contracts::get)))
        .routes(only_merchants(routes!(
            webhooks::put,
            webhooks::get,
            webhooks::delete
        )))
        .routes(only_merchants(routes!(webhooks::deliveries)))
        .routes(only_merchants(routes!(webhooks::retry)))
        .routes(routes!(admin::list_keys, admin::create_key))
        .routes(routes!(admin::rotate_key))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(admin::set_key_rate))
        .routes(routes!(admin::list_dead_letters))
        .routes(routes!(admin::replay_dead_letters))
        .routes(routes!(admin::overview))
        .routes(merchants(routes!(reports::settlement)))
        .routes(routes!(business_date::get))
        .split_for_parts();
    let others = others
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), rate::first));

    let signed = submissions
        .merge(others)
        .layer(from_fn_with_state(state.clone(), verify::signed));

    // A wrong method on a public path is answered like one on any other path: signed, 405.
    let wrong_method = Router::new()
        .fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), rate::first))
        .layer(from_fn_with_state(state.clone(), verify::signed))
        .with_state(state.clone());
    let public = |r: UtoipaMethodRouter<AppState>| {
        let wrong_method = wrong_method.clone();
        r.map(|m| m.fallback_service(wrong_method))
    };
    let (public, public_doc) = OpenApiRouter::new()
        .routes(public(routes!(health::healthz)))
        .routes(public(routes!(health::readyz)))
        .routes(public(routes!(health::metrics)))
        .routes(public(routes!(health::openapi_json)))
        .routes(public(routes!(crate::docs::page)))
        .routes(public(routes!(crate::docs::asset)))
        .routes(public(routes!(crate::console::page)))
        .routes(public(routes!(crate::console::asset)))
        .split_for_parts();

    doc.merge(others_doc);
    doc.merge(public_doc);
    let router = signed
        .merge(public)
        .layer(from_fn_with_state(state.clone(), pipeline::frame))
        .with_state(state.clone());
    (router, doc)
}

/// Merchants may call this route too; every other signed route is for admins only.
fn merchants(r: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    r.map(|m| m.route_layer(Extension(Audience::Merchants)))
}

/// Only merchants may call this route (admins get 403): what a merchant owns alone.
fn only_merchants(r: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    r.map(|m| m.route_layer(Extension(Audience::OnlyMerchants)))
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        MessageAction::MethodNotAllowed,
        "method not allowed on this path",
    )
}

/// The route's one path parameter, as sent (not percent-decoded: ids are plain ASCII, so an
/// encoded one is no id).
pub(crate) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<PathId, ApiError> {
        let position = parts
            .extensions
            .get::<MatchedPath>()
            .and_then(|m| m.as_str().split('/').position(|s| s.starts_with('{')))
            .ok_or_else(ApiError::not_found)?;
        parts
            .uri
            .path()
            .split('/')
            .nth(position)
            .map(|s| PathId(s.to_owned()))
            .ok_or_else(ApiError::not_found)
    }
}
