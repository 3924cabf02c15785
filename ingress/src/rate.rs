//! The per-key rate limit (SPEC §3: after the signature, before everything else): GCRA in
//! Redis, shared by every ingress. If Redis is down the limit fails open (availability over
//! throttling) and says so in the log and a metric.
//!
//! Two layers, one rule. Most routes spend the request before anything else runs
//! ([`first`]). A submission spends it inside its claim, in the same Redis call
//! ([`at_claim`]: one round trip per checkout instead of two); when it is refused before it
//! claims, the layer spends it afterwards and a 429 replaces the refusal, so the order of
//! checks seen from outside is the same.
//!
//! A key with a large allowance is not asked of Redis for every request: the first layer
//! takes [`TAKE`] requests at once and spends the rest from this process's memory ([`Held`])
//! within [`HOLD_FOR`]. Each script call costs Redis several times the reads and writes inside
//! it, and a merchant polling its calls' statuses made one per poll. The limit stays shared:
//! every request is taken from the one allowance in Redis before it is served, some of them
//! up to [`HOLD_FOR`] early, so a key exceeds its burst by at most `TAKE - 1` requests per
//! ingress process. Requests of one key that find nothing held ask Redis one at a time, each
//! first using what the one before it took, so that requests arriving together do not each
//! take ahead and lose what they cannot use. A key whose burst or rate is small is asked one
//! request at a time, and a key refused [`TAKE`] asks again for one before it is answered 429.

use crate::error::ApiError;
use crate::state::AppState;
use crate::verify::Signer;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::cache::Allowance;
use shared::db::keys::ActiveKey;
use shared::envelope::MessageAction;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests taken from a key's allowance in Redis at once, when the key's limits are large
/// enough ([`take_for`]).
pub(crate) const TAKE: u32 = 16;
/// How long requests taken ahead stay usable; those left over are lost to the key (they were
/// spent in Redis), at most `TAKE - 1` per key and process.
pub(crate) const HOLD_FOR: Duration = Duration::from_secs(1);

/// How long a request waits for its key's gate (another request of the key asking Redis)
/// before it asks Redis for itself: long enough for a saturated ingress's round trip (a
/// shorter wait let requests arriving together take ahead each, and lose what they took, on
/// a busy test machine), short of Redis's own response timeout (2 s), so an outage does not
/// queue a key's requests behind each other's timeouts.
const GATE_WAIT: Duration = Duration::from_secs(1);

/// How many requests to take from Redis at once for `allowance`: [`TAKE`] when that is at
/// most 1/64 of its burst and a quarter of a second of its rate, else one.
pub(crate) fn take_for(allowance: Allowance<'_>) -> u32 {
    if allowance.burst >= 64 * TAKE && allowance.per_second >= 4 * TAKE {
        TAKE
    } else {
        1
    }
}

/// Requests of each key's allowance that this process took from Redis and has not used yet.
#[derive(Default)]
pub struct Held(Mutex<HashMap<String, Stock>>);

struct Stock {
    left: u32,
    until: Instant,
    /// Held by the one request of this key that asks Redis for more while nothing is held.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Stock {
    fn new(now: Instant) -> Stock {
        Stock {
            left: 0,
            until: now,
            gate: Arc::default(),
        }
    }
}

impl Held {
    /// The gate through which `client_id`'s requests that find nothing held ask Redis, one at
    /// a time: each first looks again at what the one before it took. Without it, requests
    /// arriving together would each take ahead, and what they took and could not use within
    /// [`HOLD_FOR`] would be lost to the key (spent in Redis, never served).
    fn gate(&self, client_id: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut held = self.0.lock().ok()?;
        let stock = held
            .entry(client_id.to_owned())
            .or_insert_with(|| Stock::new(Instant::now()));
        Some(stock.gate.clone())
    }

