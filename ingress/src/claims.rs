//! External-id claims (SPEC §7): Redis first, MySQL behind it.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use serde::Serialize;
use serde_json::json;
use shared::cache::{ClaimOutcome, Seen, StatusRecord};
use shared::envelope::MessageAction;
use shared::openapi::ApiCallId;
use utoipa::ToSchema;

/// A claim this request holds on (merchant, endpoint, external id).
pub struct Claimed {
    pub key: String,
    /// The call the command carries: this request's, or, when an earlier publish of the same
    /// body lost its confirm, that earlier call's (re-sent, so the worker sees one call).
    pub api_call_id: String,
    pub body_sha256: [u8; 32],
    /// The earlier call's acceptance instant when resuming it.
    pub resumed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the filter of claimed ids says: [`Seen::New`] means MySQL need not be asked.
    pub seen: Seen,
    /// The claim wrote this request's PENDING status: it goes if the claim is given up.
    pub wrote_pending: bool,
}

/// `message_data` of `409 CONFLICT_EXTERNAL_ID`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConflictData {
    message: &'static str,
    /// The call that claimed the external id first.
    #[schema(value_type = ApiCallId)]
    original_api_call_id: String,
    /// True when this body is byte-identical to the first one.
    same_payload: bool,
}

/// A signed write without an external id (`PATCH`, `PUT`, `DELETE`), claimed by its
/// signature: sent again within the signature's window, it is a replay and answers 409 naming
/// the call that first carried it. Every such endpoint claims before its effect.
pub(crate) async fn claim_signature(
    state: &AppState,
    ctx: &Caller,
) -> Result<SignatureClaim, ApiError> {
    let earlier = state
        .cache
        .claim_signature(&ctx.key.client_id, &ctx.signature, &ctx.api_call_id)
        .await?;
    match earlier {
        None => Ok(SignatureClaim {
            client_id: ctx.key.client_id.clone(),
            signature: ctx.signature.clone(),
        }),
        Some(original) => {
            metrics::counter!("xyz_claims_total", "result" => "replay").increment(1);
            Err(ApiError::with_data(
                MessageAction::ConflictExternalId,
                json!(ConflictData {
                    message: "this signed request was already received (a replay); sign it again with a fresh X-Timestamp to repeat it",
                    original_api_call_id: original,
                    same_payload: true,
                }),
            ))
        }
    }
}

/// A signature this request holds.
pub(crate) struct SignatureClaim {
    client_id: String,
    signature: String,
}

impl SignatureClaim {
    /// The request failed before any effect (a 503): the same signed request may come again.
    pub(crate) async fn release(&self, state: &AppState) {
        if let Err(e) = state
            .cache
            .release_signature(&self.client_id, &self.signature)
            .await
        {
            tracing::warn!(error = %e, "signature claim release failed; it expires with the window");
        }
    }
}

pub(crate) fn conflict(original_api_call_id: &str, same_payload: bool) -> ApiError {
    ApiError::with_data(
        MessageAction::ConflictExternalId,
        json!(ConflictData {
            message: "X-External-Id was already used by this merchant on this endpoint",
            original_api_call_id: original_api_call_id.to_owned(),
            same_payload,
        }),
    )
}

fn body_sha(ctx: &Caller) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(&ctx.body).into()
}

/// How long a request waits for another in-flight request holding its external id.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(7);

