//! Integration tests: the real ingress on port 0, real workers as tasks, the real MariaDB
//! (a database per test), Redis and RabbitMQ (a key and queue prefix per test).

mod helpers;

mod admin;
mod auth;
mod cli;
mod cob;
mod deadline;
mod failover;
mod keys;
mod limits;
mod lookups;
mod metrics;
mod nginx;
mod openapi;
mod payments;
mod pipeline;
mod processes;
mod ratelimit;
mod refunds;
mod security;
mod seen;
mod settlement;
mod status_lookup;
mod transactions;
mod users;
mod webhooks;
