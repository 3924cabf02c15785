//! Redis, the fast path: external-id claims, the status cache, and `Prefer: wait` replies.
//! MySQL is the source of truth; losing all of Redis costs speed, never correctness.

use crate::status::CallStatus;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a claim and a cached status live: at least 24 hours (SPEC §7).
pub const CLAIM_TTL_SECS: u64 = 86_400;
pub const STATUS_TTL_SECS: u64 = 86_400;
/// A claim still `publishing` after this long belongs to an ingress that died.
pub const CLAIM_TAKEOVER_GRACE_MS: u64 = 30_000;

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct CacheError(#[from] redis::RedisError);

/// A connection manager that reconnects by itself, with bounded timeouts so a frozen Redis
/// turns into a 503 rather than a hung request.
pub fn connect(url: &str) -> Result<ConnectionManager, CacheError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn claim(&self, merchant: &str, endpoint: &str, external_id: &str) -> String {
        format!("{}:idem:{merchant}:{endpoint}:{external_id}", self.prefix)
    }

    pub fn status(&self, api_call_id: &str) -> String {
        format!("{}:status:{api_call_id}", self.prefix)
    }

    pub fn reply_channel(&self, ingress_id: &str) -> String {
        format!("{}:reply:{ingress_id}", self.prefix)
    }

    pub fn rate(&self, client_id: &str) -> String {
        format!("{}:rate:{client_id}", self.prefix)
    }
}

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
    /// The id was free and is now ours.
    Claimed,
    /// The id was held by an ingress that died before the broker confirmed; now ours.
    TakenOver(Claim),
    /// The id is used.
    Taken(Claim),
    /// A publish of this call may or may not have reached the broker (its confirm was lost):
    /// a retry re-sends the same call, so a duplicate delivery is recognised as such.
    Unconfirmed(Claim),
    /// The key spending the request is over its rate limit: nothing was claimed; retry after
    /// this long.
    RateLimited(Duration),
}

/// One request to spend from a key's rate allowance: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Allowance<'a> {
    pub client_id: &'a str,
    pub per_second: u32,
    pub burst: u32,
}

impl Allowance<'_> {
    fn interval_us(&self) -> u64 {
        (1_000_000u64 / u64::from(self.per_second.max(1))).max(1)
    }

    fn burst(&self) -> u32 {
        self.burst.max(1)
    }
}

fn retry_after(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(1).max(1))
}

/// GCRA in Lua, shared by the scripts that spend a request of a key's allowance: returns nil
/// when allowed (and records it), else the milliseconds to wait.
macro_rules! gcra_lua {
    () => {
        r"
local function gcra(key, interval, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tolerance = interval * burst
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > tolerance then
    return math.ceil((new_tat - tolerance - now) / 1000)
  end
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil(tolerance / 1000) + 1000)
  return nil
end
"
    };
}

/// Claims KEYS[1]; when KEYS[2] (a rate key) is given, first spends one request of its
/// allowance (ARGV[5] interval in µs, ARGV[6] burst) and claims nothing when over it
/// (`{4, retry_after_ms}`): the rate limit and the claim in one round trip.
const CLAIM_SCRIPT: &str = concat!(
    gcra_lua!(),
    r"
if KEYS[2] then
  local wait = gcra(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]))
  if wait then return {4, tostring(wait)} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = 'publishing|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. now
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  return {1, ''}
end
local state, at = string.match(cur, '^(%a+)|[^|]*|[^|]*|(%d+)$')
if state == 'unconfirmed' then
  return {3, cur}
end
if state == 'publishing' and at and tonumber(at) + tonumber(ARGV[4]) < now then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  return {2, cur}
end
return {0, cur}
"
);

/// Marks the claim KEYS[1] accepted if it is still ARGV[1]'s; when KEYS[2] (a status key) is
/// given, also writes the PENDING status ARGV[2] for ARGV[3] seconds unless a status exists.
const ACCEPT_SCRIPT: &str = r"
if KEYS[2] then
  redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3])
end
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local state, call, rest = string.match(cur, '^(%a+)|([^|]*)|(.*)$')
if call ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'accepted|' .. call .. '|' .. rest, 'KEEPTTL')
return 1
";

const UNCONFIRM_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local state, call, rest = string.match(cur, '^(%a+)|([^|]*)|(.*)$')
if call ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'unconfirmed|' .. call .. '|' .. rest, 'KEEPTTL')
return 1
";

const RELEASE_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local call = string.match(cur, '^%a+|([^|]*)|')
if call ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// GCRA: one script call decides and records, so every ingress replica shares one limit.
/// Returns {1, 0} when allowed, {0, retry_after_ms} when not.
const RATE_SCRIPT: &str = concat!(
    gcra_lua!(),
    r"
local wait = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait then return {0, wait} end
return {1, 0}
"
);

/// Redis operations of the engine, over one shared connection manager.
#[derive(Clone)]
pub struct Cache {
    conn: ConnectionManager,
    pub keys: Keys,
    claim: std::sync::Arc<redis::Script>,
    accept: std::sync::Arc<redis::Script>,
    release: std::sync::Arc<redis::Script>,
    rate: std::sync::Arc<redis::Script>,
    unconfirm: std::sync::Arc<redis::Script>,
}

