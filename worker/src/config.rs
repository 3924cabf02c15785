//! Worker configuration, read once from the environment (or flags).

use shared::config::{AmqpConfig, CryptoConfig, DatabaseConfig, RedisConfig, WebhookConfig};
use shared::webhooks::RetrySchedule;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "worker",
    about = "Worker of the XYZ MultiFinance engine",
    version
)]
pub struct WorkerConfig {
    /// Consumers (channels) in this process; each works one batch at a time. One is enough:
    /// its batches are split into lanes (`WORKER_LANES`), and a second consumer's batches
    /// would share users with the first's and wait for their row locks.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
    /// Unacked deliveries the broker may push to each consumer.
    /// Room for the batch being applied and the next one (a message may carry several
    /// commands), so the broker never waits for acks to send more.
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 256)]
    pub(crate) prefetch: u16,
    /// Commands per MySQL transaction (group commit).
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Lanes per consumer: each batch is split by user into this many MySQL transactions
    /// applied side by side, which never wait for each other's row locks (a consumer gathers
    /// up to lanes × batch size commands).
    #[arg(long, env = "WORKER_LANES", default_value_t = 4)]
    pub lanes: usize,
    /// How long a batch waits for more commands after its first, in milliseconds.
    #[arg(long, env = "WORKER_BATCH_LINGER_MS", default_value_t = 5)]
    pub(crate) batch_linger_ms: u64,
    /// Where the worker serves Prometheus metrics (`/metrics`); empty disables.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: String,
    /// Close of business (SPEC §12) shortly after midnight Asia/Jakarta, in whichever worker
    /// process takes the runner lock first (the others skip that night's run).
    #[arg(long, env = "COB_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub cob_enabled: bool,
    #[command(flatten)]
    pub cob: shared::config::CobConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub amqp: AmqpConfig,
    /// The master keys: webhook secrets are stored encrypted under them.
    #[command(flatten)]
    pub crypto: CryptoConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
    #[command(flatten)]
    pub dispatch: DispatchConfig,
}

/// The webhook dispatcher every worker process runs (SPEC §11).
#[derive(clap::Args, Debug, Clone)]
pub struct DispatchConfig {
    /// Seconds between a failed attempt and the next, comma separated; after the last, the
    /// event is failed.
    #[arg(
        id = "webhook_retry_schedule", long = "webhook-retry-schedule",
        env = "WEBHOOK_RETRY_SCHEDULE",
        default_value = "5,300,1800,7200,18000,36000,36000",
        value_parser = RetrySchedule::parse
    )]
    pub retry_schedule: RetrySchedule,
    /// How long one attempt may take, DNS to response, in milliseconds.
    #[arg(
        id = "webhook_timeout_ms",
        long = "webhook-timeout-ms",
        env = "WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub timeout_ms: u64,
    /// Deliveries in flight at once in this process: a receiver that hangs holds one of them
    /// until its timeout, nobody else's.
    #[arg(
        id = "webhook_concurrency",
        long = "webhook-concurrency",
        env = "WEBHOOK_CONCURRENCY",
        default_value_t = 128
    )]
    pub concurrency: usize,
    /// Of those, at most this many to one merchant's endpoint: a receiver that hangs with a
    /// backlog holds no more, and the other merchants' deliveries keep the rest. An endpoint's
    /// further events wait in the process for one of its own to finish.
    #[arg(
        id = "webhook_endpoint_concurrency",
        long = "webhook-endpoint-concurrency",
        env = "WEBHOOK_ENDPOINT_CONCURRENCY",
        default_value_t = 32
    )]
    pub endpoint_concurrency: usize,
    /// How long a claimed event is this process's before any dispatcher may take it again
    /// (a process that died mid-delivery), in milliseconds. Longer than the timeout.
    #[arg(
        id = "webhook_lease_ms",
        long = "webhook-lease-ms",
        env = "WEBHOOK_LEASE_MS",
        default_value_t = 60_000
    )]
    pub lease_ms: u64,
    /// How often due events are looked for when nothing wakes the dispatcher, in milliseconds.
    #[arg(
        id = "webhook_poll_ms",
        long = "webhook-poll-ms",
        env = "WEBHOOK_POLL_MS",
        default_value_t = 1000
    )]
    pub poll_ms: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::WorkerConfig::command().debug_assert();
    }
}
