//! The `broadcast.send` job: sends a broadcast in short runs (each hands the job back to the queue, so a long
//! broadcast is never one endless job and any instance may carry it on); see `services::broadcasts::sender`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::{JobHandler, Outcome};
use crate::config::{BroadcastSettings, JobSettings};
use crate::db::jobs::ClaimedJob;
use crate::services::broadcasts::Sender;
use crate::services::broadcasts::sender::{Next, Run};

/// The longest one run sends before handing the job back.
const MAX_SLICE: Duration = Duration::from_secs(30);

pub struct BroadcastJob {
    pub pool: PgPool,
    pub sender: Arc<dyn Sender>,
    pub settings: BroadcastSettings,
    pub jobs: JobSettings,
    /// This instance's name, part of each run's claimant.
    pub instance: String,
}

#[async_trait::async_trait]
impl JobHandler for BroadcastJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let Some(id) = job.payload.get("broadcast_id").and_then(serde_json::Value::as_i64) else {
            return Outcome::Permanent("bad payload: no broadcast_id".into());
        };
        let claimant = format!("{}#{}", self.instance, &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let run = Run { pool: &self.pool, sender: self.sender.as_ref(), settings: &self.settings, claimant };
        // well inside the job's own time limit
        let slice = Duration::from_secs(self.jobs.timeout_secs / 2).clamp(Duration::from_secs(1), MAX_SLICE);
        match run.run(id, slice).await {
            Ok(Next::Stop) => Outcome::Done,
            Ok(Next::Again(wait)) => Outcome::Defer(wait),
            Err(e) => Outcome::Retry(format!("broadcast {id}: {e}")),
        }
    }
}

/// `broadcasts`: running broadcasts whose sender job is gone get a new one.
pub struct ReviveSweep {
    pub pool: PgPool,
    pub jobs: JobSettings,
    /// Only where broadcasts can be sent (the bot is configured).
    pub enabled: bool,
}

#[async_trait::async_trait]
impl super::scheduler::Sweep for ReviveSweep {
    async fn run(&self) -> anyhow::Result<u64> {
        if !self.enabled {
            return Ok(0);
        }
        Ok(crate::services::broadcasts::revive(&self.pool, &self.jobs).await?)
    }
}
