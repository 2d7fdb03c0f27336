//! Backups from the scheduler: the `backup` sweep (off unless `scheduler.sweeps.backup` is set) enqueues at most
//! one `backup` job an hour, whichever instances' schedulers fire; the job runs `vpnshop backup` as configured
//! in `[backup]`, on the instance whose worker takes it.

use sqlx::PgPool;

use super::scheduler::Sweep;
use super::{JobHandler, Outcome};
use crate::backup::{self, BackupOptions};
use crate::config::{JobSettings, Settings};
use crate::db::jobs::ClaimedJob;

pub const KIND: &str = "backup";

/// Enqueues the hour's backup once: the key outlives the job, so another instance's sweep adds nothing.
pub struct BackupSweep {
    pub pool: PgPool,
    pub jobs: JobSettings,
}

#[async_trait::async_trait]
impl Sweep for BackupSweep {
    async fn run(&self) -> anyhow::Result<u64> {
        super::maintenance::enqueue_hourly(&self.pool, &self.jobs, KIND).await
    }
}

/// Makes one backup (a retry makes a new one; the failed attempt left no file).
pub struct BackupJob {
    pub settings: Settings,
}

#[async_trait::async_trait]
impl JobHandler for BackupJob {
    async fn run(&self, _job: &ClaimedJob) -> Outcome {
        match backup::backup(&self.settings, &BackupOptions::from_settings(&self.settings)).await {
            Ok(report) => {
                tracing::info!(
                    backup.path = %report.path.display(),
                    backup.bytes = report.bytes,
                    backup.sha256 = %report.sha256,
                    backup.pruned = report.pruned.len(),
                    "backup written"
                );
                Outcome::Done
            }
            Err(e) => Outcome::Retry(format!("{e:#}")),
        }
    }
}
