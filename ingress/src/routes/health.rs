//! The public routes: liveness, readiness, metrics and the OpenAPI document. Unauthenticated
//! and not audited.

use crate::pipeline::Reply;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::envelope::MessageAction;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub(crate) enum HealthState {
    #[serde(rename = "ok")]
    Ok,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Health {
    status: HealthState,
}

/// Whether each dependency answers.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Readiness {
    mysql: bool,
    redis: bool,
    rabbitmq: bool,
}

impl Readiness {
    pub(crate) fn all(&self) -> bool {
        self.mysql && self.redis && self.rabbitmq
    }
}

/// Whether MySQL and Redis answer within 2 s, and whether the publisher is connected.
pub(crate) async fn readiness(state: &AppState) -> Readiness {
    let limit = Duration::from_secs(2);
    let (mysql, redis) = tokio::join!(
        tokio::time::timeout(limit, shared::db::ping(&state.pool)),
        tokio::time::timeout(limit, state.cache.ping()),
    );
    Readiness {
        mysql: mysql.is_ok_and(|r| r.is_ok()),
        redis: redis.is_ok_and(|r| r.is_ok()),
        rabbitmq: state.publisher.is_connected(),
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
pub(crate) async fn healthz() -> Reply<Health> {
    Reply::ok(Health {
        status: HealthState::Ok,
    })
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
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
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
pub(crate) async fn readyz(State(state): State<AppState>) -> Reply<Readiness> {
    let checks = readiness(&state).await;
    if checks.all() {
        Reply::ok(checks)
    } else {
        Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            action: MessageAction::ServiceUnavailable,
            data: checks,
            headers: vec![(header::RETRY_AFTER, "1".to_owned())],
        }
    }
}

/// This document.
///
/// The OpenAPI 3.1 description of every endpoint, generated from the route table and the
/// annotations on the handlers (not the envelope).
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
pub(crate) async fn openapi_json() -> Response {
    let mut r = (StatusCode::OK, crate::openapi::json()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
