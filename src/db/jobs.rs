//! The `jobs` table: durable side effects. Claimed with `FOR UPDATE SKIP LOCKED` under a lease, so any number
//! of workers in any number of processes share it and a crashed worker's job is picked up when its lease ends.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A job to enqueue. With an idempotency key, enqueuing the same key twice keeps the first job only (for as
/// long as the key is kept, `jobs.keep_keys_days`); with a coalescing key, at most one job per key waits in
/// the queue at a time. A job has one or the other, not both.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: serde_json::Value,
    pub idempotency_key: Option<&'a str>,
    pub coalesce_key: Option<&'a str>,
    pub run_at: Option<DateTime<Utc>>,
    /// Without `run_at`: due this many seconds from now by the database's clock.
    pub delay_secs: f64,
    pub max_attempts: i32,
    /// The W3C `traceparent` of the span that enqueued it: its runs continue that trace.
    pub trace_parent: Option<&'a str>,
}

/// The channel workers listen on; every enqueue notifies it when its transaction commits.
pub const WAKE_CHANNEL: &str = "vpnshop_jobs";

/// A claimed job.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Attempts including this one.
    pub attempts: i32,
    pub max_attempts: i32,
    /// The trace it was enqueued in (W3C `traceparent`).
    pub trace_parent: Option<String>,
}

/// Inserts a job and wakes idle workers (on commit); returns its id, or `None` when nothing was inserted.
/// - With an idempotency key: the key is recorded in `job_keys` (kept longer than the jobs), and a key used
///   before means no job.
/// - With a coalescing key: at most one job per key waits in the queue; enqueuing again while one waits only
///   moves its run time earlier (if the new one is due sooner; then its id is returned).
pub async fn enqueue(db: impl PgExecutor<'_>, job: &NewJob<'_>) -> sqlx::Result<Option<i64>> {
    match (job.idempotency_key, job.coalesce_key) {
        (Some(key), _) => {
            sqlx::query_scalar!(
                r#"WITH key AS (
                       INSERT INTO job_keys (key) VALUES ($3) ON CONFLICT DO NOTHING RETURNING key),
                   ins AS (
                       INSERT INTO jobs (kind, payload, idempotency_key, run_at, max_attempts, trace_parent)
                       SELECT $1, $2, key.key, COALESCE($4, now() + make_interval(secs => $6)), $5, $7 FROM key
                       ON CONFLICT DO NOTHING
                       RETURNING id)
                   SELECT ins.id AS "id!" FROM ins, LATERAL (SELECT pg_notify('vpnshop_jobs', '')) AS wake"#,
                job.kind,
                job.payload,
                key,
                job.run_at,
                job.max_attempts,
                job.delay_secs,
                job.trace_parent,
            )
            .fetch_optional(db)
            .await
        }
        (None, Some(coalesce)) => {
            sqlx::query_scalar!(
                r#"WITH ins AS (
                       INSERT INTO jobs (kind, payload, coalesce_key, run_at, max_attempts, trace_parent)
                       VALUES ($1, $2, $3, COALESCE($4, now() + make_interval(secs => $6)), $5, $7)
                       ON CONFLICT (coalesce_key) WHERE status = 'queued'
                       DO UPDATE SET run_at = EXCLUDED.run_at, updated_at = now() WHERE EXCLUDED.run_at < jobs.run_at
                       RETURNING id)
                   SELECT ins.id AS "id!" FROM ins, LATERAL (SELECT pg_notify('vpnshop_jobs', '')) AS wake"#,
                job.kind,
                job.payload,
                coalesce,
                job.run_at,
                job.max_attempts,
                job.delay_secs,
                job.trace_parent,
            )
            .fetch_optional(db)
            .await
        }
        (None, None) => {
            sqlx::query_scalar!(
                r#"WITH ins AS (
                       INSERT INTO jobs (kind, payload, run_at, max_attempts, trace_parent)
                       VALUES ($1, $2, COALESCE($3, now() + make_interval(secs => $5)), $4, $6)
                       RETURNING id)
                   SELECT ins.id AS "id!" FROM ins, LATERAL (SELECT pg_notify('vpnshop_jobs', '')) AS wake"#,
                job.kind,
                job.payload,
                job.run_at,
                job.max_attempts,
                job.delay_secs,
                job.trace_parent,
            )
            .fetch_optional(db)
            .await
        }
    }
}

