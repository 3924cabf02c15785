//! The frame around every request: its api call id, its tracing span, its own task, SPEC §3's
//! envelope around whatever a check or an endpoint answered, its metrics and, for every signed
//! request, its row in `api_call_logs`.
//!
//! The checks are the layers and extractors that the route table (`routes::router`) puts
//! around each endpoint, in SPEC §3's order: body size and signature (`verify`), rate limit
//! (`rate`), route (the router and its fallbacks), role and `X-External-Id` (`caller`), body
//! and values (`body`), then the endpoint, which claims the external id (`claims`). Between the
//! frame and the checks sits the request deadline (`deadline`): its 503 is framed like any
//! other answer.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use shared::db::audit::AuditRow;
use shared::db::keys::ActiveKey;
use shared::envelope::MessageAction;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

pub(crate) const API_CALL_ID_HEADER: &str = "x-api-call-id";

/// This request's identity, known before any check runs.
#[derive(Clone)]
pub(crate) struct CallId {
    pub api_call_id: String,
    pub started_at: DateTime<Utc>,
}

/// What a layer around every route left in the request; missing, it is a bug (a route outside
/// the frame), answered as one.
pub(crate) fn set_by_a_layer<T: Clone + Send + Sync + 'static>(
    parts: &Parts,
    what: &str,
) -> Result<T, ApiError> {
    parts
        .extensions
        .get::<T>()
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("{what} is missing")))
}

/// What the envelope of an answer carries. A check or an endpoint leaves it in its response's
/// extensions; the frame puts the envelope, with the api call id, around it.
#[derive(Clone)]
struct Answer {
    action: MessageAction,
    data: Value,
}

/// A success that carries its own body (the settlement report's CSV stream): the frame passes
/// the body through unwrapped, sets `X-Api-Call-Id`, and audits `summary` as the response
/// instead of the body. Errors on such routes are ordinary answers, in the envelope.
#[derive(Clone)]
pub(crate) struct OwnBody {
    pub summary: Value,
}

/// An endpoint's successful answer, typed: `data` becomes `message_data`.
pub(crate) struct Reply<T> {
    pub status: StatusCode,
    pub action: MessageAction,
    pub data: T,
    pub headers: Vec<(HeaderName, String)>,
}

impl<T> Reply<T> {
    pub fn ok(data: T) -> Reply<T> {
        Reply {
            status: StatusCode::OK,
            action: MessageAction::Success,
            data,
            headers: Vec::new(),
        }
    }

    pub fn created(data: T) -> Reply<T> {
        Reply {
            status: StatusCode::CREATED,
            ..Reply::ok(data)
        }
    }
}

fn answer(status: StatusCode, action: MessageAction, data: Value) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(Answer { action, data });
    response
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let data = match serde_json::to_value(&self.data) {
            Ok(data) => data,
            Err(e) => return ApiError::internal(&e).into_response(),
        };
        let mut response = answer(self.status, self.action, data);
        let h = response.headers_mut();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = answer(status, self.action, self.data);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The audit row of a signed request, filled in by the checks it passes. Public routes never
/// reach the signature check, so they leave none.
#[derive(Clone)]
pub(crate) struct AuditDraft(Arc<Mutex<Draft>>);

struct Draft {
    /// Taken when the answer is known.
    row: Option<AuditRow>,
    audited: bool,
    /// The body as read; how much of it the row keeps depends on the answer.
    body: Option<Bytes>,
}

