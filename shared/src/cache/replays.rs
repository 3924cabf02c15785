//! Signed writes that carry no external id (`PATCH`, `PUT`, `DELETE`) are claimed by their
//! signature: the same signed request sent again within the signature's window is a replay.
//! A `POST` needs none of this: its external id is claimed (`claims`).

use super::{Cache, CacheError};

/// How long a signature is remembered: the timestamp window is ±300 s around the server
/// clock, so a signature stays usable for at most 600 s.
pub(crate) const REPLAY_WINDOW_SECS: u64 = 600;

impl Cache {
    /// Claims a signed request for `api_call_id`. `None` when this is its first arrival;
    /// otherwise the call that first used the signature.
    pub async fn claim_signature(
        &self,
        client_id: &str,
        signature: &str,
        api_call_id: &str,
    ) -> Result<Option<String>, CacheError> {
        let mut c = self.conn.clone();
        // SET … NX GET (Redis 7): sets only a new key, and answers an existing key's value.
        let earlier: Option<String> = redis::cmd("SET")
            .arg(self.names.signature(client_id, signature))
            .arg(api_call_id)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(REPLAY_WINDOW_SECS)
            .query_async(&mut c)
            .await?;
        Ok(earlier)
    }

    /// Forgets a signature whose request failed before any effect (a 503): the same signed
    /// request may be sent again.
    pub async fn release_signature(
        &self,
        client_id: &str,
        signature: &str,
    ) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.names.signature(client_id, signature))
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}
