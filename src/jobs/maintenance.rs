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
        let key = format!("{CLEANUP_KIND}:{}", Utc::now().format("%Y%m%d%H"));
        let id =
            JobSpec::new(CLEANUP_KIND, serde_json::json!({})).once(key).enqueue(&self.pool, &self.settings).await?;
        Ok(u64::from(id.is_some()))
    }
}

pub struct CleanupJob {
    pub pool: PgPool,
    pub settings: JobSettings,
}

#[async_trait::async_trait]
impl JobHandler for CleanupJob {
    async fn run(&self, _job: &ClaimedJob) -> Outcome {
        match queue::delete_old_done(&self.pool, &self.settings).await {
            Ok(n) => {
                tracing::info!(deleted = n, "old finished jobs deleted");
                Outcome::Done
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
