//! Configuration: environment variables (or flags) read once at start-up by `clap`, typed,
//! and passed down. Defaults work on a developer machine with the local services.

use crate::crypto::{CryptoError, Keyring};
use crate::nodes::{Nodes, NodesParser};

pub const DEV_MASTER_KEYS: &str = "dev=ZGV2LW9ubHktbWFzdGVyLWtleS1kby1ub3QtdXNlLSE=";
pub const DEV_BLIND_INDEX_KEY: &str = "ZGV2LW9ubHktYmxpbmQtaW5kZXgta2V5LXJvdGF0ZSE=";

/// Close of business (SPEC §12), as the workers' nightly run, `xyzctl close-of-business` and
/// the load generator's drills all run it.
#[derive(clap::Args, Debug, Clone)]
pub struct CobConfig {
    /// Late fee in percent of an installment's unpaid part (0..=100).
    #[arg(long, env = "LATE_FEE_PERCENT", default_value = "1", value_parser = late_fee_percent)]
    pub late_fee_percent: rust_decimal::Decimal,
    /// Installments per COB transaction: small enough that payments never wait long on them.
    #[arg(long, env = "COB_CHUNK", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cob_chunk: u32,
    /// The share of its time COB works, in percent: after a chunk that took t it rests
    /// t × (100 − p) / p, leaving the rest of MySQL and the cores to the command pipeline.
    /// 100: no rest (a drill on an idle engine).
    #[arg(long, env = "COB_DUTY_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub cob_duty_percent: u8,
}

impl CobConfig {
    /// The run's options; `lock_wait`: how long to wait for another runner.
    pub fn options(&self, lock_wait: std::time::Duration) -> crate::db::cob::CobOptions {
        crate::db::cob::CobOptions {
            chunk: self.cob_chunk,
            fee_percent: self.late_fee_percent,
            duty_percent: self.cob_duty_percent,
            lock_wait,
        }
    }
}

fn late_fee_percent(s: &str) -> Result<rust_decimal::Decimal, String> {
    use rust_decimal::Decimal;
    let v: Decimal = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v < Decimal::ZERO || v > Decimal::ONE_HUNDRED {
        return Err(format!("{v} is not within 0..=100"));
    }
    Ok(v)
}

#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// MySQL/MariaDB URL of the application user (DML only); for a Galera cluster, each
    /// node's URL separated by commas (one node is written to at a time, the next one taken
    /// when it fails; `shared::db::failover`).
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "mysql://xyz_app:xyz_app_local@127.0.0.1:3306/xyz",
        hide_env_values = true,
        value_parser = NodesParser::list()
    )]
    pub url: Nodes,
    /// Connections in the pool.
    #[arg(
        id = "database_max_connections",
        long = "database-max-connections",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub max_connections: u32,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RedisConfig {
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub url: String,
    /// Prefix of every Redis key and channel this deployment uses.
    #[arg(
        id = "redis_prefix",
        long = "redis-prefix",
        env = "REDIS_PREFIX",
        default_value = "xyz"
    )]
    pub prefix: String,
    /// Bits of the filter of claimed external ids (`shared::cache::seen_positions`): 2^27
    /// (16 MiB) keeps a 1 % false-positive rate up to ~14 million ids. Every ingress and
    /// worker of a deployment must use the same value.
    #[arg(
        id = "redis_seen_filter_bits",
        long = "redis-seen-filter-bits",
        env = "REDIS_SEEN_FILTER_BITS",
        default_value_t = crate::cache::SEEN_BITS,
        value_parser = clap::value_parser!(u64).range(1024..=(1u64 << 32))
    )]
    pub seen_filter_bits: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct AmqpConfig {
    /// The broker's URL; for a cluster, each node's URL separated by commas (a connection
    /// that fails goes to the next node).
    #[arg(
        id = "amqp_url",
        long = "amqp-url",
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        value_parser = NodesParser::list()
    )]
    pub url: Nodes,
    /// Prefix of the exchange and queue names (see `rabbitmq/definitions.json` for `xyz`).
    #[arg(
        id = "amqp_prefix",
        long = "amqp-prefix",
        env = "AMQP_PREFIX",
        default_value = "xyz"
    )]
    pub prefix: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CryptoConfig {
    /// Master keys for data at rest: `id=base64(32 bytes)` separated by commas.
    #[arg(long = "master-keys", env = "MASTER_KEYS", default_value = DEV_MASTER_KEYS, hide_env_values = true, hide_default_value = true)]
    pub(crate) master_keys: String,
    /// The master key id new data is encrypted under.
    #[arg(long = "master-key-id", env = "MASTER_KEY_ID", default_value = "dev")]
    pub master_key_id: String,
    /// Key of the NIK blind index (base64, at least 32 bytes). Never rotates without a rebuild.
    #[arg(long = "blind-index-key", env = "BLIND_INDEX_KEY", default_value = DEV_BLIND_INDEX_KEY, hide_env_values = true, hide_default_value = true)]
    pub(crate) blind_index_key: String,
}

impl CryptoConfig {
    pub fn keyring(&self) -> Result<Keyring, CryptoError> {
        if self.master_keys == DEV_MASTER_KEYS {
            tracing::warn!(
                "MASTER_KEYS is the built-in development key: never use it in production"
            );
        }
        Keyring::from_config(
            &self.master_keys,
            &self.master_key_id,
            &self.blind_index_key,
        )
    }
}

/// Webhooks (SPEC §11): what registration and delivery both need to know.
#[derive(clap::Args, Debug, Clone)]
pub struct WebhookConfig {
    /// `1` lets local tests register and receive on `http://127.0.0.1:…` and `localhost`
    /// (loopback addresses only; private and metadata addresses stay refused). Never in
    /// production.
    #[arg(
        id = "webhook_allow_loopback",
        long = "webhook-allow-loopback",
        env = "WEBHOOK_ALLOW_LOOPBACK",
        default_value = "0",
        value_parser = ["0", "1"]
    )]
    pub allow_loopback: String,
}

impl WebhookConfig {
    pub fn loopback(&self) -> crate::webhooks::Loopback {
        if self.allow_loopback == "1" {
            crate::webhooks::Loopback::Allowed
        } else {
            crate::webhooks::Loopback::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::late_fee_percent;
    use rust_decimal::Decimal;

    #[test]
    fn a_late_fee_is_a_percentage_from_0_to_100() {
        assert_eq!(late_fee_percent("1"), Ok(Decimal::ONE));
        assert_eq!(late_fee_percent(" 2.5 "), Ok(Decimal::new(25, 1)));
        assert_eq!(late_fee_percent("0"), Ok(Decimal::ZERO));
        assert_eq!(late_fee_percent("100"), Ok(Decimal::ONE_HUNDRED));
        assert!(late_fee_percent("100.01").is_err());
        assert!(late_fee_percent("-1").is_err());
        assert!(late_fee_percent("1%").is_err());
        assert!(late_fee_percent("").is_err());
    }
}
