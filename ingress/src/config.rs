//! Ingress configuration: read once from the environment (or flags).

use shared::config::{AmqpConfig, CryptoConfig, DatabaseConfig, RedisConfig, WebhookConfig};
use std::net::IpAddr;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "ingress",
    about = "HTTP ingress of the XYZ MultiFinance engine",
    version
)]
pub struct IngressConfig {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: String,
    /// Name of this ingress; `Prefer: wait` replies come back on its own Redis channel.
    /// Defaults to a random id.
    #[arg(long, env = "INGRESS_ID")]
    pub ingress_id: Option<String>,
    /// How often API keys are reloaded from MySQL, in milliseconds (revocation lands within
    /// this plus one round trip).
    #[arg(long, env = "KEY_REFRESH_MS", default_value_t = 2000)]
    pub key_refresh_ms: u64,
    /// A key set not refreshed for this long (MySQL away), in milliseconds, is not trusted:
    /// signed requests answer 503 until a reload succeeds.
    #[arg(long, env = "KEY_STALE_AFTER_MS", default_value_t = 30_000)]
    pub key_stale_after_ms: u64,
    /// How long a publish may take, from handing the message to the broker to its confirm,
    /// before answering 503, in milliseconds (a broker under a memory or disk alarm takes
    /// the message and never confirms).
    #[arg(long, env = "CONFIRM_TIMEOUT_MS", default_value_t = 5000)]
    pub confirm_timeout_ms: u64,
    /// How long any request may take before it is answered 503, in milliseconds. Longer than
    /// the longest legitimate request (`Prefer: wait` holds up to 30 s), shorter than
    /// nginx's `proxy_read_timeout` (40 s), so the client gets our envelope, not nginx's.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 35_000,
        value_parser = clap::value_parser!(u64).range(1000..))]
    pub request_timeout_ms: u64,
    /// Where audit rows MySQL cannot take go (its channel full, or a row refused), one JSON
    /// object a line, for an operator to load back with `INSERT IGNORE`. Created on first use.
    #[arg(long, env = "AUDIT_SPILL_PATH", default_value = "audit-spill.jsonl")]
    pub audit_spill_path: std::path::PathBuf,
    /// Proxies whose `X-Forwarded-For` is believed (comma separated IPs).
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = "127.0.0.1,::1"
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// Requests per second a key may sustain unless the key sets its own.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 1000)]
    pub rate_limit_per_second: u32,
    /// Requests a key may send at once unless the key sets its own: a merchant's bulk
    /// checkout of 50,000 calls and their polls pass without a 429, then the rate holds.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 60_000)]
    pub rate_limit_burst: u32,
    /// Requests that may hold a connection with `Prefer: wait` at once; beyond it they are
    /// answered 202 straight away.
    #[arg(long, env = "MAX_WAITERS", default_value_t = 2000)]
    pub max_waiters: usize,
    /// Command messages awaiting their broker confirm at once; commands arriving beyond it
    /// wait and travel together in the next message. One: fewer, larger messages, so less
    /// broker CPU, and no slower (a quorum queue confirms in order, so a second message in
    /// flight does not pass a slow first one). Against 4 in flight, RabbitMQ's share of the
    /// machine at half of peak falls from 22–25 % to 18–20 % with the peak unchanged
    /// (BENCHMARKS.md's table of design choices; `scripts/bench.sh`, `PUBLISH_IN_FLIGHT=4`).
    #[arg(long, env = "PUBLISH_IN_FLIGHT", default_value_t = 1)]
    pub publish_in_flight: usize,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub amqp: AmqpConfig,
    #[command(flatten)]
    pub crypto: CryptoConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::IngressConfig::command().debug_assert();
    }
}
