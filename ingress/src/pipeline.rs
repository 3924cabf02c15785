//! One request, top to bottom, in SPEC §3's order of checks: body size → signature → route →
//! role → `X-External-Id` → the endpoint (body, claim, business). Every answer, success or
//! error, leaves here in the envelope with its api call id, and every audited request leaves
//! one row in `api_call_logs`.

use crate::error::ApiError;
use crate::route::{Route, RouteError};
use crate::routes;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use shared::cache::Allowance;
use shared::db::audit::AuditRow;
use shared::db::keys::{ActiveKey, Role};
use shared::envelope::MessageAction;
use shared::signature;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tracing::Instrument;

/// Bodies over this are refused with 413 (nginx enforces the same limit).
pub const MAX_BODY_BYTES: usize = 65_536;

pub const API_CALL_ID_HEADER: &str = "x-api-call-id";

/// What an endpoint sees of its request once it is verified.
pub struct Ctx {
    pub api_call_id: String,
    pub started_at: DateTime<Utc>,
    pub key: ActiveKey,
    pub external_id: Option<String>,
    pub body: Bytes,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// This request has not been counted against its key's rate limit yet: the claim does it
    /// (one Redis call), or [`rate_limit`] when the request fails before claiming.
    pub rate_deferred: bool,
}

impl Ctx {
    pub fn is_admin(&self) -> bool {
        self.key.role == Role::Admin
    }

    /// Admins see everything; a merchant only what it owns (others get 404).
    pub fn owns(&self, merchant_id: &str) -> bool {
        self.is_admin() || self.key.merchant_id == merchant_id
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What this request spends from its key's rate limit.
    pub fn allowance<'a>(&'a self, state: &AppState) -> Allowance<'a> {
        allowance(state, &self.key)
    }
}

/// A successful answer.
pub struct Reply {
    pub status: StatusCode,
    pub action: MessageAction,
    pub data: Value,
    pub headers: Vec<(HeaderName, String)>,
}

impl Reply {
    pub fn ok(data: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            action: MessageAction::Success,
            data,
            headers: Vec::new(),
        }
    }

    pub fn created(data: Value) -> Reply {
        Reply {
            status: StatusCode::CREATED,
            ..Reply::ok(data)
        }
    }
}

/// Runs each request in its own task: a client that disconnects must not cancel it halfway
/// (after the claim, before the publish is confirmed or the audit row written).
pub async fn handle(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    match tokio::spawn(handle_request(state, peer, req)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            envelope_response(
                StatusCode::SERVICE_UNAVAILABLE,
                MessageAction::ServiceUnavailable,
                json!("internal error; retry with the same X-External-Id"),
                &shared::ids::new_api_call_id(),
            )
        }
    }
}

async fn handle_request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started_at = Utc::now().trunc_subsecs(6);
    let t0 = Instant::now();
    let api_call_id = shared::ids::new_api_call_id();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", %api_call_id, %method, %path);
    async move {
        if let Ok(route) = Route::parse(&method, &path)
            && route.is_public()
        {
            return routes::health::handle(&state, &route, &api_call_id).await;
        }
        let client_ip = client_ip(&state, peer, req.headers());
        let mut audit = AuditRow {
            api_call_id: api_call_id.clone(),
            method: method.clone(),
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| path.clone()),
            merchant_id: None,
            client_id: None,
            external_id: None,
            http_status: 0,
            message_action: String::new(),
            request_body: None,
            response_body: None,
            client_ip: Some(client_ip.to_string()),
            started_at,
            duration_us: 0,
        };
        let route_label = Route::parse(&method, &path).map(|r| r.label()).unwrap_or("unmatched");
        let result = process(&state, req, &api_call_id, started_at, &mut audit).await;
        let (status, action, data, headers, retry_after) = match result {
            Ok(r) => (r.status, r.action, r.data, r.headers, None),
            Err(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                (status, e.action, e.data, Vec::new(), e.retry_after)
            }
        };
        let envelope = json!({
            "message_action": action,
            "message_data": data,
            "api_call_id": api_call_id,
        });
        let body = envelope.to_string();
        audit.http_status = status.as_u16();
        audit.message_action = action.as_str().to_owned();
        audit.response_body = Some(crate::audit::mask_response(envelope));
        audit.duration_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        metrics::counter!("xyz_http_requests_total", "route" => route_label, "status" => status.as_str().to_owned())
            .increment(1);
        metrics::histogram!("xyz_http_request_duration_seconds", "route" => route_label)
            .record(t0.elapsed().as_secs_f64());
        // Every request is in nginx's access log and in the audit table with its api call id;
        // at info the log keeps the refusals and failures. A line per successful request
        // cost ~10 % of acceptance throughput (BENCHMARKS.md); RUST_LOG=ingress=debug shows them.
        // (A tracing level must be a constant: one field list, two levels.)
        macro_rules! request_done {
            ($level:ident) => {
                tracing::$level!(
                    status = status.as_u16(),
                    action = action.as_str(),
                    merchant = audit.merchant_id.as_deref().unwrap_or(""),
                    duration_us = audit.duration_us,
                    "request done"
                )
            };
        }
        if status.is_client_error() || status.is_server_error() {
            request_done!(info);
        } else {
            request_done!(debug);
        }
        state.audit.record(audit).await;

        let mut response = (status, body).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(&api_call_id) {
            h.insert(API_CALL_ID_HEADER, v);
        }
        if let Some(secs) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        response
    }
    .instrument(span)
    .await
}

