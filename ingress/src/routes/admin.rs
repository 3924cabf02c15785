//! The operators' endpoints (admin only), what the console calls: API keys
//! (`/admin/keys…`), dead letters (`/admin/dead-letters…`) and the engine's health at a
//! glance (`/admin/overview`). Each operation is the one `xyzctl` runs (`shared::db::keys`,
//! `shared::dlq`); a key change is announced on Redis as `xyzctl keys …` announces it, so
//! every ingress reloads at once. A secret appears only in the answer that issues it, masked
//! in the audit log (`crate::audit`).

use crate::body::{Body, FromBody};
use crate::caller::Caller;
use crate::claims;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::routes::health::{Readiness, readiness};
use crate::state::AppState;
use axum::extract::State;
use serde::Serialize;
use shared::amqp::QueueCounts;
use shared::db::activity::Activity;
use shared::db::keys::{self, IssuedKey, KeyInfo, KeyRate, KeyWriteError, Role, RotatedKey};
use shared::db::users::IdempotencyRecord;
use shared::dlq::{DeadLetter, Selection};
use shared::ids::is_plausible_id;
use shared::json::JsonObject;
use std::time::Duration;
use utoipa::ToSchema;

/// The highest rate or burst a key may be given.
const MAX_RATE: u32 = 1_000_000;
/// The longest grace period of a rotated key's previous secret: 30 days.
const MAX_GRACE_SECS: u32 = 2_592_000;
const DEFAULT_GRACE_SECS: u32 = 86_400;
/// The most dead-lettered messages one listing reads (each is held unacked meanwhile).
const MAX_LISTED: usize = 1_000;
/// The most api call ids one replay names.
const MAX_REPLAY_IDS: usize = 1_000;
/// How long the overview waits for each dependency.
const LOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// A positive JSON integer up to `max`.
fn positive_int(obj: &JsonObject<'_>, field: &str, max: u32) -> Result<Option<u32>, ApiError> {
    let Some(raw) = obj.get(field) else {
        return Ok(None);
    };
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n) && raw.bytes().all(|b| b.is_ascii_digit()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_value(field, format!("must be an integer from 1 to {max}"))
        })
}

/// Tells every ingress, this one first, that a key changed.
async fn announce(state: &AppState, client_id: &str) {
    state.api_keys.changed();
    if let Err(e) = state.cache.announce_key_change(client_id).await {
        tracing::warn!(error = %e, "key change not announced; every ingress reloads within KEY_REFRESH_MS");
    }
}

/// Every API key.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeysList {
    /// Oldest first, revoked ones included; never a secret.
    items: Vec<KeyInfo>,
}

/// List API keys.
///
/// Admin only. Every key, revoked ones included, oldest first. Never a secret.
#[utoipa::path(
    get,
    path = "/admin/keys",
    operation_id = "listKeys",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The keys.", body = crate::openapi::KeysEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    _: Caller,
) -> Result<Reply<KeysList>, ApiError> {
    let items = keys::list_keys(&state.pool).await?;
    Ok(Reply::ok(KeysList { items }))
}

/// `POST /admin/keys`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    /// The merchant the key belongs to (an admin key belongs to the platform whatever its
    /// name); a merchant key cannot be named `PLATFORM`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_-]+$",
        example = "tokopedia"
    )]
    name: String,
    role: Role,
    /// The key's own sustained rate (requests per second); absent: the deployment's default.
    #[schema(minimum = 1, maximum = 1_000_000, required = false)]
    rate_per_second: Option<u32>,
    /// The key's own burst; absent: the deployment's default.
    #[schema(minimum = 1, maximum = 1_000_000, required = false)]
    rate_burst: Option<u32>,
}

