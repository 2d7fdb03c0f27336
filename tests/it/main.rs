//! Integration tests: one binary, real PostgreSQL (a fresh database per test via `#[sqlx::test]`) and Redis.

mod catalog;
mod health;
mod helpers;
mod jobs;
mod node_api;
mod process;
mod provisioning;
mod schema;
mod servers;
mod support;
