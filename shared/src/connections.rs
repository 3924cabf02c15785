//! The connections the ingress and the worker open at start-up, made one way: the MySQL pool
//! (unless a test hands in its own), Redis under the deployment's prefix and filter size, and
//! the broker's names. Both connect lazily: a process starts while a service is down, and its
//! readiness (or its first batch) tells.

use crate::amqp::Topology;
use crate::cache::{self, Cache, CacheError};
use crate::config::{AmqpConfig, DatabaseConfig, RedisConfig};
use sqlx::MySqlPool;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL: {0}")]
    Database(#[source] sqlx::Error),
    #[error("REDIS_URL: {0}")]
    Redis(#[source] CacheError),
}

pub struct Connections {
    pub pool: MySqlPool,
    pub cache: Cache,
    pub topology: Topology,
}

impl Connections {
    /// `pool` lets tests hand in their own database.
    pub async fn open(
        database: &DatabaseConfig,
        redis: &RedisConfig,
        amqp: &AmqpConfig,
        pool: Option<MySqlPool>,
    ) -> Result<Connections, ConnectError> {
        let pool = match pool {
            Some(p) => p,
            None => crate::db::connect(&database.url, database.max_connections)
                .await
                .map_err(ConnectError::Database)?,
        };
        let conn = cache::connect(&redis.url).map_err(ConnectError::Redis)?;
        Ok(Connections {
            pool,
            cache: Cache::for_deployment(conn, redis),
            topology: Topology::new(&amqp.prefix),
        })
    }
}
