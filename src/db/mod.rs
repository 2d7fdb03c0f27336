//! Persistence: one module per table (or aggregate). Functions take an executor or a connection so the caller
//! owns the transaction; no business rules live here.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::Settings;

pub mod admins;
pub mod audit;
pub mod clients;
pub mod jobs;
pub mod locations;
pub mod orders;
pub mod plans;
pub mod servers;
pub mod subscriptions;
pub mod telegram_updates;
pub mod users;

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens the pool. Connections are made lazily so a process can start (and report not-ready) while the
/// database is still down.
pub fn pool(settings: &Settings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout_secs))
        .connect_lazy(settings.database_url())
        .context("invalid database.url")
}

/// Applies pending migrations; safe to run from several instances at once (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying database migrations")
}

/// A stable 64-bit key for a Postgres advisory lock on `name` (same in every process and version).
pub fn advisory_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("vpnshop.{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Takes a transaction-scoped advisory lock if free; the lock ends with the transaction.
pub async fn try_lock(conn: &mut sqlx::PgConnection, key: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#, key).fetch_one(conn).await
}

/// Waits up to `limit` for a transaction-scoped advisory lock; false if it stayed taken.
pub async fn lock_within(conn: &mut sqlx::PgConnection, key: i64, limit: std::time::Duration) -> sqlx::Result<bool> {
    let ms = format!("{}ms", limit.as_millis().clamp(1, 600_000));
    sqlx::query!("SELECT set_config('lock_timeout', $1, true)", ms).fetch_one(&mut *conn).await?;
    match sqlx::query!("SELECT pg_advisory_xact_lock($1)", key).execute(&mut *conn).await {
        Ok(_) => {
            sqlx::query!("SELECT set_config('lock_timeout', '0', true)").fetch_one(&mut *conn).await?;
            Ok(true)
        }
        // 55P03: lock_not_available (the timeout passed)
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether every migration this binary knows is applied.
pub async fn is_migrated(pool: &PgPool) -> anyhow::Result<bool> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .context("reading applied migrations")?;
    Ok(MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).all(|m| applied.contains(&m.version)))
}
