//! The `subscriptions` table. State changes are conditional updates (`WHERE status = <expected>`), so whoever
//! loses a race changes nothing.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::domain::page::PageRequest;
use crate::domain::status::SubscriptionStatus;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: i64,
    pub user_id: i64,
    pub order_id: Option<i64>,
    pub plan_id: i64,
    pub location_code: String,
    pub server_id: Option<i64>,
    pub is_trial: bool,
    pub status: SubscriptionStatus,
    pub seats: i32,
    pub duration_days: i32,
    pub data_cap_bytes: Option<i64>,
    pub token: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub reminded_3d_at: Option<DateTime<Utc>>,
    pub reminded_1d_at: Option<DateTime<Utc>>,
    pub reminded_80_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

/// A subscription about to be created (status `pending`, not placed yet).
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    pub user_id: i64,
    pub order_id: Option<i64>,
    pub plan_id: i64,
    pub location_code: &'a str,
    pub is_trial: bool,
    pub seats: i32,
    pub duration_days: i32,
    pub data_cap_bytes: Option<i64>,
    pub token: &'a str,
}

pub async fn insert(conn: &mut PgConnection, s: &NewSubscription<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"INSERT INTO subscriptions (user_id, order_id, plan_id, location_code, is_trial, seats, duration_days,
                                      data_cap_bytes, token)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"#,
        s.user_id,
        s.order_id,
        s.plan_id,
        s.location_code,
        s.is_trial,
        s.seats,
        s.duration_days,
        s.data_cap_bytes,
        s.token,
    )
    .fetch_one(conn)
    .await
}

macro_rules! select_subscription {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            SubscriptionRow,
            r#"SELECT id, user_id, order_id, plan_id, location_code, server_id, is_trial,
                      status AS "status: SubscriptionStatus", seats, duration_days, data_cap_bytes, token,
                      starts_at, expires_at, reminded_3d_at, reminded_1d_at, reminded_80_at, ended_at, end_reason
                 FROM subscriptions "# + $tail
            $(, $arg)*
        )
    };
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<SubscriptionRow>> {
    select_subscription!("WHERE id = $1", id).fetch_optional(db).await
}

/// Reads and row-locks a subscription for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<SubscriptionRow>> {
    select_subscription!("WHERE id = $1 FOR UPDATE", id).fetch_optional(conn).await
}

pub async fn find_by_token(db: impl PgExecutor<'_>, token: &str) -> sqlx::Result<Option<SubscriptionRow>> {
    select_subscription!("WHERE token = $1", token).fetch_optional(db).await
}

