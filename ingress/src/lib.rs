//! The HTTP ingress: verifies signatures, validates bodies, claims external ids, publishes
//! commands with publisher confirms, and serves the reads.

pub mod acceptances;
pub mod audit;
pub mod batcher;
pub mod body;
pub mod claims;
pub mod commands;
pub mod config;
pub mod error;
pub mod keys;
pub mod lookups;
pub mod openapi;
pub mod pipeline;
pub mod route;
pub mod routes;
pub mod seen;
pub mod startup;
pub mod state;
pub mod waiters;
