//! `PUT`, `GET`, `DELETE /webhooks`, `GET /webhooks/deliveries` and
//! `POST /webhooks/deliveries/{event_id}/retry` (SPEC §11): a merchant's one endpoint and
//! what was sent to it. Merchants only; the events themselves are recorded by the workers.

use crate::body::{Body, FromBody};
use crate::caller::Caller;
use crate::claims;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::routes::listings::{Page, open, split_page};
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use chrono::Utc;
use serde::Serialize;
use shared::db::users::IdempotencyRecord;
use shared::db::webhooks::{Delivery, Endpoint, RetryOutcome};
use shared::ids::is_plausible_id;
use shared::json::{JsonObject, is_json_content_type};
use shared::status::format_instant;
use shared::webhooks::{DeliveryStatus, EventType, Loopback, WebhookUrl, resolve_public};
use utoipa::ToSchema;

/// The external-id scope of manual retries (SPEC §7: per merchant and endpoint).
const RETRY_ENDPOINT: &str = "webhook-retry";

/// `PUT /webhooks`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookRequest {
    /// `https`, at most 2048 characters, whose host resolves to public addresses only.
    #[schema(
        format = "uri",
        max_length = 2048,
        example = "https://merchant.example.com/xyz-webhooks"
    )]
    url: String,
    /// A non-empty set of event types.
    #[schema(min_items = 1)]
    events: Vec<EventType>,
    /// `true` replaces the secret; the answer shows the new one. Optional.
    #[schema(required = false)]
    rotate_secret: Option<bool>,
}

impl FromBody for WebhookRequest {
    const FIELDS: &'static [&'static str] = &["url", "events", "rotate_secret"];
    const MANDATORY: &'static [&'static str] = &["url", "events"];

    fn from_body(obj: &JsonObject<'_>) -> Result<WebhookRequest, ApiError> {
        let url = obj
            .get_str("url")
            .ok_or_else(|| ApiError::invalid_value("url", "must be a string"))?;
        // The shape here; where the host points once the whole body is read (`put`).
        WebhookUrl::parse(&url, Loopback::Allowed)
            .map_err(|why| ApiError::invalid_value("url", why))?;
        Ok(WebhookRequest {
            url,
            events: events(obj)?,
            rotate_secret: rotate_secret(obj)?,
        })
    }
}

fn events(obj: &JsonObject<'_>) -> Result<Vec<EventType>, ApiError> {
    let field = "events";
    let names: Vec<serde_json::Value> = obj
        .get(field)
        .and_then(|raw| serde_json::from_str(raw).ok())
        .ok_or_else(|| ApiError::invalid_value(field, "must be an array of event types"))?;
    if names.is_empty() {
        return Err(ApiError::invalid_value(
            field,
            "must name at least one event type",
        ));
    }
    let mut events = Vec::with_capacity(names.len());
    for name in &names {
        let name = name
            .as_str()
            .ok_or_else(|| ApiError::invalid_value(field, "must be an array of strings"))?;
        let event = EventType::parse(name).ok_or_else(|| {
            ApiError::invalid_value(
                field,
                format!(
                    "has an unknown event type `{name}` (known: {})",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            )
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    events.sort();
    Ok(events)
}

fn rotate_secret(obj: &JsonObject<'_>) -> Result<Option<bool>, ApiError> {
    match obj.get("rotate_secret") {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_value(
            "rotate_secret",
            "must be true or false",
        )),
    }
}

/// A merchant's webhook endpoint.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookView {
    url: String,
    events: Vec<EventType>,
    #[schema(value_type = shared::openapi::Instant)]
    created_at: String,
    /// `whsec_` + base64 of 32 bytes: the key of every signature. Only in the answer that
    /// created the endpoint or rotated its secret; keep it safe, it is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(endpoint: Endpoint, secret: Option<String>) -> WebhookView {
        WebhookView {
            url: endpoint.url,
            events: endpoint.events,
            created_at: format_instant(&endpoint.created_at),
            secret,
        }
    }
}

/// `DELETE /webhooks`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookDeleted {
    deleted: bool,
}

/// One page of the merchant's webhook events, newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesPage {
    items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true, pattern = "^[A-Za-z0-9_-]+$")]
    next_cursor: Option<String>,
}