impl FromBody for CreateKeyRequest {
    const FIELDS: &'static [&'static str] = &["name", "role", "rate_per_second", "rate_burst"];
    const MANDATORY: &'static [&'static str] = &["name", "role"];

    fn from_body(obj: &JsonObject<'_>) -> Result<CreateKeyRequest, ApiError> {
        let name = obj
            .get_str("name")
            .filter(|n| keys::is_valid_merchant_name(n))
            .ok_or_else(|| {
                ApiError::invalid_value("name", "must be 1-64 characters of [A-Za-z0-9_-]")
            })?;
        let role = obj
            .get_str("role")
            .as_deref()
            .and_then(Role::parse)
            .ok_or_else(|| ApiError::invalid_value("role", "must be admin or merchant"))?;
        if role == Role::Merchant && name.eq_ignore_ascii_case("PLATFORM") {
            return Err(ApiError::invalid_value(
                "name",
                "cannot be PLATFORM for a merchant key: it is the platform's identity",
            ));
        }
        Ok(CreateKeyRequest {
            name,
            role,
            rate_per_second: positive_int(obj, "rate_per_second", MAX_RATE)?,
            rate_burst: positive_int(obj, "rate_burst", MAX_RATE)?,
        })
    }
}

/// Which error a key write's failure answers, after giving the claim its due.
async fn key_write_failed(state: &AppState, claim: &claims::Claimed, e: KeyWriteError) -> ApiError {
    match e {
        KeyWriteError::ExternalIdUsed {
            original_api_call_id,
            original_body_sha256,
        } => {
            claim
                .conflict_with(state, &original_api_call_id, &original_body_sha256)
                .await
        }
        // Checked with the body already; kept for a caller that skips it.
        KeyWriteError::InvalidName | KeyWriteError::ReservedName => {
            claim.release(state).await;
            ApiError::invalid_value("name", e)
        }
        KeyWriteError::Random(e) => {
            claim.release(state).await;
            ApiError::internal(e)
        }
        KeyWriteError::Db(e) => {
            claim.release(state).await;
            ApiError::unavailable(&e)
        }
    }
}

fn idempotency<'a>(
    ctx: &'a Caller,
    endpoint: &'a str,
    claim: &claims::Claimed,
) -> IdempotencyRecord<'a> {
    IdempotencyRecord {
        merchant_id: &ctx.key.merchant_id,
        endpoint,
        external_id: ctx.external_id.as_deref().unwrap_or(""),
        api_call_id: &ctx.api_call_id,
        body_sha256: claim.body_sha256,
    }
}

/// Create an API key.
///
/// Admin only. `201` with the key and its secret, shown only in this answer (the audit log
/// keeps it masked): store it now. Every ingress accepts the key at once (the change is
/// announced), or within `KEY_REFRESH_MS` when Redis is away.
#[utoipa::path(
    post,
    path = "/admin/keys",
    operation_id = "createKey",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdRequired),
    request_body(content = CreateKeyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the key with its secret.", body = crate::openapi::IssuedKeyEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID`: the external id is used.",
            body = crate::openapi::ConflictEnvelope),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    ctx: Caller,
    Body(request): Body<CreateKeyRequest>,
) -> Result<Reply<IssuedKey>, ApiError> {
    const ENDPOINT: &str = "admin-keys";
    let claim = claims::claim(&state, &ctx, ENDPOINT, None).await?;
    let rate = KeyRate {
        per_second: request.rate_per_second,
        burst: request.rate_burst,
    };
    let idem = idempotency(&ctx, ENDPOINT, &claim);
    match keys::issue_key(
        &state.pool,
        &state.keyring,
        &request.name,
        request.role,
        rate,
        Some(&idem),
    )
    .await
    {
        Ok(issued) => {
            claim.accept(&state, None).await;
            announce(&state, &issued.client_id).await;
            tracing::info!(client_id = %issued.client_id, role = issued.role.as_str(), "api key issued");
            Ok(Reply::created(issued))
        }
        Err(e) => Err(key_write_failed(&state, &claim, e).await),
    }
}

/// `POST /admin/keys/{client_id}/rotate`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateKeyRequest {
    /// Seconds the previous secret keeps verifying (0 to 2,592,000, 30 days); absent: 86,400.
    #[schema(minimum = 0, maximum = 2_592_000, required = false)]
    grace_secs: Option<u32>,
}

