//! External-id claims: the first request with an id takes it in Redis before it is published,
//! so a duplicate is answered without MySQL. A claim goes `publishing` → `accepted` (the
//! broker confirmed), or `unconfirmed` (the confirm was lost), or is released.

use super::rate::{Allowance, retry_after};
use super::seen::{SEEN_HASHES, Seen};
use super::statuses::{STATUS_TTL_SECS, StatusRecord};
use super::{Cache, CacheError};
use redis::AsyncCommands;

/// How long a claim and a cached status live: at least 24 hours (SPEC §7).
pub(crate) const CLAIM_TTL_SECS: u64 = 86_400;
/// A claim still `publishing` after this long belongs to an ingress that died.
pub(crate) const CLAIM_TAKEOVER_GRACE_MS: u64 = 30_000;

/// Takes a free id, or takes over an orphaned one, with the optional rate limit and PENDING
/// status in the same round trip (the script says how).
pub(super) const CLAIM_SCRIPT: &str = concat!(include_str!("gcra.lua"), include_str!("claim.lua"));
/// Moves a claim to `accepted` or `unconfirmed` if it is still its call's.
pub(super) const MARK_SCRIPT: &str = include_str!("mark.lua");
/// Moves a batch of claims to `accepted`, each if it is still its call's.
pub(super) const MARK_MANY_SCRIPT: &str = include_str!("mark_many.lua");
pub(super) const RELEASE_SCRIPT: &str = include_str!("release.lua");

/// The states a confirm (or its loss) moves a claim to.
const ACCEPTED: &str = "accepted";
const UNCONFIRMED: &str = "unconfirmed";

/// What the claim key holds: `state|api_call_id|body_sha256|claimed_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub state: String,
    pub api_call_id: String,
    pub body_sha256: String,
    /// When the claim was first taken (unix ms; 0 when unknown).
    pub at_ms: i64,
}