/// Register or update the webhook endpoint.
///
/// Merchants only (admins: `403`). One endpoint per merchant: the first `PUT` creates it and
/// answers its `secret`; later ones change `url` and `events` and keep the secret (not shown)
/// unless `"rotate_secret": true` replaces it (shown once). The host is resolved after the
/// body's other checks: an address that is not public is `400 INVALID_VALUE` on `url`.
/// Claimed by its signature: the same signed request again is a replay (409).
#[utoipa::path(
    put,
    path = "/webhooks",
    operation_id = "putWebhook",
    tag = "webhooks",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    request_body(content = WebhookRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint; with `secret` when created or rotated.",
            body = crate::openapi::WebhookEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::Replay),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    ctx: Caller,
    Body(request): Body<WebhookRequest>,
) -> Result<Reply<WebhookView>, ApiError> {
    let url = WebhookUrl::parse(&request.url, state.webhook_loopback)
        .map_err(|why| ApiError::invalid_value("url", why))?;
    resolve_public(&url, state.webhook_loopback)
        .await
        .map_err(|why| ApiError::invalid_value("url", why))?;
    let claim = claims::claim_signature(&state, &ctx).await?;
    let put = shared::db::webhooks::put_endpoint(
        &state.pool,
        &state.keyring,
        &ctx.key.merchant_id,
        url.as_str(),
        &request.events,
        request.rotate_secret == Some(true),
        Utc::now(),
    )
    .await;
    let put = match put {
        Ok(put) => put,
        Err(e) => {
            claim.release(&state).await;
            return Err(e.into());
        }
    };
    tracing::info!(
        merchant = %ctx.key.merchant_id,
        secret_issued = put.secret.is_some(),
        "webhook endpoint registered"
    );
    Ok(Reply::ok(WebhookView::of(put.endpoint, put.secret)))
}

/// The webhook endpoint.
///
/// Merchants only (admins: `403`). `404` when none is registered. The secret is never shown
/// here.
#[utoipa::path(
    get,
    path = "/webhooks",
    operation_id = "getWebhook",
    tag = "webhooks",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The endpoint, without its secret.", body = crate::openapi::WebhookEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: Caller,
) -> Result<Reply<WebhookView>, ApiError> {
    let endpoint = shared::db::webhooks::get_endpoint(&state.pool, &ctx.key.merchant_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(WebhookView::of(endpoint, None)))
}

/// Delete the webhook endpoint.
///
/// Merchants only (admins: `403`). Its pending deliveries are cancelled (listed as
/// `failed`); events are no longer recorded. `404` when none is registered. Claimed by its
/// signature: the same signed request again is a replay (409).
#[utoipa::path(
    delete,
    path = "/webhooks",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "Deleted.", body = crate::openapi::WebhookDeletedEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Replay),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: Caller,
) -> Result<Reply<WebhookDeleted>, ApiError> {
    let claim = claims::claim_signature(&state, &ctx).await?;
    let deleted =
        match shared::db::webhooks::delete_endpoint(&state.pool, &ctx.key.merchant_id, Utc::now())
            .await
        {
            Ok(deleted) => deleted,
            Err(e) => {
                claim.release(&state).await;
                return Err(e.into());
            }
        };
    if !deleted {
        return Err(ApiError::not_found());
    }
    tracing::info!(merchant = %ctx.key.merchant_id, "webhook endpoint deleted");
    Ok(Reply::ok(WebhookDeleted { deleted: true }))
}

/// `?status=` of the deliveries listing (absent: every status).
pub(crate) struct StatusFilter(Option<DeliveryStatus>);

impl<S: Send + Sync> FromRequestParts<S> for StatusFilter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<StatusFilter, ApiError> {
        let mut filter = None;
        for pair in parts.uri.query().unwrap_or("").split('&') {
            if let Some(v) = pair.strip_prefix("status=") {
                filter = Some(DeliveryStatus::parse(v).ok_or_else(|| {
                    ApiError::invalid_value("status", "must be pending, delivered or failed")
                })?);
            } else if pair == "status" {
                return Err(ApiError::invalid_value(
                    "status",
                    "must be pending, delivered or failed",
                ));
            }
        }
        Ok(StatusFilter(filter))
    }
}