impl FromBody for RotateKeyRequest {
    const FIELDS: &'static [&'static str] = &["grace_secs"];
    const MANDATORY: &'static [&'static str] = &[];

    fn from_body(obj: &JsonObject<'_>) -> Result<RotateKeyRequest, ApiError> {
        let grace_secs = match obj.get("grace_secs") {
            None => None,
            Some(raw) => Some(
                raw.parse::<u32>()
                    .ok()
                    .filter(|n| *n <= MAX_GRACE_SECS && raw.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        ApiError::invalid_value(
                            "grace_secs",
                            format!("must be an integer from 0 to {MAX_GRACE_SECS}"),
                        )
                    })?,
            ),
        };
        Ok(RotateKeyRequest { grace_secs })
    }
}

/// Rotate an API key's secret.
///
/// Admin only. A new secret, shown only in this answer (masked in the audit log); the
/// previous one keeps verifying until `previous_secret_valid_until`. `404` when no active key
/// has this id (the external id stays used).
#[utoipa::path(
    post,
    path = "/admin/keys/{client_id}/rotate",
    operation_id = "rotateKey",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("client_id" = String, Path, description = "The key's id (`ck_…`)."), crate::openapi::ExternalIdRequired),
    request_body(content = RotateKeyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new secret.", body = crate::openapi::RotatedKeyEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID`: the external id is used.",
            body = crate::openapi::ConflictEnvelope),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(client_id): PathId,
    Body(request): Body<RotateKeyRequest>,
) -> Result<Reply<RotatedKey>, ApiError> {
    const ENDPOINT: &str = "admin-keys-rotate";
    if !is_plausible_id(&client_id) {
        return Err(ApiError::not_found());
    }
    let claim = claims::claim(&state, &ctx, ENDPOINT, None).await?;
    let grace =
        chrono::Duration::seconds(i64::from(request.grace_secs.unwrap_or(DEFAULT_GRACE_SECS)));
    let idem = idempotency(&ctx, ENDPOINT, &claim);
    match keys::rotate_key(&state.pool, &state.keyring, &client_id, grace, Some(&idem)).await {
        Ok(Some(rotated)) => {
            claim.accept(&state, None).await;
            announce(&state, &client_id).await;
            tracing::info!(%client_id, "api key rotated");
            Ok(Reply::ok(rotated))
        }
        Ok(None) => {
            claim.accept(&state, None).await;
            Err(ApiError::not_found())
        }
        Err(e) => Err(key_write_failed(&state, &claim, e).await),
    }
}

/// What `DELETE /admin/keys/{client_id}` answers.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revoked {
    client_id: String,
    revoked: bool,
}

/// Revoke an API key.
///
/// Admin only. Every ingress refuses the key at once (the change is announced), or within
/// `KEY_REFRESH_MS` when Redis is away. `404` when no active key has this id. Claimed by its
/// signature: the same signed request again is a replay (409).
#[utoipa::path(
    delete,
    path = "/admin/keys/{client_id}",
    operation_id = "revokeKey",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("client_id" = String, Path, description = "The key's id (`ck_…`)."), crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "Revoked.", body = crate::openapi::RevokedEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Replay),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(client_id): PathId,
) -> Result<Reply<Revoked>, ApiError> {
    if !is_plausible_id(&client_id) {
        return Err(ApiError::not_found());
    }
    let claim = claims::claim_signature(&state, &ctx).await?;
    match keys::revoke_key(&state.pool, &client_id).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::not_found()),
        Err(e) => {
            claim.release(&state).await;
            return Err(e.into());
        }
    }
    announce(&state, &client_id).await;
    tracing::info!(%client_id, "api key revoked");
    Ok(Reply::ok(Revoked {
        client_id,
        revoked: true,
    }))
}

