//! The durable job queue as the rest of the system sees it: enqueue inside your transaction; workers claim,
//! finish and retry with exponential backoff until a job is dead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::config::JobSettings;
use crate::db::jobs::{self, ClaimedJob, NewJob};

/// How a job attempt ended.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// Try again after the usual backoff.
    Retry(String),
    /// Try again after this long (a dependency told us when).
    RetryAfter(Duration, String),
    /// Never retry: the job is dead with this error.
    Permanent(String),
    /// Not now, and not a failure (a resource is busy): back to the queue without using up an attempt.
    Defer(Duration),
}

/// A job about to be enqueued.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub coalesce_key: Option<String>,
    pub run_at: Option<DateTime<Utc>>,
    pub delay: Option<Duration>,
}

impl JobSpec {
    pub fn new(kind: &'static str, payload: serde_json::Value) -> JobSpec {
        JobSpec { kind, payload, idempotency_key: None, coalesce_key: None, run_at: None, delay: None }
    }

    /// Enqueue at most once for this key (e.g. one activation per subscription): a repeat within
    /// `jobs.keep_keys_days` (a year by default) is ignored, however long ago the first job finished.
    pub fn once(mut self, key: impl Into<String>) -> JobSpec {
        self.idempotency_key = Some(key.into());
        self
    }

    /// At most one queued job for this key at a time (e.g. one pending sync per node); enqueuing again while
    /// one waits moves it earlier if the new one is due sooner.
    pub fn coalesce(mut self, key: impl Into<String>) -> JobSpec {
        self.coalesce_key = Some(key.into());
        self
    }

    pub fn at(mut self, run_at: DateTime<Utc>) -> JobSpec {
        self.run_at = Some(run_at);
        self
    }

    /// Due this long from now, by the database's clock (the one workers compare run times with).
    pub fn after(mut self, delay: Duration) -> JobSpec {
        self.delay = Some(delay);
        self
    }

    /// Enqueues in the caller's transaction, in the current trace (its runs continue it). Returns `None` when a
    /// key suppressed it.
    pub async fn enqueue(&self, db: impl PgExecutor<'_>, settings: &JobSettings) -> sqlx::Result<Option<i64>> {
        debug_assert!(self.idempotency_key.is_none() || self.coalesce_key.is_none(), "one key per job");
        let trace_parent = crate::telemetry::current_traceparent();
        let job = NewJob {
            kind: self.kind,
            payload: self.payload.clone(),
            idempotency_key: self.idempotency_key.as_deref(),
            coalesce_key: self.coalesce_key.as_deref(),
            run_at: self.run_at,
            delay_secs: self.delay.map_or(0.0, |d| d.as_secs_f64()),
            max_attempts: settings.max_attempts,
            trace_parent: trace_parent.as_deref(),
        };
        jobs::enqueue(db, &job).await
    }
}

/// Withdraws a once-only job that has not started yet; true if it was still waiting.
pub async fn cancel_queued(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<bool> {
    jobs::cancel_queued(db, key).await
}

pub async fn claim(
    db: impl PgExecutor<'_>,
    worker: &str,
    settings: &JobSettings,
    limit: i64,
) -> sqlx::Result<Vec<ClaimedJob>> {
    jobs::claim(db, worker, settings.lease_secs as f64, limit).await
}

/// Deletes a done routine job instead of keeping it; false when the worker no longer held it.
pub async fn forget(db: impl PgExecutor<'_>, id: i64, worker: &str) -> sqlx::Result<bool> {
    jobs::forget(db, id, worker).await
}

/// Extends a running job's lease; false when the worker no longer holds it (another one took it over).
pub async fn renew(db: impl PgExecutor<'_>, id: i64, worker: &str, settings: &JobSettings) -> sqlx::Result<bool> {
    jobs::renew(db, id, worker, settings.lease_secs as f64).await
}

/// Puts back the jobs that workers of `instance` (`<instance>/<n>`) were running: the instance is starting
/// again, so they are not running any more. Returns how many.
pub async fn release_instance(db: impl PgExecutor<'_>, instance: &str) -> sqlx::Result<u64> {
    jobs::release_prefix(db, &format!("{instance}/")).await
}

/// Records progress inside a running job's payload, so a retry can skip what is done.
pub async fn set_progress(db: impl PgExecutor<'_>, id: i64, field: &str, value: usize) -> sqlx::Result<()> {
    jobs::set_progress(db, id, field, value).await
}

/// Deletes done jobs and once-only keys older than their configured retention; returns how many jobs.
pub async fn delete_old_done(db: &sqlx::PgPool, settings: &JobSettings) -> sqlx::Result<u64> {
    jobs::delete_keys_before(db, i32::try_from(settings.keep_keys_days).unwrap_or(i32::MAX)).await?;
    jobs::delete_done_before(db, i32::try_from(settings.keep_done_days).unwrap_or(i32::MAX)).await
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts − 1), capped.
pub fn backoff(attempts: i32, settings: &JobSettings) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(30);
    let secs = settings.backoff_base_secs.saturating_mul(1u64 << exp).min(settings.backoff_max_secs);
    Duration::from_secs(secs)
}

/// Records how an attempt ended. A failure on the last allowed attempt makes the job dead, error kept.
/// Returns false when the worker no longer held the job (its lease ran out and someone else took it).
pub async fn finish(
    db: impl PgExecutor<'_>,
    job: &ClaimedJob,
    worker: &str,
    outcome: &Outcome,
    settings: &JobSettings,
) -> sqlx::Result<bool> {
    let (error, wait) = match outcome {
        Outcome::Done => return jobs::complete(db, job.id, worker).await,
        Outcome::Defer(wait) => {
            let at = Utc::now() + chrono::Duration::from_std(*wait).unwrap_or(chrono::Duration::seconds(1));
            return jobs::defer(db, job.id, worker, at).await;
        }
        Outcome::Retry(e) => (e, Some(backoff(job.attempts, settings))),
        Outcome::RetryAfter(wait, e) => (e, Some(*wait)),
        Outcome::Permanent(e) => (e, None),
    };
    let retry_at = wait.filter(|_| job.attempts < job.max_attempts).map(|w| {
        let wait = chrono::Duration::from_std(w).unwrap_or(chrono::Duration::days(1));
        Utc::now().checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC)
    });
    jobs::fail(db, job.id, worker, error, retry_at).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JobSettings {
        JobSettings {
            workers: 1,
            poll_interval_ms: 10,
            lease_secs: 60,
            timeout_secs: 300,
            max_attempts: 5,
            backoff_base_secs: 5,
            backoff_max_secs: 60,
            keep_done_days: 1,
            keep_keys_days: 365,
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = settings();
        assert_eq!(backoff(1, &s), Duration::from_secs(5));
        assert_eq!(backoff(2, &s), Duration::from_secs(10));
        assert_eq!(backoff(3, &s), Duration::from_secs(20));
        assert_eq!(backoff(5, &s), Duration::from_secs(60), "capped");
        assert_eq!(backoff(1000, &s), Duration::from_secs(60), "no overflow");
        assert_eq!(backoff(0, &s), Duration::from_secs(5));
    }
}
