//! Redis, the fast path: external-id claims, the keys' rate limits, the status cache with the
//! `Prefer: wait` replies, and the filter of claimed ids. MySQL is the source of truth; losing
//! all of Redis costs speed, never correctness.
//!
//! One module per concern, each with the `Cache` operations it owns; the Lua scripts that
//! must decide and write in one round trip sit beside them as `.lua` files.

mod claims;
mod key_changes;
mod names;
mod rate;
mod replays;
mod seen;
mod statuses;

pub use claims::{Claim, ClaimOutcome};
pub use names::RedisNames;
pub use rate::Allowance;
pub(crate) use seen::SEEN_BITS;
pub use seen::{SEEN_HASHES, Seen, seen_positions};
pub use statuses::StatusRecord;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::Duration;

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

/// Redis operations of the engine, over one shared connection manager.
#[derive(Clone)]
pub struct Cache {
    conn: ConnectionManager,
    pub names: RedisNames,
    scripts: Arc<Scripts>,
    seen_bits: u64,
}

/// The Lua scripts, hashed once per process.
struct Scripts {
    claim: redis::Script,
    mark: redis::Script,
    mark_many: redis::Script,
    release: redis::Script,
    rate: redis::Script,
    complete_seen: redis::Script,
}

impl Cache {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Cache {
        Cache {
            conn,
            names: RedisNames::new(prefix),
            scripts: Arc::new(Scripts {
                claim: redis::Script::new(claims::CLAIM_SCRIPT),
                mark: redis::Script::new(claims::MARK_SCRIPT),
                mark_many: redis::Script::new(claims::MARK_MANY_SCRIPT),
                release: redis::Script::new(claims::RELEASE_SCRIPT),
                rate: redis::Script::new(rate::RATE_SCRIPT),
                complete_seen: redis::Script::new(seen::COMPLETE_SEEN_SCRIPT),
            }),
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

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}