impl Claim {
    fn parse(raw: &str) -> Option<Claim> {
        let mut parts = raw.splitn(4, '|');
        Some(Claim {
            state: parts.next()?.to_owned(),
            api_call_id: parts.next()?.to_owned(),
            body_sha256: parts.next()?.to_owned(),
            at_ms: parts.next().and_then(|a| a.parse().ok()).unwrap_or(0),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The id was free in Redis and is now ours; the filter tells whether MySQL can hold it.
    Claimed(Seen),
    /// The id was held by an ingress that died before the broker confirmed; now ours.
    TakenOver(Claim),
    /// The id is used.
    Taken(Claim),
    /// A publish of this call may or may not have reached the broker (its confirm was lost):
    /// a retry re-sends the same call, so a duplicate delivery is recognised as such.
    Unconfirmed(Claim),
    /// The key spending the request is over its rate limit: nothing was claimed; retry after
    /// this long.
    RateLimited(std::time::Duration),
}

impl Cache {
    /// Claims `key` for `api_call_id` (`SET NX EX` in a script that also takes over claims
    /// orphaned by a dead ingress). With an allowance, the request is first spent from the
    /// key's rate limit in the same script, and nothing is claimed when it is over.
    pub async fn claim(
        &self,
        key: &str,
        seen: &[u64; SEEN_HASHES],
        api_call_id: &str,
        body_sha256: &str,
        allowance: Option<Allowance<'_>>,
        pending: Option<&StatusRecord>,
    ) -> Result<ClaimOutcome, CacheError> {
        let mut c = self.conn.clone();
        let mut invocation = self.scripts.claim.key(key);
        invocation
            .key(self.names.seen())
            .arg(api_call_id)
            .arg(body_sha256)
            .arg(CLAIM_TTL_SECS)
            .arg(CLAIM_TAKEOVER_GRACE_MS)
            .arg(SEEN_HASHES)
            .arg(&seen[..]);
        if let Some(a) = allowance {
            invocation
                .key(self.names.rate(a.client_id))
                .arg("rate")
                .arg(a.interval_us())
                .arg(a.burst());
        }
        if let Some(record) = pending {
            invocation
                .key(self.names.status(&record.status.api_call_id))
                .arg("status")
                .arg(serde_json::to_string(record).unwrap_or_default())
                .arg(STATUS_TTL_SECS);
        }
        let (code, cur): (i64, String) = invocation.invoke_async(&mut c).await?;
        if code == 4 {
            return Ok(ClaimOutcome::RateLimited(retry_after(
                cur.parse().unwrap_or(1),
            )));
        }
        let existing = Claim::parse(&cur);
        Ok(match (code, existing) {
            (1, _) => ClaimOutcome::Claimed(match cur.as_str() {
                "new" => Seen::New,
                "maybe" => Seen::Maybe,
                _ => Seen::Unknown,
            }),
            (2, Some(old)) => ClaimOutcome::TakenOver(old),
            (2, None) => ClaimOutcome::Claimed(Seen::Unknown),
            (3, Some(old)) => ClaimOutcome::Unconfirmed(old),
            (_, Some(old)) => ClaimOutcome::Taken(old),
            // An unparseable value is someone else's; treat the id as used by an unknown call.
            (_, None) => ClaimOutcome::Taken(Claim {
                state: "accepted".into(),
                api_call_id: String::new(),
                body_sha256: String::new(),
                at_ms: 0,
            }),
        })
    }

    /// The claim on `key` as Redis holds it, whatever its state.
    pub async fn get_claim(&self, key: &str) -> Result<Option<Claim>, CacheError> {
        let mut c = self.conn.clone();
        let raw: Option<String> = c.get(key).await?;
        Ok(raw.as_deref().and_then(Claim::parse))
    }

    /// The broker confirmed: the claim is permanent (for its TTL). With a record, its
    /// PENDING status is written in the same round trip unless a worker already wrote the
    /// final one.
    pub async fn mark_accepted(
        &self,
        key: &str,
        api_call_id: &str,
        pending: Option<&StatusRecord>,
    ) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let mut invocation = self.scripts.mark.key(key);
        invocation.arg(api_call_id).arg(ACCEPTED);
        if let Some(record) = pending {
            invocation
                .key(self.names.status(&record.status.api_call_id))
                .arg(serde_json::to_string(record).unwrap_or_default())
                .arg(STATUS_TTL_SECS);
        }
        let _: i64 = invocation.invoke_async(&mut c).await?;
        Ok(())
    }

    /// Marks several claims (key, call) accepted in one script call, each only if it is
    /// still its call's. One call for the batch, not one per claim: a script call's own cost
    /// in Redis is several times that of the reads and writes inside it.
    pub async fn mark_accepted_many(&self, claims: &[(String, String)]) -> Result<(), CacheError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.mark_many.prepare_invoke();
        for (key, call) in claims {
            invocation.key(key.as_str()).arg(call.as_str());
        }
        let mut c = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut c).await?;
        Ok(())
    }

    /// The publish's confirm was lost: keep the id for this call, to be re-sent by a retry.
    pub async fn mark_unconfirmed(&self, key: &str, api_call_id: &str) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .scripts
            .mark
            .key(key)
            .arg(api_call_id)
            .arg(UNCONFIRMED)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Compare-and-delete: frees the id only if it is still ours, and with it the PENDING
    /// status its claim wrote (`drop_status`).
    pub async fn release(
        &self,
        key: &str,
        api_call_id: &str,
        drop_status: bool,
    ) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let mut invocation = self.scripts.release.key(key);
        invocation.arg(api_call_id);
        if drop_status {
            invocation.key(self.names.status(api_call_id));
        }
        let _: i64 = invocation.invoke_async(&mut c).await?;
        Ok(())
    }

    /// Points the claim at the call MySQL says owns the id (after Redis forgot it), dropping
    /// the PENDING status the losing call's claim wrote (`dropped_call`).
    pub async fn set_claim(
        &self,
        key: &str,
        original_api_call_id: &str,
        body_sha256: &str,
        dropped_call: Option<&str>,
    ) -> Result<(), CacheError> {
        let value = format!("accepted|{original_api_call_id}|{body_sha256}|0");
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(CLAIM_TTL_SECS)
            .ignore();
        if let Some(call) = dropped_call {
            pipe.cmd("DEL").arg(self.names.status(call)).ignore();
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
        Ok(())
    }
}