impl Cache {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Cache {
        Cache {
            conn,
            keys: Keys::new(prefix),
            claim: std::sync::Arc::new(redis::Script::new(CLAIM_SCRIPT)),
            accept: std::sync::Arc::new(redis::Script::new(ACCEPT_SCRIPT)),
            release: std::sync::Arc::new(redis::Script::new(RELEASE_SCRIPT)),
            rate: std::sync::Arc::new(redis::Script::new(RATE_SCRIPT)),
            unconfirm: std::sync::Arc::new(redis::Script::new(UNCONFIRM_SCRIPT)),
        }
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// Claims `key` for `api_call_id` (`SET NX EX` in a script that also takes over claims
    /// orphaned by a dead ingress). With an allowance, the request is first spent from the
    /// key's rate limit in the same script, and nothing is claimed when it is over.
    pub async fn claim(
        &self,
        key: &str,
        api_call_id: &str,
        body_sha256: &str,
        allowance: Option<Allowance<'_>>,
    ) -> Result<ClaimOutcome, CacheError> {
        let mut c = self.conn.clone();
        let mut invocation = self.claim.key(key);
        invocation
            .arg(api_call_id)
            .arg(body_sha256)
            .arg(CLAIM_TTL_SECS)
            .arg(CLAIM_TAKEOVER_GRACE_MS);
        if let Some(a) = allowance {
            invocation
                .key(self.keys.rate(a.client_id))
                .arg(a.interval_us())
                .arg(a.burst());
        }
        let (code, cur): (i64, String) = invocation.invoke_async(&mut c).await?;
        if code == 4 {
            return Ok(ClaimOutcome::RateLimited(retry_after(
                cur.parse().unwrap_or(1),
            )));
        }
        let existing = Claim::parse(&cur);
        Ok(match (code, existing) {
            (1, _) => ClaimOutcome::Claimed,
            (2, Some(old)) => ClaimOutcome::TakenOver(old),
            (2, None) => ClaimOutcome::Claimed,
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
        let mut invocation = self.accept.key(key);
        invocation.arg(api_call_id);
        if let Some(record) = pending {
            invocation
                .key(self.keys.status(&record.status.api_call_id))
                .arg(serde_json::to_string(record).unwrap_or_default())
                .arg(STATUS_TTL_SECS);
        }
        let _: i64 = invocation.invoke_async(&mut c).await?;
        Ok(())
    }

    /// The publish's confirm was lost: keep the id for this call, to be re-sent by a retry.
    pub async fn mark_unconfirmed(&self, key: &str, api_call_id: &str) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .unconfirm
            .key(key)
            .arg(api_call_id)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Compare-and-delete: frees the id only if it is still ours.
    pub async fn release(&self, key: &str, api_call_id: &str) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .release
            .key(key)
            .arg(api_call_id)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Points the claim at the call MySQL says owns the id (after Redis forgot it).
    pub async fn set_claim(
        &self,
        key: &str,
        original_api_call_id: &str,
        body_sha256: &str,
    ) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let value = format!("accepted|{original_api_call_id}|{body_sha256}|0");
        let _: () = c.set_ex(key, value, CLAIM_TTL_SECS).await?;
        Ok(())
    }

    /// Spends one request of `client_id`'s allowance (`per_second` sustained, `burst` at
    /// once). `Some(retry_after)` when the key is over its limit.
    pub async fn rate_limit(
        &self,
        allowance: Allowance<'_>,
    ) -> Result<Option<Duration>, CacheError> {
        let mut c = self.conn.clone();
        let (allowed, retry_ms): (i64, i64) = self
            .rate
            .key(self.keys.rate(allowance.client_id))
            .arg(allowance.interval_us())
            .arg(allowance.burst())
            .invoke_async(&mut c)
            .await?;
        Ok((allowed == 0).then(|| retry_after(retry_ms)))
    }

    pub async fn get_status(&self, api_call_id: &str) -> Result<Option<StatusRecord>, CacheError> {
        let mut c = self.conn.clone();
        let raw: Option<String> = c.get(self.keys.status(api_call_id)).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Final statuses (one pipeline) and the replies to waiting ingresses.
    pub async fn publish_final(
        &self,
        records: &[(StatusRecord, Option<String>)],
    ) -> Result<(), CacheError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (record, reply_to) in records {
            let json = serde_json::to_string(record).unwrap_or_default();
            pipe.cmd("SET")
                .arg(self.keys.status(&record.status.api_call_id))
                .arg(&json)
                .arg("EX")
                .arg(STATUS_TTL_SECS)
                .ignore();
            if let Some(channel) = reply_to {
                pipe.cmd("PUBLISH").arg(channel).arg(&json).ignore();
            }
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
        Ok(())
    }
}

/// A status as cached: the owner (for the ownership check) and the status object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusRecord {
    pub merchant_id: String,
    pub status: CallStatus,
}