async fn process(
    state: &AppState,
    req: Request,
    api_call_id: &str,
    started_at: DateTime<Utc>,
    audit: &mut AuditRow,
) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body).await?;
    audit.request_body = crate::audit::mask_request_body(&body);

    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    // Signed as sent (UTF-8 included) so a well-signed but malformed id is a 400, not a 401.
    let external_id = parts
        .headers
        .get("x-external-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let key = authenticate(
        state,
        &parts.method,
        path_and_query,
        &parts.headers,
        external_id.as_deref(),
        &body,
    )?;
    audit.merchant_id = Some(key.merchant_id.clone());
    audit.client_id = Some(key.client_id.clone());
    // The checks after the rate limit (route, role, external id) are pure, so their verdict
    // can be held while the rate limit is asked: a submission that passes them spends its
    // request in the same Redis call as its claim (see `submit`), the others here, first.
    let checked = route_checks(&parts, key.role, external_id.as_deref());
    let rate_deferred = matches!(checked, Ok(Route::Transaction | Route::Payment));
    if !rate_deferred {
        rate_limit(state, &key).await?;
    }
    let route = checked?;
    audit.external_id = external_id.clone();

    let ctx = Ctx {
        api_call_id: api_call_id.to_owned(),
        started_at,
        key,
        external_id,
        body,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        rate_deferred,
    };
    routes::dispatch(state, &ctx, route).await
}

/// Route (404 / 405), role (403) and `X-External-Id` (400), in SPEC §3's order.
fn route_checks(
    parts: &axum::http::request::Parts,
    role: Role,
    external_id: Option<&str>,
) -> Result<Route, ApiError> {
    let route = Route::parse(parts.method.as_str(), parts.uri.path()).map_err(|e| match e {
        RouteError::NotFound => ApiError::not_found(),
        RouteError::MethodNotAllowed => ApiError::new(
            MessageAction::MethodNotAllowed,
            "method not allowed on this path",
        ),
    })?;
    if !route.allows(role) {
        return Err(ApiError::forbidden());
    }
    match external_id {
        None if parts.method == axum::http::Method::POST => {
            Err(ApiError::mandatory("X-External-Id"))
        }
        Some(ext) if !signature::is_valid_external_id(ext) => Err(ApiError::invalid_value(
            "X-External-Id",
            "must be 1-128 visible ASCII characters",
        )),
        _ => Ok(route),
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            MessageAction::PayloadTooLarge,
            "the body is over 65536 bytes",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

/// A header as text; a header that is not visible ASCII cannot be signed or used.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(ApiError::signature(format!("{name} header is malformed"))),
        },
    }
}

fn authenticate(
    state: &AppState,
    method: &axum::http::Method,
    path_and_query: &str,
    headers: &HeaderMap,
    external_id: Option<&str>,
    body: &[u8],
) -> Result<ActiveKey, ApiError> {
    let required = |name: &str| -> Result<String, ApiError> {
        header_text(headers, name)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::signature(format!("{name} header is missing")))
    };
    let client_id = required("X-Client-Id")?;
    let timestamp = required("X-Timestamp")?;
    let provided = required("X-Signature")?;
    signature::timestamp_within_window(&timestamp, Utc::now().timestamp())
        .map_err(|e| ApiError::signature(e.to_string()))?;
    let key = state
        .keys
        .get(&client_id)
        .ok_or_else(|| ApiError::signature("unknown or revoked X-Client-Id"))?;
    let sts = signature::string_to_sign(
        method.as_str(),
        path_and_query,
        &timestamp,
        external_id,
        body,
    );
    let now = Utc::now();
    let valid = signature::verify(&key.secret, &sts, &provided)
        || key
            .previous_secret
            .as_ref()
            .is_some_and(|(old, until)| *until > now && signature::verify(old, &sts, &provided));
    if !valid {
        return Err(ApiError::signature(
            "X-Signature does not match the request",
        ));
    }
    Ok(key)
}

fn allowance<'a>(state: &AppState, key: &'a ActiveKey) -> Allowance<'a> {
    Allowance {
        client_id: &key.client_id,
        per_second: key.rate_per_second.unwrap_or(state.rate_limit.0),
        burst: key.rate_burst.unwrap_or(state.rate_limit.1),
    }
}

/// Per-key GCRA in Redis, shared by every replica. If Redis is down the limit fails open
/// (availability over throttling) and says so in the log.
pub async fn rate_limit(state: &AppState, key: &ActiveKey) -> Result<(), ApiError> {
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
pub fn rate_limited(allowance: Allowance<'_>, retry_after: std::time::Duration) -> ApiError {
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

/// The peer, or the client nginx names in `X-Forwarded-For` when the peer is a trusted proxy.
fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer_ip = peer.ip();
    if !state.trusted_proxies.contains(&peer_ip) {
        return peer_ip;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(peer_ip)
}

/// The envelope for answers produced outside the pipeline (health, the body-limit layer).
pub fn envelope_response(
    status: StatusCode,
    action: MessageAction,
    data: Value,
    api_call_id: &str,
) -> Response {
    let body = json!({"message_action": action, "message_data": data, "api_call_id": api_call_id});
    let mut response = (status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(api_call_id) {
        h.insert(API_CALL_ID_HEADER, v);
    }
    response
}