/// `PATCH /admin/keys/{client_id}/rate`: each part absent or `null` is the deployment's
/// default, so `{}` gives the key the default back.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetRateRequest {
    #[schema(minimum = 1, maximum = 1_000_000, required = false)]
    rate_per_second: Option<u32>,
    #[schema(minimum = 1, maximum = 1_000_000, required = false)]
    rate_burst: Option<u32>,
}

impl FromBody for SetRateRequest {
    const FIELDS: &'static [&'static str] = &["rate_per_second", "rate_burst"];
    const MANDATORY: &'static [&'static str] = &[];

    fn from_body(obj: &JsonObject<'_>) -> Result<SetRateRequest, ApiError> {
        Ok(SetRateRequest {
            rate_per_second: positive_int(obj, "rate_per_second", MAX_RATE)?,
            rate_burst: positive_int(obj, "rate_burst", MAX_RATE)?,
        })
    }
}

/// Set an API key's rate limit.
///
/// Admin only. The key's own rate and burst; a part absent or `null` is the deployment's
/// default. `200` with the key. `404` when no active key has this id. Claimed by its
/// signature: the same signed request again is a replay (409).
#[utoipa::path(
    patch,
    path = "/admin/keys/{client_id}/rate",
    operation_id = "setKeyRate",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("client_id" = String, Path, description = "The key's id (`ck_…`)."), crate::openapi::ExternalIdOptional),
    request_body(content = SetRateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The key, with its rate.", body = crate::openapi::KeyEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Replay),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn set_key_rate(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(client_id): PathId,
    Body(request): Body<SetRateRequest>,
) -> Result<Reply<KeyInfo>, ApiError> {
    if !is_plausible_id(&client_id) {
        return Err(ApiError::not_found());
    }
    let claim = claims::claim_signature(&state, &ctx).await?;
    let set = keys::set_rate(
        &state.pool,
        &client_id,
        request.rate_per_second,
        request.rate_burst,
    )
    .await;
    match set {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::not_found()),
        Err(e) => {
            claim.release(&state).await;
            return Err(e.into());
        }
    }
    announce(&state, &client_id).await;
    tracing::info!(%client_id, "api key rate set");
    let key = keys::get_key(&state.pool, &client_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(key))
}

/// A connection to the broker for one operator's look, or 503.
async fn broker(state: &AppState) -> Result<shared::amqp::Connection, ApiError> {
    match tokio::time::timeout(LOOK_TIMEOUT, state.publisher.connect_aside("ingress-admin")).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(ApiError::unavailable(&e)),
        Err(_) => Err(ApiError::unavailable(&"the broker did not answer in time")),
    }
}

/// The dead-letter queue's content.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLetters {
    /// One entry per command (a message may carry several), or per undecodable message.
    items: Vec<DeadLetter>,
    /// True when 1,000 messages were read: the queue may hold more.
    truncated: bool,
}

/// List dead letters.
///
/// Admin only. The commands in the dead-letter queue (the first 1,000 messages), with why the
/// broker dead-lettered them; they stay in the queue.
#[utoipa::path(
    get,
    path = "/admin/dead-letters",
    operation_id = "listDeadLetters",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The dead letters.", body = crate::openapi::DeadLettersEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn list_dead_letters(
    State(state): State<AppState>,
    _: Caller,
) -> Result<Reply<DeadLetters>, ApiError> {
    let conn = broker(&state).await?;
    let topology = state.publisher.topology().clone();
    let listed = shared::dlq::list(&conn, &topology, MAX_LISTED).await;
    let _ = conn.close(200, "listed".into()).await;
    let listed = listed.map_err(|e| ApiError::unavailable(&e))?;
    let truncated = listed.messages >= MAX_LISTED;
    let items = listed.entries;
    Ok(Reply::ok(DeadLetters { items, truncated }))
}

