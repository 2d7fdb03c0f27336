//! The `broadcasts` and `broadcast_recipients` tables: a message to many customers, and one row per customer it
//! goes to (made when the broadcast is created), claimed a few at a time by the sender.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::domain::page::PageRequest;

crate::text_enum! {
    /// Where a broadcast stands: `running ⇄ paused → cancelled`; `running → done` when nobody is left.
    pub enum BroadcastStatus {
        Running => "running",
        Paused => "paused",
        Cancelled => "cancelled",
        Done => "done",
    }
}

crate::text_enum! {
    /// Where one recipient stands: `pending → sending → sent | failed | blocked`; `sending → unknown` when the
    /// claim ran out (its sender died mid-send: never sent again); `pending → skipped` when cancelled.
    pub enum RecipientStatus {
        Pending => "pending",
        Sending => "sending",
        Sent => "sent",
        Failed => "failed",
        Blocked => "blocked",
        Unknown => "unknown",
        Skipped => "skipped",
    }
}

/// Who a broadcast goes to (stored as JSON in `broadcasts.audience`). Banned customers and customers who blocked
/// the bot are never in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// Every customer.
    All,
    /// Customers with an active (or data-limited) subscription.
    Active,
    /// Customers whose subscription expired in the last `days` days and who have none running now.
    Expired { days: i32 },
    /// Customers who never paid for an order (trial users included).
    NeverBought,
    /// Customers with an active (or data-limited) subscription in this location.
    Location { location: String },
}

/// Adds the `WHERE` condition on `users u` that selects `audience`.
fn push_audience(q: &mut QueryBuilder<Postgres>, audience: &Audience) {
    q.push(" WHERE u.banned_at IS NULL AND u.blocked_bot_at IS NULL");
    const RUNNING: &str = "s.user_id = u.id AND s.status IN ('active', 'limited')";
    match audience {
        Audience::All => {}
        Audience::Active => {
            q.push(" AND EXISTS (SELECT 1 FROM subscriptions s WHERE ").push(RUNNING).push(")");
        }
        Audience::Expired { days } => {
            q.push(
                " AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id \
                   AND s.status IN ('pending', 'active', 'limited')) \
                  AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id AND s.status = 'expired' \
                   AND s.expires_at <= now() AND s.expires_at >= now() - make_interval(days => ",
            )
            .push_bind(*days)
            .push("))");
        }
        Audience::NeverBought => {
            q.push(
                " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id \
                   AND o.status IN ('paid', 'fulfilled', 'refunded'))",
            );
        }
        Audience::Location { location } => {
            q.push(" AND EXISTS (SELECT 1 FROM subscriptions s WHERE ")
                .push(RUNNING)
                .push(" AND s.location_code = ")
                .push_bind(location.clone())
                .push(")");
        }
    }
}

