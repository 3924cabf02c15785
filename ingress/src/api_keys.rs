//! The API keys in memory, reloaded from MySQL every few seconds so a revocation reaches
//! every ingress within `KEY_REFRESH_MS` plus a round trip. Secrets are decrypted once per
//! load, never per request.

use shared::crypto::Keyring;
use shared::db::keys::{ActiveKey, load_active_keys};
use sqlx::MySqlPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Arc<RwLock<Arc<HashMap<String, ActiveKey>>>>,
}

impl ApiKeys {
    pub fn get(&self, client_id: &str) -> Option<ActiveKey> {
        let map = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        map.get(client_id).cloned()
    }

    pub async fn reload(
        &self,
        pool: &MySqlPool,
        keyring: &Keyring,
    ) -> Result<usize, shared::db::DbError> {
        let keys = load_active_keys(pool, keyring).await?;
        let n = keys.len();
        let map: HashMap<String, ActiveKey> =
            keys.into_iter().map(|k| (k.client_id.clone(), k)).collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        Ok(n)
    }

    /// Reloads forever. When MySQL is unreachable the last good set stays in force.
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
                tick.tick().await;
                if let Err(e) = cache.reload(&pool, &keyring).await {
                    tracing::warn!(error = %e, "API key reload failed; keeping the previous set");
                }
            }
        })
    }
}
