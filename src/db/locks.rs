//! Advisory locks held for as long as a piece of work runs (a node sync over SSH, a sweep), each on a
//! connection of its own from a small pool kept for locks only. No transaction stays open while the work
//! waits on a slow node, so the main pool and `idle_in_transaction_session_timeout` are never involved, and
//! a process that dies releases its locks at once (Postgres ends the session).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

/// The lock connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Locks {
    pool: PgPool,
}

/// A held session-level advisory lock. [`HeldLock::release`] unlocks it and returns the connection;
/// dropping it without releasing closes the connection, which releases the lock too.
#[derive(Debug)]
pub struct HeldLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl Locks {
    /// A pool of at most `size` lock connections to the same database as `main` (with its session settings).
    /// The server probes these connections every few seconds, so the locks of a shop host that vanished
    /// (power loss, a partition: no socket was closed) are released within about half a minute, not hours.
    pub fn for_pool(main: &PgPool, size: u32, acquire_timeout: Duration) -> Locks {
        let options = (*main.connect_options()).clone().options([
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(size.max(1))
            .acquire_timeout(acquire_timeout)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Locks { pool }
    }

    /// A lock connection, guarded from the start: if the caller is cancelled at any point before it
    /// releases, the connection is closed rather than returned to the pool (it might hold the lock).
    async fn guarded(&self, key: i64) -> sqlx::Result<HeldLock> {
        Ok(HeldLock { conn: Some(self.pool.acquire().await?), key })
    }

    /// Takes the lock if it is free right now.
    pub async fn try_lock(&self, key: i64) -> sqlx::Result<Option<HeldLock>> {
        let mut held = self.guarded(key).await?;
        let locked =
            sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, key).fetch_one(held.conn()).await?;
        if locked {
            Ok(Some(held))
        } else {
            held.give_back();
            Ok(None)
        }
    }

    /// Waits up to `limit` for the lock (woken the moment its holder releases it); `None` if it stayed taken.
    pub async fn lock_within(&self, key: i64, limit: Duration) -> sqlx::Result<Option<HeldLock>> {
        let mut held = self.guarded(key).await?;
        let ms = format!("{}ms", limit.as_millis().clamp(1, 600_000));
        sqlx::query!("SELECT set_config('lock_timeout', $1, false)", ms).fetch_one(held.conn()).await?;
        let waited = sqlx::query!("SELECT pg_advisory_lock($1)", key).execute(held.conn()).await;
        sqlx::query!("SELECT set_config('lock_timeout', '0', false)").fetch_one(held.conn()).await?;
        match waited {
            Ok(_) => Ok(Some(held)),
            // 55P03: lock_not_available (the timeout passed)
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                held.give_back();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the lock connections (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl HeldLock {
    fn conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn.as_mut().expect("a held lock has its connection until released")
    }

    /// Returns the connection to the pool when the lock was never taken on it.
    fn give_back(&mut self) {
        drop(self.conn.take());
    }

    /// Unlocks and gives the connection back for the next lock. The connection stays guarded until the unlock
    /// is confirmed: cancelled or failed halfway, it is closed instead (see `Drop`).
    pub async fn release(mut self) {
        let key = self.key;
        let Some(conn) = self.conn.as_mut() else { return };
        let unlocked =
            sqlx::query_scalar!(r#"SELECT pg_advisory_unlock($1) AS "unlocked!""#, key).fetch_one(&mut **conn).await;
        if matches!(unlocked, Ok(true)) {
            drop(self.conn.take());
        } else {
            // the session's state is not what we think: never hand it to the next lock
            tracing::warn!(lock.key = key, "advisory unlock failed; closing its connection");
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // not released (an error path, a cancelled task): the connection must not return to the pool holding the
        // lock, so it is closed; Postgres releases the lock when the session ends
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}