/// Deletes the queued (not yet started) job with this idempotency key; true if there was one.
pub async fn cancel_queued(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<bool> {
    let done =
        sqlx::query!("DELETE FROM jobs WHERE idempotency_key = $1 AND status = 'queued'", key).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

/// Claims up to `limit` due jobs for `worker` for `lease_secs`: queued jobs whose time has come, and running
/// jobs whose lease ran out (their worker died).
pub async fn claim(
    db: impl PgExecutor<'_>,
    worker: &str,
    lease_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<ClaimedJob>> {
    sqlx::query_as!(
        ClaimedJob,
        r#"UPDATE jobs
              SET status = 'running', attempts = attempts + 1, locked_by = $1,
                  locked_until = now() + make_interval(secs => $2), updated_at = now()
            WHERE id IN (SELECT id FROM jobs
                          WHERE (status = 'queued' AND run_at <= now())
                             OR (status = 'running' AND locked_until < now())
                          ORDER BY run_at, id
                          LIMIT $3
                          FOR UPDATE SKIP LOCKED)
        RETURNING id, kind, payload, attempts, max_attempts, trace_parent"#,
        worker,
        lease_secs,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Extends the lease of a job `worker` runs; false when it no longer holds it.
pub async fn renew(db: impl PgExecutor<'_>, id: i64, worker: &str, lease_secs: f64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE jobs SET locked_until = now() + make_interval(secs => $3)
            WHERE id = $1 AND locked_by = $2 AND status = 'running'"#,
        id,
        worker,
        lease_secs,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Returns the running jobs of every worker whose name starts with `prefix` to the queue, due now (their
/// attempt counts). One whose coalescing key has another job waiting (or is released here too, with a lower
/// id) is done instead: that one covers it.
pub async fn release_prefix(db: impl PgExecutor<'_>, prefix: &str) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"WITH released AS (
               SELECT j.id,
                      j.coalesce_key IS NOT NULL AND EXISTS (
                          SELECT 1 FROM jobs q
                           WHERE q.coalesce_key = j.coalesce_key AND q.id <> j.id
                             AND (q.status = 'queued'
                                  OR (q.status = 'running' AND starts_with(q.locked_by, $1) AND q.id < j.id)))
                          AS covered
                 FROM jobs j
                WHERE j.status = 'running' AND starts_with(j.locked_by, $1))
           UPDATE jobs
              SET status = CASE WHEN r.covered THEN 'done' ELSE 'queued' END,
                  finished_at = CASE WHEN r.covered THEN now() END,
                  run_at = now(), locked_by = NULL, locked_until = NULL, updated_at = now(),
                  last_error = 'its instance restarted while it ran'
             FROM released r
            WHERE jobs.id = r.id"#,
        prefix,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes a finished routine job (a metering pass) instead of keeping it, if `worker` still holds it.
pub async fn forget(db: impl PgExecutor<'_>, id: i64, worker: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM jobs WHERE id = $1 AND locked_by = $2 AND status = 'running'", id, worker)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a job done, if `worker` still holds it.
pub async fn complete(db: impl PgExecutor<'_>, id: i64, worker: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE jobs SET status = 'done', finished_at = now(), updated_at = now(), locked_by = NULL,
                           locked_until = NULL, last_error = NULL
            WHERE id = $1 AND locked_by = $2 AND status = 'running'"#,
        id,
        worker,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a job back without counting the attempt. If an equal job (same coalescing key) was queued
/// meanwhile, this one is done instead: the queued one covers it.
pub async fn defer(db: impl PgExecutor<'_>, id: i64, worker: &str, run_at: DateTime<Utc>) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE jobs
              SET status = CASE WHEN coalesce_key IS NOT NULL AND EXISTS
                                    (SELECT 1 FROM jobs q WHERE q.coalesce_key = jobs.coalesce_key
                                        AND q.status = 'queued' AND q.id <> jobs.id)
                                THEN 'done' ELSE 'queued' END,
                  attempts = GREATEST(attempts - 1, 0), run_at = $3,
                  finished_at = NULL, locked_by = NULL, locked_until = NULL, updated_at = now()
            WHERE id = $1 AND locked_by = $2 AND status = 'running'"#,
        id,
        worker,
        run_at,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed attempt: back to the queue at `retry_at`, or dead when `retry_at` is `None`. A job whose
/// coalescing key already has a queued successor is marked done instead of queued (the successor retries).
pub async fn fail(
    db: impl PgExecutor<'_>,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE jobs
              SET status = CASE WHEN $4::timestamptz IS NULL THEN 'dead'
                                WHEN coalesce_key IS NOT NULL AND EXISTS
                                    (SELECT 1 FROM jobs q WHERE q.coalesce_key = jobs.coalesce_key
                                        AND q.status = 'queued' AND q.id <> jobs.id) THEN 'done'
                                ELSE 'queued' END,
                  run_at = COALESCE($4, run_at),
                  finished_at = CASE WHEN $4::timestamptz IS NULL THEN now() END,
                  last_error = $3, locked_by = NULL, locked_until = NULL, updated_at = now()
            WHERE id = $1 AND locked_by = $2 AND status = 'running'"#,
        id,
        worker,
        error,
        retry_at,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes once-only keys older than `days` (a repeat of such a key could enqueue its job again).
pub async fn delete_keys_before(db: impl PgExecutor<'_>, days: i32) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM job_keys WHERE created_at < now() - make_interval(days => $1)", days)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes finished (done) jobs older than `days`; dead jobs stay for an operator to look at.
pub async fn delete_done_before(db: impl PgExecutor<'_>, days: i32) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM jobs WHERE status = 'done' AND finished_at < now() - make_interval(days => $1)",
        days
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Job counts per status (for metrics and the dashboard).
pub async fn counts(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(r#"SELECT status, count(*) AS "n!" FROM jobs GROUP BY status ORDER BY status"#)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

/// Status, attempts and last error of one job.
pub async fn state(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<(String, i32, Option<String>)>> {
    let row =
        sqlx::query!("SELECT status, attempts, last_error FROM jobs WHERE id = $1", id).fetch_optional(db).await?;
    Ok(row.map(|r| (r.status, r.attempts, r.last_error)))
}

/// Records progress inside a running job's payload (`payload[field] = value`), so a retry can skip done work.
pub async fn set_progress(db: impl PgExecutor<'_>, id: i64, field: &str, value: usize) -> sqlx::Result<()> {
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    sqlx::query!(
        "UPDATE jobs SET payload = jsonb_set(payload, ARRAY[$2::text], to_jsonb($3::int8)), updated_at = now() WHERE id = $1",
        id,
        field,
        value
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A message of a `telegram.send` job (the bot's outbox) to one chat.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxLine {
    pub job_id: i64,
    pub created_at: DateTime<Utc>,
    /// `text` or `qr`.
    pub kind: String,
    /// The text (HTML) or the caption.
    pub text: Option<String>,
    /// Whether it went out (the job recorded it as sent, or finished).
    pub sent: bool,
    /// The job gave up.
    pub failed: bool,
}

/// The newest outbox messages to `chat_id` still kept (finished jobs are pruned after a while), newest first.
pub async fn outbox_of_chat(db: impl PgExecutor<'_>, chat_id: i64, limit: i64) -> sqlx::Result<Vec<OutboxLine>> {
    sqlx::query_as!(
        OutboxLine,
        r#"SELECT j.id AS job_id, j.created_at, COALESCE(m.value->>'type', 'text') AS "kind!",
                  COALESCE(m.value->>'text', m.value->>'caption') AS text,
                  (j.status = 'done' OR m.n <= COALESCE((j.payload->>'sent')::bigint, 0)) AS "sent!",
                  (j.status = 'dead') AS "failed!"
             FROM jobs j, jsonb_array_elements(j.payload->'messages') WITH ORDINALITY AS m(value, n)
            WHERE j.kind = 'telegram.send' AND jsonb_typeof(j.payload->'messages') = 'array'
              AND m.value->>'chat_id' = $1::bigint::text
            ORDER BY j.id DESC, m.n DESC LIMIT $2"#,
        chat_id,
        limit
    )
    .fetch_all(db)
    .await
}
