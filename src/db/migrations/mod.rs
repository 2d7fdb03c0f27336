//! The schema migrations (`migrations/`, embedded in the binary): what the database has applied compared with
//! what this binary knows ([`Status`]), and applying the pending ones — one instance at a time, on a database a
//! newer release may already have migrated further, and at `serve`'s start only when [`check`] finds them safe
//! to apply while the shop serves (or the operator said so).

use std::time::Instant;

use anyhow::Context;
use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

mod catalog;
pub mod check;
mod lock;

pub use catalog::load as load_catalog;
pub use lock::key as lock_key;

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The database's migrations compared with this binary's.
#[derive(Debug, Default)]
pub struct Status {
    /// Known here and not applied yet, in order.
    pub pending: Vec<&'static Migration>,
    /// Applied by a newer release: unknown to this binary, which runs on regardless (a rolling upgrade).
    pub unknown: Vec<i64>,
    /// Applied with other content than this binary's file of the same version (an edited migration).
    pub changed: Vec<i64>,
    /// Started and never finished (a `-- no-transaction` migration that failed partway).
    pub failed: Vec<i64>,
}

impl Status {
    /// Every migration this binary knows is applied as it knows it (newer ones may be applied too).
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.changed.is_empty() && self.failed.is_empty()
    }
}

/// Reads `_sqlx_migrations` (absent on a fresh database: everything is pending).
pub async fn status(conn: &mut PgConnection) -> anyhow::Result<Status> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .context("looking for the migrations table")?;
    let applied: Vec<(i64, Vec<u8>, bool)> = if exists {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .context("reading applied migrations")?
    } else {
        Vec::new()
    };
    let mut status = Status::default();
    for m in MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()) {
        match applied.iter().find(|(v, _, _)| *v == m.version) {
            None => status.pending.push(m),
            Some((_, _, false)) => status.failed.push(m.version),
            Some((_, checksum, true)) if checksum.as_slice() != &*m.checksum => status.changed.push(m.version),
            Some(_) => {}
        }
    }
    status.unknown = applied.iter().map(|(v, _, _)| *v).filter(|v| !MIGRATOR.version_exists(*v)).collect();
    Ok(status)
}

/// Whether every migration this binary knows is applied, unchanged (what `/readyz` asks).
pub async fn is_migrated(pool: &PgPool) -> anyhow::Result<bool> {
    let mut conn = pool.acquire().await.context("connecting to read migrations")?;
    Ok(status(&mut conn).await?.is_current())
}

/// Which pending migrations `apply` may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Every pending one (`vpnshop migrate`: the operator asked).
    All,
    /// Only when `check` finds every pending one safe under load (`serve` at start), else nothing.
    OnlyIfSafe,
}

/// `serve` refused to apply pending migrations that are not safe to apply while the shop serves.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} pending migration(s) are not safe to apply while the shop serves ({}); see why with `vpnshop migrate \
     --check`, then apply them with `vpnshop migrate` at a quiet time (or set database.migrate_unsafe_on_start = \
     true)",
    versions.len(),
    versions.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
)]
pub struct UnsafePending {
    pub versions: Vec<i64>,
}

/// The migrations one `apply` ran, in order.
pub type Applied = Vec<&'static Migration>;

/// Applies pending migrations (all of them, or only if all are safe), holding sqlx's migration lock so several
/// instances starting at once apply each migration once. Runs on a connection of its own without the statement
/// timeout (building an index may take a while).
pub async fn apply(options: &PgConnectOptions, policy: Policy) -> anyhow::Result<Applied> {
    let options = options.clone().options([("statement_timeout", "0")]);
    let mut conn = PgConnection::connect_with(&options).await.context("connecting to apply migrations")?;
    let key = lock::acquire(&mut conn).await?;
    let result = apply_locked(&mut conn, &options, policy).await;
    let unlocked = lock::release(&mut conn, key).await;
    let _ = conn.close().await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

/// With the lock held on `conn`: checks, then applies on a connection of its own (the lock's stays idle, so it
/// holds no snapshot an index build would wait for).
async fn apply_locked(conn: &mut PgConnection, options: &PgConnectOptions, policy: Policy) -> anyhow::Result<Applied> {
    let status = status(conn).await?;
    if let Some(v) = status.failed.first() {
        anyhow::bail!(
            "migration {v} started and did not finish (a -- no-transaction migration failed partway): see what it \
             left, finish or undo it by hand, then delete its row from _sqlx_migrations"
        );
    }
    if let Some(v) = status.changed.first() {
        anyhow::bail!("migration {v} was applied with other content than this binary's file: was it edited?");
    }
    if !status.unknown.is_empty() {
        tracing::info!(
            versions = ?status.unknown,
            "the database has migrations this release does not know (a newer release applied them); running on"
        );
    }
    if status.pending.is_empty() {
        return Ok(Vec::new());
    }
    if policy == Policy::OnlyIfSafe {
        let catalog = catalog::load(conn).await?;
        let sources: Vec<check::Source<'_>> = status.pending.iter().map(|m| check::Source::from(*m)).collect();
        let unsafe_versions: Vec<i64> =
            check::analyse(&sources, &catalog).iter().filter(|r| !r.is_safe()).map(|r| r.version).collect();
        if !unsafe_versions.is_empty() {
            return Err(UnsafePending { versions: unsafe_versions }.into());
        }
    }
    let started = Instant::now();
    for m in &status.pending {
        tracing::info!(version = m.version, description = %m.description, "applying migration");
    }
    // this binary's migrations, tolerating newer ones applied by the next release; the lock is ours already
    let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    migrator.set_ignore_missing(true).set_locking(false);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .context("connecting to apply migrations")?;
    let result = migrator.run(&pool).await.context("applying database migrations");
    pool.close().await;
    result?;
    tracing::info!(count = status.pending.len(), seconds = started.elapsed().as_secs_f64(), "migrations applied");
    Ok(status.pending)
}

/// Applies every pending migration (see [`apply`]), on the pool's database.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Applied> {
    apply(&pool.connect_options(), Policy::All).await
}
