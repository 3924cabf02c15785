//! The public routes: liveness, readiness, metrics, the OpenAPI document and its docs page.
//! Unauthenticated and not audited.

use crate::pipeline::envelope_response;
use crate::route::Route;
use crate::state::AppState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::envelope::MessageAction;
use std::time::Duration;

pub async fn handle(state: &AppState, route: &Route, api_call_id: &str) -> Response {
    match route {
        Route::Readyz => readyz(state, api_call_id).await,
        Route::Metrics => metrics(state),
        Route::OpenApi => openapi_json(),
        Route::Docs => docs_page(),
        Route::DocsAsset(file) => docs_asset(file, api_call_id),
        _ => healthz(api_call_id),
    }
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process is alive.", body = crate::openapi::HealthEnvelope),
    ),
)]
pub fn healthz(api_call_id: &str) -> Response {
    envelope_response(
        StatusCode::OK,
        MessageAction::Success,
        json!({"status": "ok"}),
        api_call_id,
    )
}

/// Prometheus metrics.
///
/// Text exposition format, not the envelope.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4 (not the envelope).",
            body = String, content_type = "text/plain"),
    ),
)]
pub fn metrics(state: &AppState) -> Response {
    metrics::gauge!("xyz_waiters").set(state.waiters.len() as f64);
    let body = state.metrics.render();
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Readiness.
///
/// Ready when MySQL, Redis and RabbitMQ all answer.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "MySQL, Redis and RabbitMQ all answer.",
            body = crate::openapi::ReadyEnvelope),
        (status = 503, description = "A dependency does not answer; `message_data` says which.",
            body = crate::openapi::NotReadyEnvelope,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again."))),
    ),
)]
pub async fn readyz(state: &AppState, api_call_id: &str) -> Response {
    let limit = Duration::from_secs(2);
    let mysql = tokio::time::timeout(limit, shared::db::ping(&state.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    let redis = tokio::time::timeout(limit, state.cache.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let rabbitmq = state.publisher.is_connected();
    let checks = json!({"mysql": mysql, "redis": redis, "rabbitmq": rabbitmq});
    if mysql && redis && rabbitmq {
        envelope_response(StatusCode::OK, MessageAction::Success, checks, api_call_id)
    } else {
        let mut r = envelope_response(
            StatusCode::SERVICE_UNAVAILABLE,
            MessageAction::ServiceUnavailable,
            checks,
            api_call_id,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
        r
    }
}

/// This document.
///
/// The OpenAPI 3.1 description of every endpoint, generated from the annotations on the
/// handlers (not the envelope).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document.", body = crate::openapi::OpenApiDocument,
            content_type = "application/json"),
    ),
)]
pub fn openapi_json() -> Response {
    let mut r = (StatusCode::OK, crate::openapi::json()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The API docs page.
///
/// Swagger UI, served from the binary (it needs no network). It signs "Try it out" requests
/// in the browser with the key entered under Authorize: `client_id` the key id, `signature`
/// the key's secret (never sent), `timestamp` anything (the page sets it).
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "operations",
    responses(
        (status = 200, description = "The docs page.", body = String, content_type = "text/html"),
    ),
)]
pub fn docs_page() -> Response {
    crate::openapi::docs::page()
}

/// A static asset of the docs page.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    operation_id = "docsAsset",
    tag = "operations",
    params(("file" = String, Path, description = "The asset's file name, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The asset (JavaScript, CSS or an image).",
            content(
                (String = "text/javascript"),
                (String = "text/css"),
                (String = "image/png"),
                (String = "text/html"),
            )),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub fn docs_asset(file: &str, api_call_id: &str) -> Response {
    crate::openapi::docs::asset(file).unwrap_or_else(|| {
        envelope_response(
            StatusCode::NOT_FOUND,
            MessageAction::NotFound,
            json!("not found"),
            api_call_id,
        )
    })
}
