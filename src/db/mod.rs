//! Persistence: one module per table (or aggregate). Functions take an executor or a connection so the caller
//! owns the transaction; no business rules live here.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Settings;

pub mod admin_sessions;
pub mod admin_totp;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod broadcasts;
pub mod clients;
pub mod dash_sessions;
pub mod gauges;
pub mod jobs;
pub mod locations;
pub mod locks;
pub mod migrations;
pub mod orders;
pub mod payments;
pub mod plans;
pub mod servers;
pub mod subscriptions;
pub mod telegram_updates;
pub mod users;

pub use migrations::{MIGRATOR, is_migrated, migrate};

/// Opens the pool. Connections are made lazily so a process can start (and report not-ready) while the
/// database is still down. Every connection gets `database.statement_timeout_ms` and
/// `database.idle_in_transaction_timeout_ms`, so no runaway statement or forgotten transaction holds locks
/// for long.
pub fn pool(settings: &Settings) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout_secs))
        .connect_lazy_with(connect_options(settings)?))
}

/// The connection options of `database.url` with the session limits of the settings.
pub fn connect_options(settings: &Settings) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(settings.database_url()).context("invalid database.url")?;
    let db = &settings.database;
    Ok(options.options([
        ("statement_timeout", db.statement_timeout_ms.to_string()),
        ("idle_in_transaction_session_timeout", db.idle_in_transaction_timeout_ms.to_string()),
    ]))
}

/// A stable 64-bit key for a Postgres advisory lock on `name` (same in every process and version).
pub fn advisory_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("vpnshop.{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The database's clock: every time the shop compares against a stored timestamp comes from here, so the
/// app's clock (which may drift) never meets the database's in one comparison.
pub async fn now(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(db).await
}