pub async fn for_user(db: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<Vec<SubscriptionRow>> {
    select_subscription!("WHERE user_id = $1 ORDER BY created_at DESC, id DESC", user_id).fetch_all(db).await
}

/// Gives the subscription a new feed token (the old feed URL stops working).
pub async fn set_token(conn: &mut PgConnection, id: i64, token: &str) -> sqlx::Result<()> {
    sqlx::query!("UPDATE subscriptions SET token = $2, updated_at = now() WHERE id = $1", id, token)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_server(conn: &mut PgConnection, id: i64, server_id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE subscriptions SET server_id = $2, updated_at = now() WHERE id = $1", id, server_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// `pending → active`, starting the clock now.
pub async fn mark_active(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE subscriptions
              SET status = 'active', starts_at = now(), expires_at = now() + make_interval(days => duration_days),
                  updated_at = now()
            WHERE id = $1 AND status = 'pending' AND server_id IS NOT NULL"#,
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves from `from` to `to` (an ending status records when and why). False if the status was not `from`.
pub async fn transition(
    conn: &mut PgConnection,
    id: i64,
    from: SubscriptionStatus,
    to: SubscriptionStatus,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let ending = matches!(to, SubscriptionStatus::Limited | SubscriptionStatus::Expired | SubscriptionStatus::Revoked);
    let done = sqlx::query!(
        r#"UPDATE subscriptions
              SET status = $3,
                  ended_at = CASE WHEN $4 THEN now() ELSE NULL END,
                  end_reason = CASE WHEN $4 THEN $5 ELSE NULL END,
                  updated_at = now()
            WHERE id = $1 AND status = $2"#,
        id,
        from.as_str(),
        to.as_str(),
        ending,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends the end by `days` from the later of now and the current end (renewal), clearing expiry reminders.
pub async fn extend(conn: &mut PgConnection, id: i64, days: i32) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE subscriptions
              SET expires_at = GREATEST(COALESCE(expires_at, now()), now()) + make_interval(days => $2),
                  reminded_3d_at = NULL, reminded_1d_at = NULL, updated_at = now()
            WHERE id = $1"#,
        id,
        days
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Raises the data cap by `bytes` (a top-up), clearing the 80% reminder.
pub async fn add_data(conn: &mut PgConnection, id: i64, bytes: i64) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE subscriptions SET data_cap_bytes = data_cap_bytes + $2, reminded_80_at = NULL, updated_at = now()
            WHERE id = $1 AND data_cap_bytes IS NOT NULL"#,
        id,
        bytes
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes back what a rejected payment granted: `days` off the end, `bytes` off the data cap (never below one byte).
/// Returns the new end.
pub async fn take_back(
    conn: &mut PgConnection,
    id: i64,
    days: Option<i32>,
    bytes: Option<i64>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"UPDATE subscriptions
              SET expires_at = CASE WHEN $2::int IS NULL THEN expires_at ELSE expires_at - make_interval(days => $2) END,
                  data_cap_bytes = CASE WHEN $3::bigint IS NULL OR data_cap_bytes IS NULL THEN data_cap_bytes
                                        ELSE GREATEST(data_cap_bytes - $3, 1) END,
                  updated_at = now()
            WHERE id = $1
        RETURNING expires_at"#,
        id,
        days,
        bytes
    )
    .fetch_one(conn)
    .await
}

/// Active or limited subscriptions whose time is up.
pub async fn due_to_expire(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"SELECT id FROM subscriptions WHERE status IN ('active', 'limited') AND expires_at <= now()
            ORDER BY expires_at LIMIT $1"#,
        limit
    )
    .fetch_all(db)
    .await
}

/// Marks the 3-day (`days = 3`) or 1-day reminder as sent for active subscriptions ending within `days` that
/// were not reminded yet; returns `(id, user_id)` of each, so the caller enqueues the message in the same
/// transaction. Once each: the mark is the guard. Returns `(id, user_id, expires_at)`.
pub async fn take_expiry_reminders(conn: &mut PgConnection, days: i32) -> sqlx::Result<Vec<(i64, i64, DateTime<Utc>)>> {
    let rows = sqlx::query!(
        r#"UPDATE subscriptions
              SET reminded_3d_at = CASE WHEN $1 = 3 THEN now() ELSE reminded_3d_at END,
                  reminded_1d_at = CASE WHEN $1 = 1 THEN now() ELSE reminded_1d_at END
            WHERE status = 'active' AND NOT is_trial
              AND expires_at > now() AND expires_at <= now() + make_interval(days => $1)
              AND CASE WHEN $1 = 3 THEN reminded_3d_at IS NULL AND reminded_1d_at IS NULL
                       ELSE reminded_1d_at IS NULL END
        RETURNING id, user_id, expires_at AS "expires_at!""#,
        days
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.user_id, r.expires_at)).collect())
}

/// Marks the 80% data reminder as sent; false if it was already sent.
pub async fn take_data_reminder(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE subscriptions SET reminded_80_at = now() WHERE id = $1 AND reminded_80_at IS NULL AND status = 'active'",
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An active subscription with a data cap on a node, and what it used so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedUsage {
    pub id: i64,
    pub user_id: i64,
    pub cap: i64,
    pub used: i64,
}

/// The active subscriptions with a data cap placed on a node, with their usage over all their clients.
pub async fn capped_on(db: impl PgExecutor<'_>, server_id: i64) -> sqlx::Result<Vec<CappedUsage>> {
    sqlx::query_as!(
        CappedUsage,
        r#"SELECT s.id, s.user_id, s.data_cap_bytes AS "cap!",
                  COALESCE(sum(t.up_bytes + t.down_bytes), 0)::int8 AS "used!"
             FROM subscriptions s
             JOIN clients c ON c.subscription_id = s.id
             JOIN traffic t ON t.client_id = c.id
            WHERE s.server_id = $1 AND s.status = 'active' AND s.data_cap_bytes IS NOT NULL
            GROUP BY s.id
            ORDER BY s.id"#,
        server_id
    )
    .fetch_all(db)
    .await
}

/// Pending subscriptions not placed on a node yet.
pub async fn unplaced(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!("SELECT id FROM subscriptions WHERE status = 'pending' AND server_id IS NULL ORDER BY id")
        .fetch_all(db)
        .await
}

/// Pending subscriptions placed on this node (waiting for their clients to be on it).
pub async fn pending_on(db: impl PgExecutor<'_>, server_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "SELECT id FROM subscriptions WHERE status = 'pending' AND server_id = $1 ORDER BY id",
        server_id
    )
    .fetch_all(db)
    .await
}

/// Which subscriptions the admin listing shows (all filters combine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub status: Option<SubscriptionStatus>,
    pub user_id: Option<i64>,
    pub server_id: Option<i64>,
    pub location_code: Option<String>,
    /// Ending before this instant (those with an end only).
    pub expiring_before: Option<DateTime<Utc>>,
}

/// A page of subscriptions in id order (keyset over `id`, which `subscriptions_status_id` and
/// `subscriptions_server` carry after their filter column); up to `page.fetch()` rows.
pub async fn list(
    db: impl PgExecutor<'_>,
    f: &SubscriptionFilter,
    page: &PageRequest,
) -> sqlx::Result<Vec<SubscriptionRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT id, user_id, order_id, plan_id, location_code, server_id, is_trial, status, seats, duration_days, \
         data_cap_bytes, token, starts_at, expires_at, reminded_3d_at, reminded_1d_at, reminded_80_at, ended_at, \
         end_reason FROM subscriptions WHERE true",
    );
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(user_id) = f.user_id {
        q.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(server_id) = f.server_id {
        q.push(" AND server_id = ").push_bind(server_id);
    }
    if let Some(location) = &f.location_code {
        q.push(" AND location_code = ").push_bind(location.clone());
    }
    if let Some(before) = f.expiring_before {
        q.push(" AND expires_at < ").push_bind(before);
    }
    if let Some(after) = page.after {
        q.push(" AND id ").push(page.op()).push(" ").push_bind(after.id);
    }
    q.push(format_args!(" ORDER BY id {} LIMIT ", page.dir())).push_bind(page.fetch());
    q.build_query_as().fetch_all(db).await
}
