//! `GET /status/{api_call_id}` and `GET /status?external_id=…` (SPEC §10): Redis first, MySQL
//! when Redis forgot or is down.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use shared::db::keys::is_valid_merchant_name;
use shared::envelope::RejectReason;
use shared::ids::is_plausible_id;
use shared::signature::is_valid_external_id;
use shared::status::CallStatus;

/// The outcome of an asynchronous call.
///
/// The submitting merchant and admins. `200` whatever the outcome; unknown ids, ids of
/// synchronous calls and other merchants' calls are `404`.
#[utoipa::path(
    get,
    path = "/status/{api_call_id}",
    operation_id = "getStatus",
    tag = "calls",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("api_call_id" = String, Path, description = "The api call id of a `POST /transaction` \
            or `POST /payment`."),
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "The call's status.", body = crate::openapi::StatusEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(api_call_id): PathId,
) -> Result<Reply<CallStatus>, ApiError> {
    if !is_plausible_id(&api_call_id) {
        return Err(ApiError::not_found());
    }
    let found = find(&state, &api_call_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    owned(&ctx, found)
}

/// A call's status and the merchant that made it (for the ownership check).
struct Found {
    merchant_id: String,
    status: CallStatus,
}

/// The status of `api_call_id`, whoever made it.
async fn find(state: &AppState, api_call_id: &str) -> Result<Option<Found>, ApiError> {
    let cached = match state.cache.get_status(api_call_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "status cache unavailable; reading MySQL");
            None
        }
    };
    if let Some(record) = cached.clone()
        && (record.status.is_final() || young(&record.status, Utc::now()))
    {
        return Ok(Some(Found {
            merchant_id: record.merchant_id,
            status: record.status,
        }));
    }
    // An older PENDING in Redis may be stale (a Redis that refused the worker's cache write
    // after the commit), so the outcome table decides.
    if let Some((merchant_id, status)) =
        shared::db::outcomes::get_outcome(&state.pool, api_call_id).await?
    {
        return Ok(Some(Found {
            merchant_id,
            status,
        }));
    }
    if let Some(record) = cached {
        return Ok(Some(Found {
            merchant_id: record.merchant_id,
            status: record.status,
        }));
    }
    let accepted = shared::db::outcomes::find_accepted_call(&state.pool, api_call_id).await?;
    Ok(accepted.map(|call| Found {
        merchant_id: call.merchant_id,
        status: CallStatus::pending(api_call_id, call.call_type, call.accepted_at),
    }))
}

/// How long a PENDING read from Redis is answered without asking MySQL.
///
/// Workers write a call's final status to Redis before they acknowledge its command, so a
/// PENDING there is stale only if Redis refused that write (the worker retries it, then
/// leaves it to this fallback). Polls of a call in the backlog are the common case under
/// load; each used to cost a MySQL read. Within this window they cost none, and the answer
/// is at worst this much late.
const PENDING_TRUSTED_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Whether a PENDING accepted at `status.created_at` is recent enough to trust at `now`.
fn young(status: &CallStatus, now: DateTime<Utc>) -> bool {
    now.signed_duration_since(status.created_at) < PENDING_TRUSTED_FOR
}

fn owned(ctx: &Caller, found: Found) -> Result<Reply<CallStatus>, ApiError> {
    if !ctx.owns(&found.merchant_id) {
        return Err(ApiError::not_found());
    }
    Ok(Reply::ok(found.status))
}

/// The endpoints external ids are scoped to (SPEC §7, §9), as `endpoint=` names them.
const ENDPOINTS: [&str; 3] = ["transaction", "payment", "refund"];

/// `GET /status`'s query, checked: mandatory parameters first, then each value in the order
/// listed. Other parameters are ignored, as the listings ignore them.
#[derive(Debug, PartialEq, Eq)]
struct LookupQuery {
    external_id: String,
    endpoint: &'static str,
    merchant: Option<String>,
}

fn parse_lookup(query: Option<&str>, merchant_required: bool) -> Result<LookupQuery, ApiError> {
    let (mut external_id, mut endpoint, mut merchant) = (None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "external_id" => external_id = Some(v),
            "endpoint" => endpoint = Some(v),
            "merchant" => merchant = Some(v),
            _ => {}
        }
    }
    let external_id = external_id.ok_or_else(|| ApiError::mandatory("external_id"))?;
    if merchant_required && merchant.is_none() {
        return Err(ApiError::mandatory("merchant"));
    }
    let external_id = percent_decode(external_id)
        .filter(|x| is_valid_external_id(x))
        .ok_or_else(|| {
            ApiError::invalid_value("external_id", "must be 1-128 visible ASCII characters")
        })?;
    let endpoint = match endpoint {
        None => ENDPOINTS[0],
        Some(e) => ENDPOINTS
            .into_iter()
            .find(|known| *known == e)
            .ok_or_else(|| {
                ApiError::invalid_value("endpoint", "must be transaction, payment or refund")
            })?,
    };
    let merchant = merchant
        .map(|m| {
            Some(m)
                .filter(|m| is_valid_merchant_name(m))
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::invalid_value("merchant", "must be 1-64 characters of [A-Za-z0-9_-]")
                })
        })
        .transpose()?;
    Ok(LookupQuery {
        external_id,
        endpoint,
        merchant,
    })
}

