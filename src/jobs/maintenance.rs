//! Housekeeping: the `jobs_cleanup` sweep enqueues a `jobs.cleanup` job that deletes old finished jobs.

use chrono::Utc;
use sqlx::PgPool;

use super::scheduler::Sweep;
use super::{JobHandler, Outcome};
use crate::config::JobSettings;
use crate::db::jobs::ClaimedJob;
use crate::services::queue::{self, JobSpec};

pub const CLEANUP_KIND: &str = "jobs.cleanup";

/// Enqueues at most one clean-up job per hour, whichever instance's scheduler fires.
pub struct CleanupSweep {
    pub pool: PgPool,
    pub settings: JobSettings,
}

#[async_trait::async_trait]
impl Sweep for CleanupSweep {
    async fn run(&self) -> anyhow::Result<u64> {
        enqueue_hourly(&self.pool, &self.settings, CLEANUP_KIND).await
    }
}

/// Enqueues a job of `kind` once in this hour: its key outlives the job, so another instance's sweep (or a later
/// tick in the same hour) adds nothing. Returns how many it enqueued (0 or 1).
pub async fn enqueue_hourly(pool: &PgPool, jobs: &JobSettings, kind: &'static str) -> anyhow::Result<u64> {
    let key = format!("{kind}:{}", Utc::now().format("%Y%m%d%H"));
    let id = JobSpec::new(kind, serde_json::json!({})).once(key).enqueue(pool, jobs).await?;
    Ok(u64::from(id.is_some()))
}

pub struct CleanupJob {
    pub pool: PgPool,
    pub settings: JobSettings,
}

#[async_trait::async_trait]
impl JobHandler for CleanupJob {
    async fn run(&self, _job: &ClaimedJob) -> Outcome {
        let days = i32::try_from(self.settings.keep_done_days).unwrap_or(i32::MAX);
        let jobs = queue::delete_old_done(&self.pool, &self.settings).await;
        let updates = crate::services::inbox::prune(&self.pool, days.max(7)).await;
        match (jobs, updates) {
            (Ok(jobs), Ok(updates)) => {
                tracing::info!(jobs, updates, "old finished jobs and handled Telegram updates deleted");
                Outcome::Done
            }
            (Err(e), _) | (_, Err(e)) => Outcome::Retry(e.to_string()),
        }
    }
}
