//! Liveness and readiness: unauthenticated, not audited.

use crate::pipeline::envelope_response;
use crate::route::Route;
use crate::state::AppState;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use shared::envelope::MessageAction;
use std::time::Duration;

pub async fn handle(state: &AppState, route: &Route, api_call_id: &str) -> Response {
    match route {
        Route::Readyz => readyz(state, api_call_id).await,
        Route::Metrics => metrics(state),
        _ => envelope_response(
            StatusCode::OK,
            MessageAction::Success,
            json!({"status": "ok"}),
            api_call_id,
        ),
    }
}

/// Prometheus text format (not the envelope).
fn metrics(state: &AppState) -> Response {
    metrics::gauge!("xyz_waiters").set(state.waiters.len() as f64);
    let body = state.metrics.render();
    let mut r = axum::response::IntoResponse::into_response((StatusCode::OK, body));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Ready when MySQL, Redis and RabbitMQ all answer.
async fn readyz(state: &AppState, api_call_id: &str) -> Response {
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
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(1u32),
        );
        r
    }
}
