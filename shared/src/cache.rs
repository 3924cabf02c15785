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
    /// Named once: every claim and every worker batch uses it.
    seen: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            seen: format!("{prefix}:seen"),
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

    /// The filter of every external id ever claimed (see [`seen_positions`]).
    pub fn seen(&self) -> &str {
        &self.seen
    }

    /// Held by the ingress rebuilding the filter.
    pub fn seen_rebuild(&self) -> String {
        format!("{}:seen:rebuild", self.prefix)
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
    RateLimited(Duration),
}

/// What the filter of claimed ids says of a newly claimed id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never claimed before: no MySQL row can hold it (the filter has no false negatives).
    New,
    /// Maybe claimed before (or a false positive): MySQL decides.
    Maybe,
    /// The filter is not complete (Redis lost it; being rebuilt): MySQL decides.
    Unknown,
}

/// Default bits of the filter of claimed external ids: 16 MiB of Redis, a 1 % false-positive
/// rate up to ~14 million ids (more ids only make MySQL lookups more frequent, never wrong).
pub const SEEN_BITS: u64 = 1 << 27;
/// Bits set per id.
pub const SEEN_HASHES: usize = 7;

/// The bits of (merchant, endpoint, external id) in a filter of `bits` bits: a Bloom filter
/// of every external id ever claimed, in one Redis bitmap whose bit 0 says the filter is
/// complete (every id in MySQL has its bits set). One key, so whatever loses the bits loses
/// the mark with them.
pub fn seen_positions(
    bits: u64,
    merchant: &str,
    endpoint: &str,
    external_id: &str,
) -> [u64; SEEN_HASHES] {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in [merchant, endpoint, external_id] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut positions = [0u64; SEEN_HASHES];
    for (p, word) in positions.iter_mut().zip(digest.chunks_exact(4)) {
        let w = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        *p = 1 + u64::from(w) % (bits.max(2) - 1);
    }
    positions
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

/// Claims KEYS[1]. After the ARGV[5] filter positions (ARGV[6..]) come optional parts, each
/// named by its first ARGV and with the next KEYS: `rate` (a rate key; interval in µs, burst)
/// spends one request of the key's allowance first and claims nothing when over it
/// (`{4, retry_after_ms}`): the rate limit and the claim in one round trip; `status` (a
/// status key; value, TTL in seconds) is the new call's PENDING status, written with the
/// claim, so the call reads PENDING from the moment its 202 can exist.
/// A free id is claimed and its positions set in the filter KEYS[2]; `{1, verdict}` says
/// whether the filter was complete and proved the id new (a bit was clear).
const CLAIM_SCRIPT: &str = concat!(
    gcra_lua!(),
    r"
local n = tonumber(ARGV[5])
local k, a = 3, 6 + n
if ARGV[a] == 'rate' then
  local wait = gcra(KEYS[k], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]))
  if wait then return {4, tostring(wait)} end
  k, a = k + 1, a + 3
end
local function pending()
  if ARGV[a] == 'status' then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'NX', 'EX', ARGV[a + 2])
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = 'publishing|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. now
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  pending()
  local clear = false
  for i = 6, 5 + n do
    if redis.call('SETBIT', KEYS[2], ARGV[i], 1) == 0 then clear = true end
  end
  if redis.call('GETBIT', KEYS[2], 0) == 0 then return {1, 'unknown'} end
  if clear then return {1, 'new'} end
  return {1, 'maybe'}
end
local state, at = string.match(cur, '^(%a+)|[^|]*|[^|]*|(%d+)$')
if state == 'unconfirmed' then
  return {3, cur}
end
if state == 'publishing' and at and tonumber(at) + tonumber(ARGV[4]) < now then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  pending()
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

/// Marks the filter KEYS[1] complete and frees the rebuild lock KEYS[2], if ARGV[1] holds it.
const COMPLETE_SEEN_SCRIPT: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SETBIT', KEYS[1], 0, 1)
redis.call('DEL', KEYS[2])
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