/// `POST /admin/dead-letters/replay`: `{"ids": [...]}` or `{"all": true}`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// The api call ids to replay (1 to 1,000); a message carrying any of them is replayed
    /// whole.
    #[schema(value_type = Option<Vec<shared::openapi::ApiCallId>>, required = false, min_items = 1, max_items = 1000)]
    ids: Option<Vec<String>>,
    /// `true`: replay every decodable command.
    #[schema(required = false)]
    all: Option<bool>,
}

impl FromBody for ReplayRequest {
    const FIELDS: &'static [&'static str] = &["ids", "all"];
    const MANDATORY: &'static [&'static str] = &[];

    fn from_body(obj: &JsonObject<'_>) -> Result<ReplayRequest, ApiError> {
        let ids = match obj.get("ids") {
            None => None,
            Some(raw) => {
                let ids: Vec<String> = serde_json::from_str(raw)
                    .ok()
                    .filter(|ids: &Vec<String>| {
                        (1..=MAX_REPLAY_IDS).contains(&ids.len())
                            && ids.iter().all(|id| is_plausible_id(id))
                    })
                    .ok_or_else(|| {
                        ApiError::invalid_value(
                            "ids",
                            format!("must be a list of 1 to {MAX_REPLAY_IDS} api call ids"),
                        )
                    })?;
                Some(ids)
            }
        };
        let all = match obj.get("all") {
            None => None,
            Some("true") => Some(true),
            Some(_) => return Err(ApiError::invalid_value("all", "must be true when present")),
        };
        match (&ids, all) {
            (None, None) => Err(ApiError::mandatory("ids")),
            (Some(_), Some(_)) => Err(ApiError::invalid_value(
                "all",
                "cannot be given with `ids`: name the calls or replay all",
            )),
            _ => Ok(ReplayRequest { ids, all }),
        }
    }
}

/// What was replayed.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replayed {
    /// Every command re-published to the command queue and removed from the dead letters.
    replayed: Vec<DeadLetter>,
}

