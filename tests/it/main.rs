//! Integration tests: one binary, real PostgreSQL (a fresh database per test via `#[sqlx::test]`) and Redis.

mod api;
mod bench;
mod bench_caps;
mod bench_intake;
mod bot;
mod browser;
mod catalog;
mod dash;
mod health;
mod helpers;
mod http_limits;
mod job_leases;
mod jobs;
mod node_api;
mod node_locks;
mod node_setup;
mod payments;
mod payments_online;
mod process;
mod provisioning;
mod schema;
mod server_cli;
mod servers;
mod subscriptions;
mod support;
mod telegram_fake;
