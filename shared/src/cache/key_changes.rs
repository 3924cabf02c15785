//! Announcements of changed API keys: `xyzctl keys …` publishes one after each change, and
//! every ingress reloads its keys when it hears it (a revocation lands at once rather than
//! at the next periodic reload).

use super::{Cache, CacheError};

impl Cache {
    /// Tells every ingress that the API key `client_id` changed. Returns how many listened.
    pub async fn announce_key_change(&self, client_id: &str) -> Result<u64, CacheError> {
        let mut c = self.conn.clone();
        let listeners: u64 = redis::cmd("PUBLISH")
            .arg(self.names.key_changes())
            .arg(client_id)
            .query_async(&mut c)
            .await?;
        Ok(listeners)
    }
}
