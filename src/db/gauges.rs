//! Read-only figures across tables for monitoring: counts of the rows still in play (open orders, live
//! subscriptions, reviews, the job queue, the Telegram inbox, unfinished broadcasts), node health and the
//! nodes' certificate ends. Every
//! query reads a partial or status index, so its cost follows the rows in play, not the table's history.

use sqlx::PgConnection;

/// The single figures, in one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalars {
    pub reviews: i64,
    /// Seconds since the oldest review still waiting was submitted.
    pub review_age: Option<f64>,
    pub inbox: i64,
    /// Seconds since the oldest unhandled Telegram update was stored.
    pub inbox_age: Option<f64>,
    /// Seconds the oldest due, unclaimed job has been due.
    pub job_age: Option<f64>,
    /// The database's clock, Unix seconds.
    pub now: f64,
}

pub async fn scalars(conn: &mut PgConnection) -> sqlx::Result<Scalars> {
    let r = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM payments WHERE status = 'under_review') AS "reviews!",
             (SELECT extract(epoch FROM now() - min(coalesce(submitted_at, created_at)))::float8
                FROM payments WHERE status = 'under_review') AS review_age,
             (SELECT count(*) FROM telegram_updates WHERE handled_at IS NULL) AS "inbox!",
             (SELECT extract(epoch FROM now() - min(received_at))::float8
                FROM telegram_updates WHERE handled_at IS NULL) AS inbox_age,
             (SELECT extract(epoch FROM now() - min(run_at))::float8
                FROM jobs WHERE status = 'queued' AND run_at <= now()) AS job_age,
             extract(epoch FROM now())::float8 AS "now!""#
    )
    .fetch_one(conn)
    .await?;
    Ok(Scalars {
        reviews: r.reviews,
        review_age: r.review_age,
        inbox: r.inbox,
        inbox_age: r.inbox_age,
        job_age: r.job_age,
        now: r.now,
    })
}

/// One count: which figure (`orders`, `subscriptions`, `jobs`, `dead`, `broadcasts`, `recipients`), the label
/// value it is counted by, and the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub figure: String,
    pub label: String,
    pub n: i64,
}

/// Rows in play by status: orders not yet decided, subscriptions that hold seats, queued and running jobs
/// (queued ones split into due and scheduled), dead jobs by kind, unfinished broadcasts and their recipients.
pub async fn counts(conn: &mut PgConnection) -> sqlx::Result<Vec<Count>> {
    sqlx::query_as!(
        Count,
        r#"SELECT 'orders' AS "figure!", status AS "label!", count(*) AS "n!" FROM orders
            WHERE status IN ('draft', 'awaiting_payment', 'paid') GROUP BY status
           UNION ALL
           SELECT 'subscriptions', status, count(*) FROM subscriptions
            WHERE status IN ('pending', 'active', 'limited') GROUP BY status
           UNION ALL
           SELECT 'jobs', CASE WHEN status = 'running' THEN 'running' WHEN run_at <= now() THEN 'due' ELSE 'scheduled' END,
                  count(*)
             FROM jobs WHERE status IN ('queued', 'running') GROUP BY 2
           UNION ALL
           SELECT 'dead', kind, count(*) FROM jobs WHERE status = 'dead' GROUP BY kind
           UNION ALL
           SELECT 'broadcasts', status, count(*) FROM broadcasts WHERE status IN ('running', 'paused') GROUP BY status
           UNION ALL
           SELECT 'recipients', r.status, count(*)
             FROM broadcast_recipients r JOIN broadcasts b ON b.id = r.broadcast_id
            WHERE b.status IN ('running', 'paused') GROUP BY r.status"#
    )
    .fetch_all(conn)
    .await
}

/// Each node's name and whether its last operation (by any instance) succeeded.
pub async fn nodes_up(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, bool)>> {
    let rows =
        sqlx::query!(r#"SELECT name, health = 'ok' AS "up!" FROM servers ORDER BY name"#).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| (r.name, r.up)).collect())
}

/// Each node's earliest TLS certificate end (Unix seconds), for nodes whose certificates were read.
pub async fn node_certificates(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, f64)>> {
    let rows = sqlx::query!(
        r#"SELECT name, extract(epoch FROM tls_not_after)::float8 AS "not_after!"
             FROM servers WHERE tls_not_after IS NOT NULL ORDER BY name"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.not_after)).collect())
}