/// Claims the request's external id. Redis unreachable → 503 and nothing is claimed. With
/// `pending` (this request's call, PENDING), a successful claim writes that status in the
/// same round trip.
pub async fn claim(
    state: &AppState,
    ctx: &Caller,
    endpoint: &str,
    pending: Option<&StatusRecord>,
) -> Result<Claimed, ApiError> {
    let external_id = ctx
        .external_id
        .as_deref()
        .ok_or_else(|| ApiError::mandatory("X-External-Id"))?;
    let key = state
        .cache
        .names
        .claim(&ctx.key.merchant_id, endpoint, external_id);
    let positions = state
        .cache
        .seen_positions(&ctx.key.merchant_id, endpoint, external_id);
    let sha = body_sha(ctx);
    let sha_hex = hex::encode(sha);
    // A claim still being published belongs to a request in flight: its outcome (accepted,
    // or released by a 503) comes within the confirm timeout. Wait for it rather than name a
    // call that may never exist; if it never comes, the claim is orphaned and a later retry
    // takes it over, so this one answers 503 (retry is safe).
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    let mut pause = std::time::Duration::from_millis(20);
    // The request is spent from the rate limit once, by the first attempt.
    let mut allowance = ctx.take_deferred_rate(state);
    let outcome = loop {
        match state
            .cache
            .claim(
                &key,
                &positions,
                &ctx.api_call_id,
                &sha_hex,
                allowance.take(),
                pending,
            )
            .await?
        {
            ClaimOutcome::Taken(c) if c.state == "publishing" => {
                if tokio::time::Instant::now() + pause > deadline {
                    metrics::counter!("xyz_claims_total", "result" => "in_flight").increment(1);
                    let mut e = ApiError::new(
                        MessageAction::ServiceUnavailable,
                        "another request with this X-External-Id is still in flight; retry with the same X-External-Id",
                    );
                    e.retry_after = Some(5);
                    return Err(e);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(250));
            }
            other => break other,
        }
    };
    match outcome {
        ClaimOutcome::Taken(c) => {
            metrics::counter!("xyz_claims_total", "result" => "conflict").increment(1);
            Err(conflict(&c.api_call_id, c.body_sha256 == sha_hex))
        }
        ClaimOutcome::Unconfirmed(c) if c.body_sha256 == sha_hex => {
            metrics::counter!("xyz_claims_total", "result" => "resumed").increment(1);
            tracing::warn!(resumed_call = %c.api_call_id, "re-sending a call whose confirm was lost");
            Ok(Claimed {
                key,
                api_call_id: c.api_call_id,
                body_sha256: sha,
                resumed_at: chrono::DateTime::from_timestamp_millis(c.at_ms),
                seen: Seen::Unknown,
                wrote_pending: false,
            })
        }
        ClaimOutcome::Unconfirmed(c) => {
            metrics::counter!("xyz_claims_total", "result" => "conflict").increment(1);
            Err(conflict(&c.api_call_id, false))
        }
        ClaimOutcome::TakenOver(old) => {
            metrics::counter!("xyz_claims_total", "result" => "taken_over").increment(1);
            tracing::warn!(orphaned_call = %old.api_call_id, "took over a claim its ingress never confirmed");
            // Its claim wrote its PENDING status; it was never accepted, so it never was.
            if let Err(e) = state.cache.drop_status(&old.api_call_id).await {
                tracing::warn!(error = %e, orphaned_call = %old.api_call_id, "could not drop the orphaned call's status");
            }
            Ok(Claimed {
                key,
                api_call_id: ctx.api_call_id.clone(),
                body_sha256: sha,
                resumed_at: None,
                seen: Seen::Unknown,
                wrote_pending: pending.is_some(),
            })
        }
        ClaimOutcome::RateLimited(retry_after) => {
            Err(crate::rate::rate_limited(ctx.allowance(state), retry_after))
        }
        ClaimOutcome::Claimed(seen) => {
            metrics::counter!("xyz_claims_total", "result" => "claimed").increment(1);
            Ok(Claimed {
                key,
                api_call_id: ctx.api_call_id.clone(),
                body_sha256: sha,
                resumed_at: None,
                seen,
                wrote_pending: pending.is_some(),
            })
        }
    }
}

impl Claimed {
    /// Frees the id (the request failed with a 503): a retry with it is safe. The PENDING
    /// status the claim wrote goes with it.
    pub async fn release(&self, state: &AppState) {
        if let Err(e) = state
            .cache
            .release(&self.key, &self.api_call_id, self.wrote_pending)
            .await
        {
            tracing::warn!(error = %e, "claim release failed; it expires or is taken over");
        }
    }

    /// The publish may have reached the broker: a retry with the same body re-sends this call.
    pub async fn unconfirmed(&self, state: &AppState) {
        if let Err(e) = state
            .cache
            .mark_unconfirmed(&self.key, &self.api_call_id)
            .await
        {
            tracing::warn!(error = %e, "claim could not be marked unconfirmed; it expires or is taken over");
        }
    }

    /// The broker has the command: the claim is permanent, and with a record the call's
    /// PENDING status is written (unless a worker already wrote the final one).
    pub async fn accept(&self, state: &AppState, pending: Option<&StatusRecord>) {
        if let Err(e) = state
            .cache
            .mark_accepted(&self.key, &self.api_call_id, pending)
            .await
        {
            tracing::warn!(error = %e, "claim could not be marked accepted; MySQL still holds it");
        }
    }

    /// MySQL says another call owns the id (Redis had forgotten): remember that, answer 409.
    pub async fn conflict_with(
        &self,
        state: &AppState,
        original: &str,
        original_sha: &[u8; 32],
    ) -> ApiError {
        metrics::counter!("xyz_claims_total", "result" => "conflict_mysql").increment(1);
        if let Err(e) = state
            .cache
            .set_claim(
                &self.key,
                original,
                &hex::encode(original_sha),
                self.wrote_pending.then_some(self.api_call_id.as_str()),
            )
            .await
        {
            tracing::warn!(error = %e, "could not restore the claim in Redis");
        }
        conflict(original, *original_sha == self.body_sha256)
    }
}
