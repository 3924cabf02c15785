//! The HTTP ingress: verifies signatures, validates bodies, claims external ids, publishes
//! commands with publisher confirms, and serves the reads.

pub(crate) mod acceptances;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod batcher;
mod body;
mod caller;
pub(crate) mod claims;
pub(crate) mod commands;
pub mod config;
mod console;
mod deadline;
mod docs;
pub(crate) mod error;
pub mod lookups;
pub mod openapi;
mod pipeline;
mod rate;
mod routes;
pub mod seen;
pub mod startup;
pub(crate) mod state;
mod subscriber;
mod verify;
pub(crate) mod waiters;
