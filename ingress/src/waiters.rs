//! `Prefer: wait`: requests holding out for their outcome. Each ingress subscribes once to its
//! own Redis channel; workers publish each final status there, and the message completes the
//! matching oneshot. No task per waiter, no polling.

use shared::cache::StatusRecord;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Clone)]
pub struct Waiters {
    pub channel: String,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<StatusRecord>>>>,
}

/// Removes the waiter when the request ends, whether it got its answer or not.
pub struct WaitGuard {
    waiters: Waiters,
    api_call_id: String,
    pub rx: oneshot::Receiver<StatusRecord>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.api_call_id);
    }
}

impl Waiters {
    pub fn new(channel: String) -> Waiters {
        Waiters {
            channel,
            pending: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<StatusRecord>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers before the command is published, so a fast worker's reply is not missed.
    pub fn register(&self, api_call_id: &str) -> WaitGuard {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(api_call_id.to_owned(), tx);
        WaitGuard {
            waiters: self.clone(),
            api_call_id: api_call_id.to_owned(),
            rx,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn complete(&self, record: StatusRecord) {
        if let Some(tx) = self.lock().remove(&record.status.api_call_id) {
            let _ = tx.send(record);
        }
    }

    /// Listens for the workers' replies on this ingress's channel, forever.
    pub fn spawn_listener(&self, redis_url: String) -> tokio::task::JoinHandle<()> {
        let waiters = self.clone();
        crate::subscriber::spawn(redis_url, self.channel.clone(), move |payload| {
            match serde_json::from_str::<StatusRecord>(&payload) {
                Ok(record) => waiters.complete(record),
                Err(e) => tracing::warn!(error = %e, "undecodable reply ignored"),
            }
        })
    }
}

/// `Prefer: wait=N` of a request, as an extractor: how long it may wait for its outcome.
pub(crate) struct PreferWait(pub Option<Duration>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PreferWait {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<PreferWait, std::convert::Infallible> {
        let header = parts.headers.get("prefer").and_then(|v| v.to_str().ok());
        Ok(PreferWait(parse_prefer_wait(header)))
    }
}

/// `Prefer: wait=N`, N clamped to 30; anything malformed is ignored.
pub(crate) fn parse_prefer_wait(header: Option<&str>) -> Option<Duration> {
    let header = header?;
    header
        .split([',', ';'])
        .filter_map(|pref| {
            let (k, v) = pref.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            let v = v.trim().trim_matches('"');
            if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            v.parse::<u64>().ok()
        })
        .next()
        .map(|n| Duration::from_secs(n.min(30)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_wait_parsing() {
        assert_eq!(
            parse_prefer_wait(Some("wait=5")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_prefer_wait(Some("respond-async, wait=10")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_prefer_wait(Some("wait=100")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_prefer_wait(Some("wait=999999999999999")), None);
        assert_eq!(parse_prefer_wait(Some("wait=-1")), None);
        assert_eq!(parse_prefer_wait(Some("wait=abc")), None);
        assert_eq!(parse_prefer_wait(Some("wait")), None);
        assert_eq!(parse_prefer_wait(None), None);
    }
}