/// Replay dead letters.
///
/// Admin only. Re-publishes the named commands (or all decodable ones) to the command queue,
/// each removed from the dead letters only once the broker confirmed it; the workers'
/// idempotency records make a command that runs twice count once. Undecodable messages stay.
#[utoipa::path(
    post,
    path = "/admin/dead-letters/replay",
    operation_id = "replayDeadLetters",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdRequired),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "What was replayed.", body = crate::openapi::ReplayedEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID`: the external id is used.",
            body = crate::openapi::ConflictEnvelope),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn replay_dead_letters(
    State(state): State<AppState>,
    ctx: Caller,
    Body(request): Body<ReplayRequest>,
) -> Result<Reply<Replayed>, ApiError> {
    let claim = claims::claim(&state, &ctx, "admin-dead-letters-replay", None).await?;
    let selection = match (request.ids, request.all) {
        (Some(ids), _) => Selection::Ids(ids),
        (None, _) => Selection::All,
    };
    let conn = match broker(&state).await {
        Ok(conn) => conn,
        Err(e) => {
            claim.release(&state).await;
            return Err(e);
        }
    };
    let topology = state.publisher.topology().clone();
    let replayed = shared::dlq::replay(&conn, &topology, &selection).await;
    let _ = conn.close(200, "replayed".into()).await;
    match replayed {
        Ok(replayed) => {
            claim.accept(&state, None).await;
            tracing::info!(replayed = replayed.len(), "dead letters replayed");
            Ok(Reply::ok(Replayed { replayed }))
        }
        Err(e) => {
            // Part may have been replayed: a retry replays the rest, and twice is safe.
            claim.release(&state).await;
            Err(ApiError::unavailable(&e))
        }
    }
}

/// The engine at a glance.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Overview {
    /// Whether MySQL, Redis and RabbitMQ all answer this ingress.
    ready: bool,
    checks: Readiness,
    /// The command queue (null when the broker does not answer).
    command_queue: Option<QueueCounts>,
    /// The dead-letter queue (null when the broker does not answer).
    dead_letter_queue: Option<QueueCounts>,
    /// Requests and decisions over the last minute, counted in MySQL across every ingress
    /// and worker (null when MySQL does not answer).
    activity: Option<Activity>,
}

/// The engine's health.
///
/// Admin only. Readiness, the queues (depth and consumers), dead letters, and requests and
/// decisions over the last minute (counted in MySQL: `api_call_logs` and the outcomes of
/// asynchronous calls, across every ingress and worker). Always `200`: what does not answer
/// is `false` or `null`.
#[utoipa::path(
    get,
    path = "/admin/overview",
    operation_id = "adminOverview",
    tag = "admin",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The engine's health.", body = crate::openapi::OverviewEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn overview(
    State(state): State<AppState>,
    _: Caller,
) -> Result<Reply<Overview>, ApiError> {
    let queues = async {
        let conn = broker(&state).await.ok()?;
        let topology = state.publisher.topology();
        let counts = tokio::time::timeout(LOOK_TIMEOUT, async {
            let commands = shared::amqp::queue_counts(&conn, &topology.command_queue()).await;
            let dead = shared::amqp::queue_counts(&conn, &topology.dead_letter_queue()).await;
            (commands.ok(), dead.ok())
        })
        .await
        .ok();
        let _ = conn.close(200, "counted".into()).await;
        counts
    };
    let activity = tokio::time::timeout(
        LOOK_TIMEOUT,
        shared::db::activity::last_minute(&state.pool, chrono::Utc::now()),
    );
    let (checks, queues, activity) = tokio::join!(readiness(&state), queues, activity);
    let (command_queue, dead_letter_queue) = queues.unwrap_or((None, None));
    Ok(Reply::ok(Overview {
        ready: checks.all(),
        checks,
        command_queue,
        dead_letter_queue,
        activity: activity.ok().and_then(Result::ok),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::envelope::MessageAction;

    fn parse<T: FromBody>(body: &str) -> Result<T, ApiError> {
        let obj = JsonObject::parse(body.as_bytes()).map_err(ApiError::from)?;
        obj.check_keys_with(T::FIELDS, T::MANDATORY)
            .map_err(ApiError::from)?;
        T::from_body(&obj)
    }

    #[test]
    fn a_replay_names_its_calls_or_all_of_them() {
        assert!(parse::<ReplayRequest>(r#"{"all":true}"#).is_ok());
        assert!(parse::<ReplayRequest>(r#"{"ids":["API_CALL_1"]}"#).is_ok());
        let none = parse::<ReplayRequest>("{}").err().map(|e| e.action);
        assert_eq!(none, Some(MessageAction::InvalidMandatory));
        for bad in [
            r#"{"all":false}"#,
            r#"{"ids":[]}"#,
            r#"{"ids":["a b"]}"#,
            r#"{"ids":["A"],"all":true}"#,
        ] {
            let action = parse::<ReplayRequest>(bad).err().map(|e| e.action);
            assert_eq!(action, Some(MessageAction::InvalidValue), "{bad}");
        }
    }

    #[test]
    fn a_merchant_key_cannot_be_named_platform() {
        let e = parse::<CreateKeyRequest>(r#"{"name":"platform","role":"merchant"}"#)
            .err()
            .map(|e| e.action);
        assert_eq!(e, Some(MessageAction::InvalidValue));
        assert!(parse::<CreateKeyRequest>(r#"{"name":"platform","role":"admin"}"#).is_ok());
    }

    #[test]
    fn rates_are_positive_integers() {
        assert!(parse::<SetRateRequest>(r#"{"rate_per_second":5,"rate_burst":null}"#).is_ok());
        for bad in [
            r#"{"rate_per_second":0}"#,
            r#"{"rate_per_second":1.5}"#,
            r#"{"rate_burst":"5"}"#,
            r#"{"rate_burst":1000001}"#,
        ] {
            let action = parse::<SetRateRequest>(bad).err().map(|e| e.action);
            assert_eq!(action, Some(MessageAction::InvalidValue), "{bad}");
        }
    }
}