impl AuditDraft {
    fn edit(&self, f: impl FnOnce(&mut Draft)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The request reached the signature check: it is audited, with this body (`None` when
    /// it was too large to read).
    pub fn audited(&self, body: Option<Bytes>) {
        self.edit(|d| {
            d.audited = true;
            d.body = body;
        });
    }

    pub fn signed_by(&self, key: &ActiveKey) {
        self.edit(|d| {
            if let Some(row) = d.row.as_mut() {
                row.merchant_id = Some(key.merchant_id.clone());
                row.client_id = Some(key.client_id.clone());
            }
        });
    }

    pub fn external_id(&self, external_id: Option<&str>) {
        self.edit(|d| {
            if let Some(row) = d.row.as_mut() {
                row.external_id = external_id.map(str::to_owned);
            }
        });
    }

    /// The row, once the answer is known: a body the engine refused to read (401, 413, 429)
    /// is kept as its size, hash and a digit-free prefix; any other, masked.
    fn take(&self, status: StatusCode) -> Option<AuditRow> {
        let mut d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !d.audited {
            return None;
        }
        let refused = matches!(status.as_u16(), 401 | 413 | 429);
        let mut row = d.row.take()?;
        row.request_body = d.body.take().and_then(|body| {
            if refused {
                crate::audit::refused_body(&body)
            } else {
                crate::audit::mask_request_body(&body)
            }
        });
        Some(row)
    }

    pub fn of(parts: &Parts) -> Option<AuditDraft> {
        parts.extensions.get::<AuditDraft>().cloned()
    }
}

/// The frame, as a middleware around every route. Each request runs in its own task: a client
/// that disconnects must not cancel it halfway (after the claim, before the publish is
/// confirmed or the audit row written).
pub(crate) async fn frame(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started_at = Utc::now().trunc_subsecs(6);
    let t0 = Instant::now();
    let api_call_id = shared::ids::new_api_call_id();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let route = route_label(req.extensions().get::<MatchedPath>());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client_ip = peer.map(|peer| client_ip(&state, peer, req.headers()));
    let draft = AuditDraft(Arc::new(Mutex::new(Draft {
        row: Some(AuditRow {
            api_call_id: api_call_id.clone(),
            method: method.clone(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| path.clone(), |p| p.as_str().to_owned()),
            merchant_id: None,
            client_id: None,
            external_id: None,
            http_status: 0,
            message_action: String::new(),
            request_body: None,
            response_body: None,
            client_ip: client_ip.map(|ip| ip.to_string()),
            started_at,
            duration_us: 0,
        }),
        audited: false,
        body: None,
    })));
    req.extensions_mut().insert(CallId {
        api_call_id: api_call_id.clone(),
        started_at,
    });
    req.extensions_mut().insert(draft.clone());
    let deadline = crate::deadline::Deadline::after(state.request_timeout);
    req.extensions_mut().insert(deadline);
    let span = tracing::info_span!("request", %api_call_id, %method, %path);
    // The request's own task runs to its end whatever happens here: past the deadline the
    // frame stops waiting for it and answers 503, but never cuts it halfway (after a claim,
    // before the publish is confirmed or the claim released).
    let task = tokio::spawn(next.run(req).instrument(span.clone()));
    let response = match deadline.wait(task).await {
        Some(Ok(response)) => response,
        Some(Err(e)) => {
            tracing::error!(parent: &span, error = %e, "request task failed");
            ApiError::internal(&e).into_response()
        }
        None => span.in_scope(|| crate::deadline::exceeded(&state)),
    };
    finish(&state, response, &draft, &api_call_id, route, t0)
        .instrument(span)
        .await
}

/// Puts the envelope around an answer, counts it, and records the audit row.
async fn finish(
    state: &AppState,
    mut response: Response,
    draft: &AuditDraft,
    api_call_id: &str,
    route: &'static str,
    t0: Instant,
) -> Response {
    let own = response.extensions_mut().remove::<OwnBody>();
    let answer = response.extensions_mut().remove::<Answer>();
    let (action, envelope) = match (answer, &own) {
        (Some(Answer { action, data }), None) => {
            let envelope = json!({
                "message_action": action,
                "message_data": data,
                "api_call_id": api_call_id,
            });
            (action, Some(envelope))
        }
        (_, Some(_)) => (MessageAction::Success, None),
        // The operations routes answer for themselves (metrics, the document, the docs page).
        (None, None) => return response,
    };
    let status = response.status();
    let audited_response = match (&envelope, own) {
        (Some(envelope), _) => crate::audit::mask_response(envelope.clone()),
        (None, own) => own.map(|o| o.summary.to_string()).unwrap_or_default(),
    };
    if let Some(mut audit) = draft.take(status) {
        audit.http_status = status.as_u16();
        audit.message_action = action.as_str().to_owned();
        audit.response_body = Some(audited_response);
        audit.duration_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        metrics::counter!("xyz_http_requests_total", "route" => route, "status" => status.as_str().to_owned())
            .increment(1);
        metrics::histogram!("xyz_http_request_duration_seconds", "route" => route)
            .record(t0.elapsed().as_secs_f64());
        // Every request is in nginx's access log and in the audit table with its api call id;
        // at info the log keeps the refusals and failures. A line per successful request
        // costs ~10 % of acceptance throughput (BENCHMARKS.md); RUST_LOG=ingress=debug shows
        // them. (A tracing level must be a constant: one field list, two levels.)
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
    }
    let Some(envelope) = envelope else {
        if let Ok(v) = HeaderValue::from_str(api_call_id) {
            response.headers_mut().insert(API_CALL_ID_HEADER, v);
        }
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let h = &mut parts.headers;
    // A router nested inside (the public paths' wrong-method answer) counted the empty body.
    h.remove(header::CONTENT_LENGTH);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(api_call_id) {
        h.insert(API_CALL_ID_HEADER, v);
    }
    Response::from_parts(parts, axum::body::Body::from(envelope.to_string()))
}

/// The route's template as a metrics label: `&'static` so that counting a request allocates
/// nothing. The templates are the route table's, a bounded set, each leaked once.
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    static LABELS: OnceLock<RwLock<HashMap<String, &'static str>>> = OnceLock::new();
    let Some(matched) = matched else {
        return "unmatched";
    };
    let labels = LABELS.get_or_init(RwLock::default);
    if let Some(label) = labels
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(matched.as_str())
    {
        return label;
    }
    let mut labels = labels.write().unwrap_or_else(|e| e.into_inner());
    labels
        .entry(matched.as_str().to_owned())
        .or_insert_with(|| Box::leak(matched.as_str().to_owned().into_boxed_str()))
}

/// The peer, or the client nginx names in `X-Forwarded-For` when the peer is a trusted proxy.
fn client_ip(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !state.trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(peer)
}

/// The envelope for an answer given outside the frame (a panic caught by the outermost layer).
pub(crate) fn envelope_response(
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
