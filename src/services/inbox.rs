//! The Telegram inbox as the bot uses it: store updates (durably, duplicates ignored), claim the next
//! update of each chat under a lease, record how handling went, and prune what is long handled.

use sqlx::PgPool;

use crate::db::telegram_updates;
pub use crate::db::telegram_updates::{StoredUpdate, WAKE_CHANNEL};

/// Stores a batch (with the trace each update arrived in); returns how many were new (the rest were repeats).
pub async fn store(
    pool: &PgPool,
    ids: &[i64],
    chats: &[i64],
    payloads: &[String],
    trace_parents: &[Option<String>],
) -> sqlx::Result<u64> {
    telegram_updates::insert_many(pool, ids, chats, payloads, trace_parents).await
}

/// How many of the oldest pending updates a claim looks at first, so that a long backlog is not walked on every
/// claim.
const WINDOW: i64 = 2000;

/// Claims the next update of up to `limit` chats that have none in progress. The oldest updates are looked at
/// first; when they do not fill `limit` and more are waiting beyond them (one chat with a long backlog in front)
/// the whole backlog is searched, so no chat waits behind another's backlog.
pub async fn claim(pool: &PgPool, worker: &str, lease_secs: f64, limit: i64) -> sqlx::Result<Vec<StoredUpdate>> {
    let mut claimed = telegram_updates::claim(pool, worker, lease_secs, limit, Some(WINDOW)).await?;
    let missing = limit - claimed.len() as i64;
    if missing > 0 {
        // what is already claimed is leased: it is handed out even if looking further fails
        let further = async {
            if !telegram_updates::pending_beyond(pool, WINDOW).await? {
                return Ok(Vec::new());
            }
            telegram_updates::claim(pool, worker, lease_secs, missing, None).await
        };
        match further.await {
            Ok(more) => claimed.extend(more),
            Err(e) if claimed.is_empty() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "could not look beyond the oldest Telegram updates this time"),
        }
    }
    Ok(claimed)
}

/// Marks an update handled; false when its lease had passed to another worker.
pub async fn finish(pool: &PgPool, update_id: i64, worker: &str, error: Option<&str>) -> sqlx::Result<bool> {
    telegram_updates::finish(pool, update_id, worker, error).await
}

/// Records how many messages the update's handler has sent so far (a retry skips them).
pub async fn record_sent(pool: &PgPool, update_id: i64, worker: &str, sent: i32) -> sqlx::Result<bool> {
    telegram_updates::record_sent(pool, update_id, worker, sent).await
}

/// Puts an update back for `delay_secs` (its chat waits meanwhile); false when its lease had passed on.
pub async fn retry_later(
    pool: &PgPool,
    update_id: i64,
    worker: &str,
    error: &str,
    delay_secs: f64,
) -> sqlx::Result<bool> {
    telegram_updates::retry_later(pool, update_id, worker, error, delay_secs).await
}

/// The name of an instance's inbox worker (the lease holder of the updates it handles).
pub fn worker_of(instance: &str) -> String {
    format!("{instance}/inbox")
}

/// Releases the updates the inbox of `instance` held when it stopped (it is starting again), so they are
/// handled at once instead of after their lease.
pub async fn release_instance(pool: &PgPool, instance: &str) -> sqlx::Result<u64> {
    telegram_updates::release_worker(pool, &worker_of(instance)).await
}

/// Deletes updates handled more than `days` ago (Telegram redelivers for at most a day, so a week of ids
/// still catches every repeat).
pub async fn prune(pool: &PgPool, days: i32) -> sqlx::Result<u64> {
    telegram_updates::delete_handled_before(pool, days).await
}
