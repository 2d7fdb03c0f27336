//! The scheduler: named sweeps on cron schedules. A sweep only finds due work and enqueues jobs; with several
//! instances, a Postgres advisory lock lets one instance run a given sweep at a time.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::Instrument;

use crate::db::locks::Locks;

/// Finds due work and enqueues it; returns how many jobs it enqueued.
#[async_trait::async_trait]
pub trait Sweep: Send + Sync {
    async fn run(&self) -> anyhow::Result<u64>;
}

/// The advisory-lock key of a sweep: stable across processes and versions.
pub fn lock_key(name: &str) -> i64 {
    crate::db::advisory_key(&format!("sweep.{name}"))
}

/// Runs one sweep now unless another process (or an earlier tick) is running it. Returns `None` when skipped.
/// The sweep's lock lives on a lock connection, not in a transaction of the main pool.
pub async fn run_sweep(locks: &Locks, name: &str, sweep: &dyn Sweep) -> anyhow::Result<Option<u64>> {
    let Some(lock) = locks.try_lock(lock_key(name)).await.context("taking sweep lock")? else {
        return Ok(None);
    };
    let enqueued = sweep.run().await;
    lock.release().await;
    if enqueued.is_err() {
        metrics::counter!("vpnshop_sweep_failures_total", "sweep" => name.to_owned()).increment(1);
    }
    let enqueued = enqueued?;
    metrics::counter!("vpnshop_sweep_runs_total", "sweep" => name.to_owned()).increment(1);
    metrics::counter!("vpnshop_sweep_enqueued_total", "sweep" => name.to_owned()).increment(enqueued);
    Ok(Some(enqueued))
}

/// Starts the cron scheduler with every sweep that has a schedule. A schedule naming no known sweep, or an
/// invalid cron expression, is an error that names it.
pub async fn start(
    locks: Locks,
    sweeps: HashMap<String, Arc<dyn Sweep>>,
    schedules: &HashMap<String, String>,
) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await.context("creating scheduler")?;
    for (name, cron) in schedules {
        let sweep =
            sweeps.get(name).cloned().with_context(|| format!("`scheduler.sweeps.{name}` names no known sweep"))?;
        let (locks, name_owned) = (locks.clone(), name.clone());
        let job = Job::new_async(cron.as_str(), move |_, _| {
            let (locks, name, sweep) = (locks.clone(), name_owned.clone(), sweep.clone());
            // a trace per run: the jobs a sweep enqueues continue it
            let span = tracing::info_span!("sweep", otel.name = format!("sweep {name}"), sweep.name = %name);
            let run = async move {
                match run_sweep(&locks, &name, sweep.as_ref()).await {
                    Ok(Some(n)) => tracing::debug!(sweep = %name, enqueued = n, "sweep ran"),
                    Ok(None) => tracing::debug!(sweep = %name, "sweep skipped: running elsewhere"),
                    Err(e) => {
                        tracing::error!(sweep = %name, error = format!("{e:#}"), "sweep failed")
                    }
                }
            };
            Box::pin(run.instrument(span))
        })
        .with_context(|| format!("`scheduler.sweeps.{name}`: invalid cron expression {cron:?}"))?;
        scheduler.add(job).await.with_context(|| format!("scheduling sweep {name}"))?;
    }
    scheduler.start().await.context("starting scheduler")?;
    Ok(scheduler)
}
