//! The worker pool: each worker claims one due job at a time, runs its handler and records the outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Outcome, Registry};
use crate::config::JobSettings;
use crate::db::jobs::ClaimedJob;
use crate::services::queue;

/// A worker; `name` must be unique across all processes (it is the lock holder's name).
pub struct Worker {
    pub name: String,
    pub pool: PgPool,
    pub registry: Arc<Registry>,
    pub settings: JobSettings,
    /// Fired when new jobs are enqueued anywhere (Postgres NOTIFY), so idle workers need not wait a poll.
    pub wake: Arc<Notify>,
}

impl Worker {
    pub fn new(name: impl Into<String>, pool: PgPool, registry: Arc<Registry>, settings: JobSettings) -> Worker {
        Worker { name: name.into(), pool, registry, settings, wake: Arc::new(Notify::new()) }
    }

    /// Runs until cancelled; an in-flight job is finished first.
    pub async fn run(self, cancel: CancellationToken) {
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        while !cancel.is_cancelled() {
            // listen before looking, so a job enqueued while we look still wakes us
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let worked = match self.run_once().await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(worker = %self.name, error = %e, "job queue unavailable");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(idle) => {}
                    _ = woken => {}
                }
            }
        }
    }

    /// Claims and runs at most one job; returns whether there was one.
    pub async fn run_once(&self) -> sqlx::Result<bool> {
        let Some(job) = queue::claim(&self.pool, &self.name, &self.settings, 1).await?.pop() else {
            return Ok(false);
        };
        let span = tracing::info_span!(
            "job",
            otel.name = format!("job {}", job.kind),
            job.id = job.id,
            job.kind = %job.kind,
            job.attempt = job.attempts,
        );
        // every attempt is a child of the span that enqueued the job (see telemetry::context)
        crate::telemetry::continue_trace(&span, job.trace_parent.as_deref());
        let started = Instant::now();
        let Some(outcome) = self.execute(&job).instrument(span.clone()).await else {
            // another worker owns the job now: it records the outcome, not us
            span.in_scope(|| tracing::warn!("job lease was lost while it ran; stopped it, another worker owns it now"));
            metrics::counter!("vpnshop_jobs_total", "kind" => job.kind.clone(), "outcome" => "lost").increment(1);
            return Ok(true);
        };
        let label = match &outcome {
            Outcome::Done => "done",
            Outcome::Defer(_) => "deferred",
            Outcome::Retry(_) | Outcome::RetryAfter(..) if job.attempts < job.max_attempts => "retry",
            _ => "dead",
        };
        metrics::counter!("vpnshop_jobs_total", "kind" => job.kind.clone(), "outcome" => label).increment(1);
        metrics::histogram!("vpnshop_job_duration_seconds", "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        span.in_scope(|| match &outcome {
            Outcome::Done => tracing::debug!("job done"),
            Outcome::Defer(wait) => tracing::debug!(wait_ms = wait.as_millis() as u64, "job deferred"),
            Outcome::Retry(e) | Outcome::RetryAfter(_, e) | Outcome::Permanent(e) if label == "dead" => {
                tracing::error!(error = %e, "job is dead")
            }
            Outcome::Retry(e) | Outcome::RetryAfter(_, e) | Outcome::Permanent(e) => {
                tracing::warn!(error = %e, "job failed, will retry")
            }
        });
        let keep = self.registry.get(&job.kind).is_none_or(|h| h.keep_done());
        if matches!(outcome, Outcome::Done) && !keep {
            if !queue::forget(&self.pool, job.id, &self.name).await? {
                span.in_scope(|| tracing::warn!("job lease was lost before it finished; another worker owns it now"));
            }
            return Ok(true);
        }
        let mut recorded = queue::finish(&self.pool, &job, &self.name, &outcome, &self.settings).await;
        for _ in 0..3 {
            match &recorded {
                // an equal job was queued between our check and our update: another try sees it
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    recorded = queue::finish(&self.pool, &job, &self.name, &outcome, &self.settings).await;
                }
                _ => break,
            }
        }
        if !recorded? {
            span.in_scope(|| tracing::warn!("job lease was lost before it finished; another worker owns it now"));
        }
        Ok(true)
    }

    /// Runs the job's handler, renewing the job's lease every third of `jobs.lease_secs` while it runs, and
    /// stopping it after `jobs.timeout_secs`. `None` when the lease was lost (the handler is stopped: another
    /// worker took the job over, so it must not run twice at once).
    async fn execute(&self, job: &ClaimedJob) -> Option<Outcome> {
        let Some(handler) = self.registry.get(&job.kind) else {
            return Some(Outcome::Permanent(format!("no handler for job kind {:?}", job.kind)));
        };
        let limit = Duration::from_secs(self.settings.timeout_secs);
        let beat =
            Duration::from_millis(self.settings.lease_secs.saturating_mul(1000) / 3).max(Duration::from_millis(100));
        let handler = handler.clone();
        let job_copy = job.clone();
        let mut run = tokio::spawn(async move { handler.run(&job_copy).await }.in_current_span());
        let deadline = tokio::time::Instant::now() + limit;
        // renewals that keep failing (the database unreachable) must stop the handler before the lease runs out
        // and another worker may take the job: at most two thirds of a lease without a confirmed renewal
        let lease = Duration::from_secs(self.settings.lease_secs);
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                done = &mut run => {
                    return Some(match done {
                        Ok(outcome) => outcome,
                        Err(join) => Outcome::Retry(format!("job handler panicked: {join}")),
                    });
                }
                _ = tokio::time::sleep_until(deadline) => {
                    run.abort();
                    return Some(Outcome::Retry(format!("job handler took longer than {} s", limit.as_secs())));
                }
                _ = tokio::time::sleep(beat) => match queue::renew(&self.pool, job.id, &self.name, &self.settings).await {
                    Ok(true) => renewed = tokio::time::Instant::now(),
                    Ok(false) => {
                        run.abort();
                        return None;
                    }
                    Err(e) if renewed.elapsed() < lease * 2 / 3 => {
                        // the lease may well still be ours: try again at the next beat
                        tracing::warn!(error = %e, "could not renew a job's lease");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not renew a job's lease in time; stopping it");
                        run.abort();
                        return None;
                    }
                },
            }
        }
    }
}

/// Wakes idle workers whenever a job is enqueued (any instance), until cancelled. Polling still covers
/// jobs that become due later and any notification lost while reconnecting.
pub async fn listen_for_jobs(pool: PgPool, wake: Arc<Notify>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(crate::db::jobs::WAKE_CHANNEL).await?;
            loop {
                listener.recv().await?;
                wake.notify_waiters();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            result = listening => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "job wake-up listener lost its connection; polling meanwhile");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
