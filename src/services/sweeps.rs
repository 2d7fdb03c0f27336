//! What the scheduler's sweeps ask for: find due work, enqueue jobs (and mark once-only reminders in the
//! same transaction as their notice). Nothing here talks to a node.

use sqlx::PgPool;

use crate::config::JobSettings;
use crate::db;
use crate::error::AppResult;
use crate::services::notify::{self, Notice, UserNotice};
use crate::services::queue::JobSpec;
use crate::services::subscriptions::{END_KIND, PLACE_KIND};

/// Enqueues one job of `kind` per node that carries clients (coalesced per node).
pub async fn enqueue_per_node(pool: &PgPool, kind: &'static str, jobs: &JobSettings) -> AppResult<u64> {
    let mut n = 0;
    for id in db::servers::active_node_ids(pool).await? {
        let spec = JobSpec::new(kind, serde_json::json!({ "server_id": id })).coalesce(format!("{kind}:{id}"));
        n += u64::from(spec.enqueue(pool, jobs).await?.is_some());
    }
    Ok(n)
}

/// Enqueues the end of every subscription whose time is up.
pub async fn enqueue_expiries(pool: &PgPool, jobs: &JobSettings) -> AppResult<u64> {
    let mut n = 0;
    for id in db::subscriptions::due_to_expire(pool, 1000).await? {
        let spec = JobSpec::new(END_KIND, serde_json::json!({ "subscription_id": id, "to": "expired" }))
            .coalesce(format!("{END_KIND}:{id}"));
        n += u64::from(spec.enqueue(pool, jobs).await?.is_some());
    }
    Ok(n)
}

/// Sends the 3-day and 1-day expiry reminders, once each per subscription period.
pub async fn enqueue_expiry_reminders(pool: &PgPool, jobs: &JobSettings) -> AppResult<u64> {
    let mut n = 0;
    for days in [1, 3] {
        let mut tx = pool.begin().await?;
        for (sub_id, user_id, expires_at) in db::subscriptions::take_expiry_reminders(&mut tx, days).await? {
            let notice = UserNotice { user_id, subscription_id: sub_id, notice: Notice::ExpiresSoon { days } };
            notify::enqueue_user(&mut *tx, &notice, &expires_at.timestamp().to_string(), jobs).await?;
            n += 1;
        }
        tx.commit().await?;
    }
    Ok(n)
}

/// Retries placement of subscriptions still waiting for a node with room.
pub async fn enqueue_placements(pool: &PgPool, jobs: &JobSettings) -> AppResult<u64> {
    let mut n = 0;
    for id in db::subscriptions::unplaced(pool).await? {
        let spec =
            JobSpec::new(PLACE_KIND, serde_json::json!({ "subscription_id": id })).coalesce(format!("place:{id}"));
        n += u64::from(spec.enqueue(pool, jobs).await?.is_some());
    }
    Ok(n)
}