/// How many customers `audience` holds now.
pub async fn count_audience(db: impl PgExecutor<'_>, audience: &Audience) -> sqlx::Result<i64> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM users u");
    push_audience(&mut q, audience);
    q.build_query_scalar().fetch_one(db).await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BroadcastRow {
    pub id: i64,
    pub texts: serde_json::Value,
    pub fallback: String,
    pub audience: serde_json::Value,
    pub status: BroadcastStatus,
    pub total: i32,
    pub created_by_kind: String,
    pub created_by_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, texts, fallback, audience, status, total, created_by_kind, created_by_id, created_at, finished_at";

/// A new broadcast.
pub struct NewBroadcast<'a> {
    pub texts: &'a serde_json::Value,
    pub fallback: &'a str,
    pub audience: &'a Audience,
    pub created_by_kind: &'a str,
    pub created_by_id: Option<&'a str>,
}

/// Inserts a running broadcast and its recipients (the audience as it is now); returns it with its total.
pub async fn create(conn: &mut PgConnection, new: &NewBroadcast<'_>) -> sqlx::Result<BroadcastRow> {
    let audience = serde_json::to_value(new.audience).unwrap_or_default();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO broadcasts (texts, fallback, audience, total, created_by_kind, created_by_id)
         VALUES ($1, $2, $3, 0, $4, $5) RETURNING id",
    )
    .bind(new.texts)
    .bind(new.fallback)
    .bind(&audience)
    .bind(new.created_by_kind)
    .bind(new.created_by_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut q =
        QueryBuilder::new("INSERT INTO broadcast_recipients (broadcast_id, user_id, chat_id, language) SELECT ");
    q.push_bind(id).push(", u.id, u.telegram_id, u.language FROM users u");
    push_audience(&mut q, new.audience);
    let total = q.build().execute(&mut *conn).await?.rows_affected();
    let mut q = QueryBuilder::new("UPDATE broadcasts SET total = ");
    q.push_bind(i32::try_from(total).unwrap_or(i32::MAX)).push(" WHERE id = ").push_bind(id);
    q.push(" RETURNING ").push(COLUMNS);
    q.build_query_as().fetch_one(&mut *conn).await
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<BroadcastRow>> {
    let mut q = QueryBuilder::new("SELECT ");
    q.push(COLUMNS).push(" FROM broadcasts WHERE id = ").push_bind(id);
    q.build_query_as().fetch_optional(db).await
}

/// Locks the broadcast's row for a state change.
pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<BroadcastRow>> {
    let mut q = QueryBuilder::new("SELECT ");
    q.push(COLUMNS).push(" FROM broadcasts WHERE id = ").push_bind(id).push(" FOR UPDATE");
    q.build_query_as().fetch_optional(&mut *conn).await
}

/// Moves a broadcast from `from` to `to` (`finished_at` set for the final states); `None` if it was not in `from`.
pub async fn transition(
    db: impl PgExecutor<'_>,
    id: i64,
    from: BroadcastStatus,
    to: BroadcastStatus,
) -> sqlx::Result<Option<BroadcastRow>> {
    let mut q = QueryBuilder::new("UPDATE broadcasts SET status = ");
    q.push_bind(to.as_str());
    if matches!(to, BroadcastStatus::Cancelled | BroadcastStatus::Done) {
        q.push(", finished_at = now()");
    }
    q.push(" WHERE id = ").push_bind(id).push(" AND status = ").push_bind(from.as_str());
    q.push(" RETURNING ").push(COLUMNS);
    q.build_query_as().fetch_optional(db).await
}

/// A page of broadcasts by (created_at, id), optionally of one status.
pub async fn page(
    db: impl PgExecutor<'_>,
    status: Option<BroadcastStatus>,
    page: &PageRequest,
) -> sqlx::Result<Vec<BroadcastRow>> {
    let mut q = QueryBuilder::new("SELECT ");
    q.push(COLUMNS).push(" FROM broadcasts WHERE TRUE");
    if let Some(status) = status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(after) = page.after {
        q.push(" AND (created_at, id) ").push(page.op()).push(" (");
        q.push_bind(after.time()).push(", ").push_bind(after.id).push(")");
    }
    q.push(" ORDER BY created_at ").push(page.dir()).push(", id ").push(page.dir()).push(" LIMIT ");
    q.push_bind(page.fetch());
    q.build_query_as().fetch_all(db).await
}

/// Recipients by status, per broadcast: `(broadcast_id, status, count)`.
pub async fn counts(db: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<(i64, RecipientStatus, i64)>> {
    sqlx::query_as(
        "SELECT broadcast_id, status, count(*) FROM broadcast_recipients
          WHERE broadcast_id = ANY($1) GROUP BY broadcast_id, status",
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

/// Cancelling: recipients not claimed yet are skipped; returns how many.
pub async fn skip_pending(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<u64> {
    sqlx::query(
        "UPDATE broadcast_recipients SET status = 'skipped', done_at = now()
          WHERE broadcast_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// A recipient claimed for sending.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Claimed {
    pub user_id: i64,
    pub chat_id: i64,
    pub language: String,
    /// Attempts before this one.
    pub attempts: i32,
}

/// Claims up to `limit` pending recipients of a running broadcast for `claimant` until `claim_secs` from now.
/// Commit before sending: the claim is what keeps anyone else from sending to them.
pub async fn claim(
    db: impl PgExecutor<'_>,
    id: i64,
    claimant: &str,
    limit: i64,
    claim_secs: f64,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(
        "UPDATE broadcast_recipients r
            SET status = 'sending', claimed_by = $2, claimed_until = now() + make_interval(secs => $4),
                send_started_at = NULL
           FROM (SELECT user_id FROM broadcast_recipients
                  WHERE broadcast_id = $1 AND status = 'pending'
                    AND EXISTS (SELECT 1 FROM broadcasts b WHERE b.id = $1 AND b.status = 'running')
                  ORDER BY user_id LIMIT $3 FOR UPDATE SKIP LOCKED) c
          WHERE r.broadcast_id = $1 AND r.user_id = c.user_id
         RETURNING r.user_id, r.chat_id, r.language, r.attempts",
    )
    .bind(id)
    .bind(claimant)
    .bind(limit)
    .bind(claim_secs)
    .fetch_all(db)
    .await
}

/// Extends `claimant`'s claim on a recipient still being sent (at least `claim_secs` from now); false when the
/// claim is no longer theirs (it ran out and the recipient is `unknown`): then it must not be sent.
/// With `sending`, the message is about to go out (a claim that runs out from here on is `unknown`); without,
/// nothing is in flight for it (Telegram said it was not delivered).
pub async fn renew(
    db: impl PgExecutor<'_>,
    id: i64,
    user_id: i64,
    claimant: &str,
    claim_secs: f64,
    sending: bool,
) -> sqlx::Result<bool> {
    sqlx::query(
        "UPDATE broadcast_recipients SET claimed_until = now() + make_interval(secs => $4),
                send_started_at = CASE WHEN $5 THEN now() END
          WHERE broadcast_id = $1 AND user_id = $2 AND claimed_by = $3 AND status = 'sending'
            AND claimed_until > now()",
    )
    .bind(id)
    .bind(user_id)
    .bind(claimant)
    .bind(claim_secs)
    .bind(sending)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Records how `claimant`'s send ended (`sent`, `failed`, `blocked`, `unknown`, or `pending` to try again);
/// a claim that ran out meanwhile (`unknown`) still takes the real outcome. False when it was not theirs.
pub async fn settle(
    db: impl PgExecutor<'_>,
    id: i64,
    user_id: i64,
    claimant: &str,
    status: RecipientStatus,
    error: Option<&str>,
) -> sqlx::Result<bool> {
    sqlx::query(
        "UPDATE broadcast_recipients
            SET status = $4, error = $5, attempts = attempts + 1, claimed_until = NULL,
                done_at = CASE WHEN $4 = 'pending' THEN NULL ELSE now() END
          WHERE broadcast_id = $1 AND user_id = $2 AND claimed_by = $3 AND status IN ('sending', 'unknown')",
    )
    .bind(id)
    .bind(user_id)
    .bind(claimant)
    .bind(status.as_str())
    .bind(error)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Hands a claimed recipient back untouched (it was not sent: a pause, or Telegram asked us to wait too long).
pub async fn release(db: impl PgExecutor<'_>, id: i64, user_id: i64, claimant: &str) -> sqlx::Result<bool> {
    sqlx::query(
        "UPDATE broadcast_recipients SET status = 'pending', claimed_by = NULL, claimed_until = NULL
          WHERE broadcast_id = $1 AND user_id = $2 AND claimed_by = $3 AND status = 'sending'",
    )
    .bind(id)
    .bind(user_id)
    .bind(claimant)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Claims that ran out (their sender died): those whose message had started to go out become `unknown` (maybe
/// delivered, never sent again), the others `pending` again. Returns how many became `unknown`.
pub async fn expire_claims(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<u64> {
    // a claim whose send had not started goes back to `pending` (nothing went out, it is sent later)
    let unknown: i64 = sqlx::query_scalar(
        "WITH expired AS (
            UPDATE broadcast_recipients
               SET status = CASE WHEN send_started_at IS NULL THEN 'pending' ELSE 'unknown' END,
                   claimed_by = CASE WHEN send_started_at IS NULL THEN NULL ELSE claimed_by END,
                   claimed_until = CASE WHEN send_started_at IS NULL THEN NULL ELSE claimed_until END,
                   done_at = CASE WHEN send_started_at IS NULL THEN NULL ELSE now() END,
                   error = CASE WHEN send_started_at IS NULL THEN error
                                ELSE 'its sender stopped mid-send; not sent again' END
             WHERE broadcast_id = $1 AND status = 'sending' AND claimed_until <= now()
         RETURNING status)
         SELECT count(*) FROM expired WHERE status = 'unknown'",
    )
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok(unknown as u64)
}

/// How long until the earliest live claim of the broadcast runs out (`None`: nothing is being sent).
pub async fn next_claim_end(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar(
        "SELECT greatest(0, extract(epoch FROM min(claimed_until) - now()))::float8
           FROM broadcast_recipients WHERE broadcast_id = $1 AND status = 'sending'",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

/// Ends a running broadcast nobody is left in (`done`); false when someone is still pending or being sent.
pub async fn finish_if_done(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<bool> {
    sqlx::query(
        "UPDATE broadcasts SET status = 'done', finished_at = now()
          WHERE id = $1 AND status = 'running'
            AND NOT EXISTS (SELECT 1 FROM broadcast_recipients
                             WHERE broadcast_id = $1 AND status IN ('pending', 'sending'))",
    )
    .bind(id)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// The customer blocked the bot: left out of later broadcasts.
pub async fn mark_user_blocked(db: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET blocked_bot_at = now() WHERE id = $1 AND blocked_bot_at IS NULL")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// The broadcast's status, for the sender to look at between batches.
pub async fn status(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<BroadcastStatus>> {
    sqlx::query_scalar("SELECT status FROM broadcasts WHERE id = $1").bind(id).fetch_optional(db).await
}

/// A broadcast as one customer got it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub broadcast_id: i64,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    /// `pending`, `sending`, `sent`, `failed`, `blocked`, `unknown` or `skipped`.
    pub status: String,
    /// The text in the customer's language (else the broadcast's fallback).
    pub text: Option<String>,
}

/// The newest broadcasts addressed to a customer, newest first.
pub async fn deliveries_to(db: impl PgExecutor<'_>, user_id: i64, limit: i64) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT b.id AS broadcast_id, b.created_at, r.done_at, r.status,
                  COALESCE(b.texts->>r.language, b.texts->>b.fallback) AS text
             FROM broadcast_recipients r JOIN broadcasts b ON b.id = r.broadcast_id
            WHERE r.user_id = $1 ORDER BY b.id DESC LIMIT $2"#,
        user_id,
        limit
    )
    .fetch_all(db)
    .await
}
