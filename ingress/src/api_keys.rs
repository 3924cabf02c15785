//! The API keys in memory. MySQL holds them; each ingress reloads the whole set every
//! `KEY_REFRESH_MS`, and at once when a key changes (`xyzctl keys …` announces it on Redis),
//! so a revocation lands on every ingress within a round trip, or within the refresh period
//! when Redis is away. Secrets are decrypted once per load, never per request.
//!
//! A set that could not be refreshed for `KEY_STALE_AFTER_MS` (or never loaded, as when the
//! ingress started while MySQL was down) is not trusted: signed requests answer 503, since
//! neither "valid" nor "revoked" can be told.

use shared::crypto::Keyring;
use shared::db::keys::{ActiveKey, load_active_keys};
use sqlx::MySqlPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Clone)]
pub struct ApiKeys {
    keys: Arc<RwLock<Loaded>>,
    stale_after: Duration,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Loaded {
    /// Shared by every request that uses a key: looking one up copies a pointer, not the key.
    keys: Arc<HashMap<String, Arc<ActiveKey>>>,
    at: Option<Instant>,
}

/// What the key set says of a client id.
pub(crate) enum Lookup {
    Found(Arc<ActiveKey>),
    Unknown,
    /// The set is too old to tell.
    Stale,
}

impl ApiKeys {
    pub fn new(stale_after: Duration) -> ApiKeys {
        ApiKeys {
            keys: Arc::default(),
            stale_after,
            changed: Arc::default(),
        }
    }

    pub(crate) fn get(&self, client_id: &str) -> Lookup {
        let loaded = self.keys.read().unwrap_or_else(|e| e.into_inner());
        if loaded.at.is_none_or(|at| at.elapsed() > self.stale_after) {
            return Lookup::Stale;
        }
        match loaded.keys.get(client_id) {
            Some(key) => Lookup::Found(key.clone()),
            None => Lookup::Unknown,
        }
    }

    pub async fn reload(
        &self,
        pool: &MySqlPool,
        keyring: &Keyring,
    ) -> Result<usize, shared::db::DbError> {
        let keys = load_active_keys(pool, keyring).await?;
        let n = keys.len();
        let map: HashMap<String, Arc<ActiveKey>> = keys
            .into_iter()
            .map(|k| (k.client_id.clone(), Arc::new(k)))
            .collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            keys: Arc::new(map),
            at: Some(Instant::now()),
        };
        Ok(n)
    }

    /// A key changed somewhere: reload now rather than at the next tick.
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// Listens for key changes announced on `channel` (`xyzctl keys …`), forever.
    pub(crate) fn spawn_change_listener(
        &self,
        redis_url: String,
        channel: String,
    ) -> tokio::task::JoinHandle<()> {
        let keys = self.clone();
        crate::subscriber::spawn(redis_url, channel, move |_| keys.changed())
    }

    /// Reloads every `every`, and whenever [`ApiKeys::changed`] is called. When MySQL is
    /// unreachable the last good set stays in force until it is stale.
    pub fn spawn_refresh(
        &self,
        pool: MySqlPool,
        keyring: Keyring,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cache.changed.notified() => {}
                }
                if let Err(e) = cache.reload(&pool, &keyring).await {
                    tracing::warn!(error = %e, "API key reload failed; keeping the previous set until it is stale");
                }
            }
        })
    }
}
