//! Worker configuration, read once from the environment (or flags).

use shared::config::{AmqpConfig, DatabaseConfig, RedisConfig};

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "worker",
    about = "Worker of the XYZ MultiFinance engine",
    version
)]
pub struct WorkerConfig {
    /// Consumers (channels) in this process; each works one batch at a time.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Unacked deliveries the broker may push to each consumer.
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 64)]
    pub prefetch: u16,
    /// Commands per MySQL transaction (group commit).
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 32)]
    pub batch_size: usize,
    /// How long a batch waits for more commands after its first, in milliseconds.
    #[arg(long, env = "WORKER_BATCH_LINGER_MS", default_value_t = 5)]
    pub batch_linger_ms: u64,
    /// Where the worker serves Prometheus metrics (`/metrics`); empty disables.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: String,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub amqp: AmqpConfig,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::WorkerConfig::command().debug_assert();
    }
}