/// Frees the claim KEYS[1] if it is still ARGV[1]'s, and drops the PENDING status KEYS[2]
/// its claim wrote, when given.
const RELEASE_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local call = string.match(cur, '^%a+|([^|]*)|')
if call ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('DEL', KEYS[2]) end
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
    complete_seen: std::sync::Arc<redis::Script>,
    seen_bits: u64,
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
            complete_seen: std::sync::Arc::new(redis::Script::new(COMPLETE_SEEN_SCRIPT)),
            seen_bits: SEEN_BITS,
        }
    }

    /// The cache as a deployment's processes use it: its key prefix and its filter size,
    /// which every ingress and worker must share.
    pub fn for_deployment(conn: ConnectionManager, config: &crate::config::RedisConfig) -> Cache {
        Cache::new(conn, &config.prefix).with_seen_bits(config.seen_filter_bits)
    }

    /// The size of the filter of claimed ids (`REDIS_SEEN_FILTER_BITS`).
    pub fn with_seen_bits(mut self, bits: u64) -> Cache {
        self.seen_bits = bits;
        self
    }

    /// [`seen_positions`] in this deployment's filter.
    pub fn seen_positions(
        &self,
        merchant: &str,
        endpoint: &str,
        external_id: &str,
    ) -> [u64; SEEN_HASHES] {
        seen_positions(self.seen_bits, merchant, endpoint, external_id)
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
        seen: &[u64; SEEN_HASHES],
        api_call_id: &str,
        body_sha256: &str,
        allowance: Option<Allowance<'_>>,
        pending: Option<&StatusRecord>,
    ) -> Result<ClaimOutcome, CacheError> {
        let mut c = self.conn.clone();
        let mut invocation = self.claim.key(key);
        invocation
            .key(self.keys.seen())
            .arg(api_call_id)
            .arg(body_sha256)
            .arg(CLAIM_TTL_SECS)
            .arg(CLAIM_TAKEOVER_GRACE_MS)
            .arg(SEEN_HASHES)
            .arg(&seen[..]);
        if let Some(a) = allowance {
            invocation
                .key(self.keys.rate(a.client_id))
                .arg("rate")
                .arg(a.interval_us())
                .arg(a.burst());
        }
        if let Some(record) = pending {
            invocation
                .key(self.keys.status(&record.status.api_call_id))
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

    /// Marks several claims (key, call) accepted in one round trip, each only if it is still
    /// its call's.
    pub async fn mark_accepted_many(&self, claims: &[(String, String)]) -> Result<(), CacheError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        // Loaded with every batch, so a Redis that lost its scripts (a restart) costs nothing.
        pipe.load_script(&self.accept).ignore();
        for (key, call) in claims {
            let mut invocation = self.accept.key(key.as_str());
            invocation.arg(call.as_str());
            pipe.invoke_script(&invocation).ignore();
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
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

    /// Compare-and-delete: frees the id only if it is still ours, and with it the PENDING
    /// status its claim wrote (`drop_status`).
    pub async fn release(
        &self,
        key: &str,
        api_call_id: &str,
        drop_status: bool,
    ) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let mut invocation = self.release.key(key);
        invocation.arg(api_call_id);
        if drop_status {
            invocation.key(self.keys.status(api_call_id));
        }
        let _: i64 = invocation.invoke_async(&mut c).await?;
        Ok(())
    }

    /// Drops a call's status (the PENDING status of a claim taken over: its call was never
    /// accepted).
    pub async fn drop_status(&self, api_call_id: &str) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = c.del(self.keys.status(api_call_id)).await?;
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
            pipe.cmd("DEL").arg(self.keys.status(call)).ignore();
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
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

    /// Sets the filter bits of ids about to be written to MySQL (one pipeline). A worker
    /// does it before each batch: a command claimed before Redis lost the filter has its
    /// bits again before its row can exist (the claim set them the first time).
    pub async fn mark_seen(&self, positions: &[[u64; SEEN_HASHES]]) -> Result<(), CacheError> {
        if positions.is_empty() {
            return Ok(());
        }
        let key = self.keys.seen();
        let mut pipe = redis::pipe();
        for p in positions.iter().flatten() {
            pipe.cmd("SETBIT").arg(key).arg(*p).arg(1).ignore();
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// Whether the filter is complete (bit 0).
    pub async fn seen_complete(&self) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let bit: i64 = redis::cmd("GETBIT")
            .arg(self.keys.seen())
            .arg(0)
            .query_async(&mut c)
            .await?;
        Ok(bit == 1)
    }

    /// Ends a rebuild: marks the filter complete and frees the lock, if `holder` still
    /// holds it (a Redis that lost the filter during the rebuild lost the lock too).
    pub async fn complete_seen(&self, holder: &str) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let done: i64 = self
            .complete_seen
            .key(self.keys.seen())
            .key(self.keys.seen_rebuild())
            .arg(holder)
            .invoke_async(&mut c)
            .await?;
        Ok(done == 1)
    }

    /// Takes the rebuild lock for `ttl` if nobody holds it.
    pub async fn lock_seen_rebuild(&self, holder: &str, ttl: Duration) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.keys.seen_rebuild())
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(taken.is_some())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_positions_are_stable_in_range_and_never_the_completeness_bit() {
        let a = seen_positions(1 << 16, "m1", "transaction", "ORDER-1");
        assert_eq!(a, seen_positions(1 << 16, "m1", "transaction", "ORDER-1"));
        assert!(a.iter().all(|p| (1..1 << 16).contains(p)), "{a:?}");
        // Each part of the id counts, and where one part ends and the next begins too.
        for other in [
            seen_positions(1 << 16, "m2", "transaction", "ORDER-1"),
            seen_positions(1 << 16, "m1", "payment", "ORDER-1"),
            seen_positions(1 << 16, "m1", "transaction", "ORDER-2"),
            seen_positions(1 << 16, "m1t", "ransaction", "ORDER-1"),
        ] {
            assert_ne!(a, other);
        }
        let big = seen_positions(SEEN_BITS, "m1", "transaction", "ORDER-1");
        assert!(big.iter().all(|p| (1..SEEN_BITS).contains(p)), "{big:?}");
    }
}
