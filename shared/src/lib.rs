//! What the ingress, the workers and the operator CLI share: the domain (money, contract math,
//! limits), the wire formats (envelope, commands, signatures), storage and configuration.

pub mod amqp;
pub mod cache;
#[cfg(feature = "client")]
pub mod client;
pub mod cob;
pub mod config;
pub mod connections;
pub mod contract;
pub mod crypto;
pub mod db;
pub mod dlq;
pub mod envelope;
pub mod ids;
pub mod json;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod money;
pub mod nodes;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod refund;
pub mod shutdown;
pub mod signature;
pub mod status;
pub mod telemetry;
pub mod webhooks;
