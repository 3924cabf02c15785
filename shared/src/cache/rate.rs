//! The keys' rate limits: GCRA in Redis, so every ingress replica spends from one allowance.

use super::{Cache, CacheError};
use std::time::Duration;

pub(super) const RATE_SCRIPT: &str = concat!(include_str!("gcra.lua"), include_str!("rate.lua"));

/// One request to spend from a key's rate allowance: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Allowance<'a> {
    pub client_id: &'a str,
    pub per_second: u32,
    pub burst: u32,
}

impl Allowance<'_> {
    pub(super) fn interval_us(&self) -> u64 {
        (1_000_000u64 / u64::from(self.per_second.max(1))).max(1)
    }

    pub(super) fn burst(&self) -> u32 {
        self.burst.max(1)
    }
}

pub(super) fn retry_after(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(1).max(1))
}

impl Cache {
    /// Spends `requests` requests of `client_id`'s allowance (`per_second` sustained,
    /// `burst` at once), all or none. `Some(retry_after)` when the key has not that many left.
    pub async fn rate_limit(
        &self,
        allowance: Allowance<'_>,
        requests: u32,
    ) -> Result<Option<Duration>, CacheError> {
        let mut c = self.conn.clone();
        let (allowed, retry_ms): (i64, i64) = self
            .scripts
            .rate
            .key(self.names.rate(allowance.client_id))
            .arg(allowance.interval_us())
            .arg(allowance.burst())
            .arg(requests.max(1))
            .invoke_async(&mut c)
            .await?;
        Ok((allowed == 0).then(|| retry_after(retry_ms)))
    }
}