/// The webhook events and their delivery attempts.
///
/// Merchants only (admins: `403`). Newest first, optionally only those of one `status`.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("status" = Option<DeliveryStatus>, Query,
            description = "Only events in this state; otherwise `400 INVALID_VALUE`."),
        crate::openapi::PageParams,
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "One page of events.", body = crate::openapi::DeliveriesEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    ctx: Caller,
    page: Page,
    StatusFilter(status): StatusFilter,
) -> Result<Reply<DeliveriesPage>, ApiError> {
    let merchant = ctx.key.merchant_id.as_str();
    let scope = format!(
        "cursor:webhook-deliveries:{merchant}:{}",
        status.map_or("all", DeliveryStatus::as_str)
    );
    let before = match &page.cursor {
        None => None,
        Some(cursor) => Some(
            open(&state, &scope, cursor)
                .ok()
                .filter(|id| is_plausible_id(id))
                .ok_or_else(|| {
                    ApiError::invalid_value("cursor", "was not issued by this endpoint")
                })?,
        ),
    };
    let rows = shared::db::webhooks::deliveries_page(
        &state.pool,
        merchant,
        status,
        before.as_deref(),
        page.limit + 1,
    )
    .await?;
    let (items, next_cursor) =
        split_page(&state, &scope, &page, rows, |last| last.event_id.clone());
    Ok(Reply::ok(DeliveriesPage { items, next_cursor }))
}

/// Retry a webhook delivery now.
///
/// Merchants only (admins: `403`). Schedules one more attempt of the event now, whatever its
/// status (an attempt already under way is that attempt); `200` with the delivery. No body, or
/// `{}`. An ordinary POST: `X-External-Id` required and claimed. Another merchant's event, or
/// none, is `404`.
#[utoipa::path(
    post,
    path = "/webhooks/deliveries/{event_id}/retry",
    operation_id = "retryWebhookDelivery",
    tag = "webhooks",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("event_id" = String, Path, description = "The event's id (`evt_…`, its `webhook-id`)."),
        crate::openapi::ExternalIdRequired,
    ),
    responses(
        (status = 200, description = "The delivery, due now.", body = crate::openapi::DeliveryEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "The external id is used.", body = crate::openapi::ConflictEnvelope),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(event_id): PathId,
    headers: axum::http::HeaderMap,
) -> Result<Reply<Delivery>, ApiError> {
    empty_body(&ctx, &headers)?;
    let (state, ctx) = (&state, &ctx);
    let claim = claims::claim(state, ctx, RETRY_ENDPOINT, None).await?;
    let idem = IdempotencyRecord {
        merchant_id: &ctx.key.merchant_id,
        endpoint: RETRY_ENDPOINT,
        external_id: ctx.external_id.as_deref().unwrap_or(""),
        api_call_id: &ctx.api_call_id,
        body_sha256: claim.body_sha256,
    };
    let event_id = if is_plausible_id(&event_id) {
        event_id
    } else {
        String::new()
    };
    let outcome = shared::db::webhooks::retry(
        &state.pool,
        &ctx.key.merchant_id,
        &event_id,
        &idem,
        Utc::now(),
    )
    .await;
    match outcome {
        Ok(RetryOutcome::Scheduled(delivery)) => {
            claim.accept(state, None).await;
            tracing::info!(%event_id, "webhook delivery retried");
            Ok(Reply::ok(delivery))
        }
        Ok(RetryOutcome::NotFound) => {
            claim.accept(state, None).await;
            Err(ApiError::not_found())
        }
        Ok(RetryOutcome::ExternalIdUsed {
            original_api_call_id,
            original_body_sha256,
        }) => Err(claim
            .conflict_with(state, &original_api_call_id, &original_body_sha256)
            .await),
        Err(e) => {
            claim.release(state).await;
            Err(ApiError::unavailable(&e))
        }
    }
}

/// A retry carries no fields: no body, or an empty JSON object.
fn empty_body(ctx: &Caller, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if ctx.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_json_content_type(content_type) {
        return Err(ApiError::format("Content-Type must be application/json"));
    }
    JsonObject::parse(&ctx.body)?.check_keys(&[])?;
    Ok(())
}
