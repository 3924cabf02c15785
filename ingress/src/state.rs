//! What every request shares: pools and connections, long-lived and built once.

use crate::acceptances::Acceptances;
use crate::api_keys::ApiKeys;
use crate::audit::AuditLog;
use crate::commands::Commands;
use crate::lookups::Lookups;
use crate::waiters::Waiters;
use shared::amqp::Publisher;
use shared::cache::Cache;
use shared::crypto::Keyring;
use sqlx::MySqlPool;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub pool: MySqlPool,
    pub cache: Cache,
    pub publisher: Publisher,
    pub commands: Commands,
    pub api_keys: ApiKeys,
    pub keyring: Keyring,
    pub audit: AuditLog,
    pub acceptances: Acceptances,
    pub lookups: Lookups,
    pub waiters: Waiters,
    pub trusted_proxies: Vec<IpAddr>,
    /// The rate limit of a key that has none of its own.
    pub rate_limit: crate::rate::RateLimit,
    /// Requests of the keys' allowances taken from Redis ahead of use (`crate::rate`).
    pub held: crate::rate::Held,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub max_waiters: usize,
    /// How long a request may take before the frame answers it 503 (`crate::deadline`).
    pub request_timeout: std::time::Duration,
    /// Whether the filter of claimed ids was complete at the last look (`crate::seen`):
    /// then a claim goes first and MySQL is asked only when the filter cannot prove the id
    /// new; otherwise both are asked at once.
    pub seen_complete: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether webhook URLs may name loopback receivers (tests only).
    pub webhook_loopback: shared::webhooks::Loopback,
}

impl AppState {
    pub fn new(inner: Inner) -> AppState {
        AppState {
            inner: Arc::new(inner),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}
