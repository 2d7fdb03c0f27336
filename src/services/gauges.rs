//! The shop's figures for monitoring, read from PostgreSQL in one short read-only transaction: what is waiting
//! (reviews, jobs, Telegram updates, broadcast recipients), what is in play (open orders, live subscriptions)
//! which nodes answer and when their certificates end. Every instance reads the same global figures.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;

use crate::db::gauges;

/// Order statuses counted (the ones not yet settled; settled orders only grow in number).
pub const OPEN_ORDER_STATUSES: [&str; 3] = ["draft", "awaiting_payment", "paid"];
/// Subscription statuses counted (the ones that hold seats on a node).
pub const LIVE_SUBSCRIPTION_STATUSES: [&str; 3] = ["pending", "active", "limited"];
/// The job queue by state: queued and due now, queued for later, running.
pub const JOB_QUEUE_STATES: [&str; 3] = ["due", "scheduled", "running"];
/// Unfinished broadcasts.
pub const BROADCAST_STATUSES: [&str; 2] = ["running", "paused"];
pub const RECIPIENT_STATUSES: [&str; 7] = ["pending", "sending", "sent", "failed", "blocked", "unknown", "skipped"];

/// One reading. Counts by label hold every known label value (0 when none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub open_orders: BTreeMap<String, i64>,
    pub subscriptions: BTreeMap<String, i64>,
    pub reviews_waiting: i64,
    /// Seconds the oldest waiting review has waited (0 when none waits).
    pub review_oldest_age_secs: f64,
    pub job_queue: BTreeMap<String, i64>,
    /// Seconds the oldest due job has waited for a worker (0 when none).
    pub job_oldest_due_age_secs: f64,
    /// Dead jobs by kind (only kinds that have some).
    pub jobs_dead: BTreeMap<String, i64>,
    pub inbox_pending: i64,
    /// Seconds the oldest unhandled Telegram update has waited (0 when none).
    pub inbox_oldest_age_secs: f64,
    pub broadcasts: BTreeMap<String, i64>,
    /// Recipients of unfinished broadcasts by status.
    pub broadcast_recipients: BTreeMap<String, i64>,
    /// Node name → whether its last operation succeeded.
    pub nodes_up: Vec<(String, bool)>,
    /// Node name → when its earliest TLS certificate ends, Unix seconds (nodes whose certificates were read).
    pub node_certificates: Vec<(String, f64)>,
    /// When this was read (the database's clock), Unix seconds.
    pub read_at: f64,
}

fn zeroes(labels: &[&str]) -> BTreeMap<String, i64> {
    labels.iter().map(|l| ((*l).to_owned(), 0)).collect()
}

/// Reads the figures in one read-only transaction whose statements stop after `timeout`.
pub async fn read(pool: &PgPool, timeout: Duration) -> anyhow::Result<Figures> {
    let reading = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
        let ms = timeout.as_millis().max(1);
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL statement_timeout = {ms}"))).execute(&mut *tx).await?;
        let scalars = gauges::scalars(&mut tx).await?;
        let counts = gauges::counts(&mut tx).await?;
        let nodes_up = gauges::nodes_up(&mut tx).await?;
        let node_certificates = gauges::node_certificates(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>((scalars, counts, nodes_up, node_certificates))
    };
    // the statement timeout stops a slow query; this also bounds waiting for a connection
    let (scalars, counts, nodes_up, node_certificates) = tokio::time::timeout(timeout * 2, reading)
        .await
        .map_err(|_| anyhow::anyhow!("reading the figures took longer than {} ms", (timeout * 2).as_millis()))??;
    let mut f = Figures {
        open_orders: zeroes(&OPEN_ORDER_STATUSES),
        subscriptions: zeroes(&LIVE_SUBSCRIPTION_STATUSES),
        reviews_waiting: scalars.reviews,
        review_oldest_age_secs: scalars.review_age.unwrap_or(0.0).max(0.0),
        job_queue: zeroes(&JOB_QUEUE_STATES),
        job_oldest_due_age_secs: scalars.job_age.unwrap_or(0.0).max(0.0),
        jobs_dead: BTreeMap::new(),
        inbox_pending: scalars.inbox,
        inbox_oldest_age_secs: scalars.inbox_age.unwrap_or(0.0).max(0.0),
        broadcasts: zeroes(&BROADCAST_STATUSES),
        broadcast_recipients: zeroes(&RECIPIENT_STATUSES),
        nodes_up,
        node_certificates,
        read_at: scalars.now,
    };
    for c in counts {
        let figure = match c.figure.as_str() {
            "orders" => &mut f.open_orders,
            "subscriptions" => &mut f.subscriptions,
            "jobs" => &mut f.job_queue,
            "dead" => &mut f.jobs_dead,
            "broadcasts" => &mut f.broadcasts,
            "recipients" => &mut f.broadcast_recipients,
            _ => continue,
        };
        figure.insert(c.label, c.n);
    }
    Ok(f)
}