    /// Uses one held request of `client_id`, if one is left and still usable at `now`.
    fn take_one(&self, client_id: &str, now: Instant) -> bool {
        let Ok(mut held) = self.0.lock() else {
            return false;
        };
        match held.get_mut(client_id) {
            Some(stock) if stock.left > 0 && now < stock.until => {
                stock.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Keeps `requests` just taken from Redis at `now` for `client_id`'s next requests.
    fn put(&self, client_id: &str, requests: u32, now: Instant) {
        let Ok(mut held) = self.0.lock() else {
            return;
        };
        let stock = held
            .entry(client_id.to_owned())
            .or_insert_with(|| Stock::new(now));
        if now >= stock.until {
            stock.left = 0;
        }
        stock.left += requests;
        stock.until = now + HOLD_FOR;
    }
}

/// A rate limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Set on a submission's request: the claim takes it and spends the request.
#[derive(Clone, Default)]
pub(crate) struct DeferredRate(Arc<AtomicBool>);

impl DeferredRate {
    /// True the first time: the caller spends the request now.
    pub fn take(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }
}

/// What a request of `key` spends.
pub(crate) fn allowance<'a>(state: &AppState, key: &'a ActiveKey) -> Allowance<'a> {
    Allowance {
        client_id: &key.client_id,
        per_second: key.rate_per_second.unwrap_or(state.rate_limit.per_second),
        burst: key.rate_burst.unwrap_or(state.rate_limit.burst),
    }
}

async fn spend(state: &AppState, key: &ActiveKey) -> Result<(), ApiError> {
    let allowance = allowance(state, key);
    let take = take_for(allowance);
    if take > 1 && state.held.take_one(allowance.client_id, Instant::now()) {
        return Ok(());
    }
    let gate = (take > 1)
        .then(|| state.held.gate(allowance.client_id))
        .flatten();
    // Held until this returns (or the request is cancelled while it waits). A request that
    // cannot have the gate within GATE_WAIT (Redis slow or down behind it) takes ahead for
    // itself, as before the gate; asking for one request there instead multiplied the
    // script calls of a saturated ingress.
    let turn = match &gate {
        Some(gate) => tokio::time::timeout(GATE_WAIT, gate.lock()).await.ok(),
        None => None,
    };
    if turn.is_some() && state.held.take_one(allowance.client_id, Instant::now()) {
        return Ok(());
    }
    let mut answer = state.cache.rate_limit(allowance, take).await;
    if take > 1 {
        match answer {
            Ok(None) => state
                .held
                .put(allowance.client_id, take - 1, Instant::now()),
            // Near the limit: one request may still be there.
            Ok(Some(_)) => answer = state.cache.rate_limit(allowance, 1).await,
            Err(_) => {}
        }
    }
    match answer {
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
pub(crate) fn rate_limited(allowance: Allowance<'_>, retry_after: std::time::Duration) -> ApiError {
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

/// Middleware: spends the request before the route runs.
pub(crate) async fn first(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(Signer(key)) = req.extensions().get::<Signer>().cloned()
        && let Err(e) = spend(&state, &key).await
    {
        return e.into_response();
    }
    next.run(req).await
}

/// Middleware for submissions: their claim spends the request; one refused before it claims
/// spends it here, afterwards.
pub(crate) async fn at_claim(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(Signer(key)) = req.extensions().get::<Signer>().cloned() else {
        return next.run(req).await;
    };
    let deferred = DeferredRate::default();
    req.extensions_mut().insert(deferred.clone());
    let response = next.run(req).await;
    if deferred.take()
        && let Err(e) = spend(&state, &key).await
    {
        return e.into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance(per_second: u32, burst: u32) -> Allowance<'static> {
        Allowance {
            client_id: "k",
            per_second,
            burst,
        }
    }

    #[test]
    fn only_large_allowances_are_taken_ahead() {
        assert_eq!(take_for(allowance(1000, 60_000)), TAKE);
        assert_eq!(take_for(allowance(64, 1024)), TAKE);
        // A small burst or a slow rate is asked of Redis one request at a time, so its 429
        // comes exactly where the limit says.
        assert_eq!(take_for(allowance(1000, 1023)), 1);
        assert_eq!(take_for(allowance(63, 60_000)), 1);
        assert_eq!(take_for(allowance(5, 5)), 1);
    }

    #[tokio::test]
    async fn requests_of_a_key_that_find_nothing_held_ask_redis_one_at_a_time() {
        let held = Held::default();
        let gate = held.gate("k").expect("gate");
        let turn = gate.lock().await;
        let same = held.gate("k").expect("gate");
        assert!(
            same.try_lock().is_err(),
            "a second request of the key waits for the first's take"
        );
        let other = held.gate("other").expect("gate");
        assert!(other.try_lock().is_ok(), "another key asks on its own");
        // What the first took is there for the second once the gate opens.
        held.put("k", TAKE - 1, Instant::now());
        drop(turn);
        let _second = same.try_lock().expect("open");
        assert!(held.take_one("k", Instant::now()));
    }

    #[test]
    fn held_requests_are_used_once_each_and_only_while_fresh() {
        let held = Held::default();
        let t0 = Instant::now();
        assert!(!held.take_one("k", t0), "nothing is held at first");
        held.put("k", 2, t0);
        assert!(held.take_one("k", t0));
        assert!(!held.take_one("other", t0), "held for one key only");
        assert!(held.take_one("k", t0 + Duration::from_millis(500)));
        assert!(!held.take_one("k", t0), "both used");
        // Taken again: what is left of an earlier take is added while it is fresh...
        held.put("k", 3, t0);
        held.put("k", 3, t0 + Duration::from_millis(10));
        for _ in 0..6 {
            assert!(held.take_one("k", t0 + Duration::from_millis(20)));
        }
        assert!(!held.take_one("k", t0 + Duration::from_millis(20)));
        // ...and dropped once stale: held requests never pile up past HOLD_FOR.
        held.put("k", 3, t0);
        assert!(!held.take_one("k", t0 + HOLD_FOR));
        held.put("k", 1, t0 + HOLD_FOR);
        assert!(held.take_one("k", t0 + HOLD_FOR));
        assert!(
            !held.take_one("k", t0 + HOLD_FOR),
            "the stale three were dropped"
        );
    }
}
