//! The status cache and the replies to waiting ingresses: `GET /status` reads a call's status
//! here before MySQL, and a worker publishes each final status to the channel of the ingress
//! holding a `Prefer: wait` request for it.

use super::{Cache, CacheError};
use crate::status::CallStatus;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// How long a cached status lives: at least 24 hours (SPEC §7).
pub(crate) const STATUS_TTL_SECS: u64 = 86_400;

/// A status as cached: the owner (for the ownership check) and the status object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusRecord {
    pub merchant_id: String,
    pub status: CallStatus,
}

impl Cache {
    pub async fn get_status(&self, api_call_id: &str) -> Result<Option<StatusRecord>, CacheError> {
        let mut c = self.conn.clone();
        let raw: Option<String> = c.get(self.names.status(api_call_id)).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Drops a call's status (the PENDING status of a claim taken over: its call was never
    /// accepted).
    pub async fn drop_status(&self, api_call_id: &str) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = c.del(self.names.status(api_call_id)).await?;
        Ok(())
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
                .arg(self.names.status(&record.status.api_call_id))
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