/// RFC 3986 percent-decoding (`+` stays `+`: it is a visible character an external id may
/// hold). `None` when a `%` is not followed by two hex digits or the bytes are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The call that claimed an external id.
///
/// Merchants and admins. Answers exactly as `GET /status/{api_call_id}` for the call that
/// claimed `external_id` on `endpoint` for the merchant, so a merchant whose connection dropped
/// before the `202` finds its call. Found through the Redis claim, or MySQL's record of the
/// external id once a worker decided the call (a call whose claim Redis lost before any worker
/// decided it is `404` until then).
#[utoipa::path(
    get,
    path = "/status",
    operation_id = "findStatusByExternalId",
    tag = "calls",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("external_id" = String, Query, min_length = 1, max_length = 128,
            pattern = "^[\\x21-\\x7E]+$",
            description = "The `X-External-Id` the call was submitted with, percent-encoded \
                where a query needs it. Absent: `400 INVALID_MANDATORY`; malformed: \
                `400 INVALID_VALUE`."),
        ("endpoint" = Option<String>, Query, pattern = "^(transaction|payment|refund)$",
            description = "The endpoint the external id was used on: `transaction` (default), \
                `payment` or `refund`; anything else is `400 INVALID_VALUE`."),
        ("merchant" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{1,64}$",
            description = "Whose external id. Mandatory for admin keys (`PLATFORM` for calls \
                made with admin keys); a merchant key may pass only its own name (another \
                name is `404`)."),
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "The call's status.", body = crate::openapi::StatusEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn lookup(
    State(state): State<AppState>,
    ctx: Caller,
    RawQuery(query): RawQuery,
) -> Result<Reply<CallStatus>, ApiError> {
    let q = parse_lookup(query.as_deref(), ctx.is_admin())?;
    let own = &ctx.key.merchant_id;
    let merchant = match q.merchant {
        Some(m) if !ctx.is_admin() && m != *own => return Err(ApiError::not_found()),
        Some(m) => m,
        None => own.clone(),
    };
    let key = state
        .cache
        .names
        .claim(&merchant, q.endpoint, &q.external_id);
    // The claim names the call as soon as it is taken, before any worker decided it.
    match state.cache.get_claim(&key).await {
        Ok(Some(claim)) if is_plausible_id(&claim.api_call_id) => {
            if let Some(found) = find(&state, &claim.api_call_id).await?
                && !lost_the_id(&found.status)
            {
                return owned(&ctx, found);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "claims unavailable; reading MySQL"),
    }
    // The worker writes `idempotency_keys` when it decides, so this finds every decided call
    // after Redis lost its claim; MySQL's unique key also decides who owns the id when a claim
    // names a call that a worker rejected as a duplicate.
    let recorded =
        shared::db::outcomes::find_idempotency(&state.pool, &merchant, q.endpoint, &q.external_id)
            .await?;
    if let Some((call, _)) = recorded
        && let Some(found) = find(&state, &call).await?
    {
        return owned(&ctx, found);
    }
    Err(ApiError::not_found())
}

/// A call the workers rejected because another call had used its external id: that other
/// call is the one that claimed it.
fn lost_the_id(status: &CallStatus) -> bool {
    status.reason == Some(RejectReason::DuplicateExternalId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::envelope::MessageAction;

    fn action(query: &str, admin: bool) -> Option<(MessageAction, String)> {
        parse_lookup(Some(query), admin)
            .err()
            .map(|e| (e.action, e.data.as_str().unwrap_or("").to_owned()))
    }

    #[test]
    fn only_a_recent_pending_is_trusted_without_mysql() {
        let accepted = Utc::now();
        let status = CallStatus::pending(
            "API_CALL_0193a5b2c3d47e8f9a0b1c2d3e4f5a6b",
            shared::messages::CallType::Transaction,
            accepted,
        );
        assert!(young(&status, accepted));
        assert!(young(
            &status,
            accepted + chrono::TimeDelta::milliseconds(4_999)
        ));
        assert!(!young(&status, accepted + PENDING_TRUSTED_FOR));
        assert!(!young(&status, accepted + chrono::TimeDelta::minutes(10)));
    }

    #[test]
    fn mandatory_parameters_come_before_values() {
        let (a, m) = action("endpoint=bogus", false).expect("error");
        assert_eq!(a, MessageAction::InvalidMandatory);
        assert!(m.contains("`external_id`"), "{m}");
        let (a, m) = action("external_id=%zz&endpoint=bogus", true).expect("error");
        assert_eq!(a, MessageAction::InvalidMandatory);
        assert!(m.contains("`merchant`"), "{m}");
    }

    #[test]
    fn each_malformed_value_is_named() {
        for (query, field) in [
            ("external_id=", "external_id"),
            ("external_id=a%20b", "external_id"),
            ("external_id=%4", "external_id"),
            ("external_id=%C3%A9", "external_id"),
            (&format!("external_id={}", "x".repeat(129)), "external_id"),
            ("external_id=A&endpoint=", "endpoint"),
            ("external_id=A&endpoint=Transaction", "endpoint"),
            ("external_id=A&merchant=", "merchant"),
            ("external_id=A&merchant=a.b", "merchant"),
        ] {
            let (a, m) = action(query, false).expect(query);
            assert_eq!(a, MessageAction::InvalidValue, "{query}");
            assert!(m.contains(&format!("`{field}`")), "{query}: {m}");
        }
    }

    #[test]
    fn values_are_percent_decoded_and_endpoint_defaults_to_transaction() {
        let q = parse_lookup(Some("external_id=ORDER%231+x&other=1"), false).expect("parsed");
        assert_eq!(
            q,
            LookupQuery {
                external_id: "ORDER#1+x".into(),
                endpoint: "transaction",
                merchant: None,
            }
        );
        let q = parse_lookup(
            Some("merchant=PLATFORM&endpoint=refund&external_id=R-1"),
            true,
        )
        .expect("parsed");
        assert_eq!(q.endpoint, "refund");
        assert_eq!(q.merchant.as_deref(), Some("PLATFORM"));
    }
}
