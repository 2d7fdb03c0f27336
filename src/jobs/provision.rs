//! Provisioning jobs and sweeps: placement, node sync/reconcile/metering, subscription ends, notices.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;

use super::scheduler::Sweep;
use super::{JobHandler, Outcome};
use crate::config::JobSettings;
use crate::db::jobs::ClaimedJob;
use crate::domain::status::SubscriptionStatus;
use crate::provision::NodeError;
use crate::services::nodes::{Nodes, SyncError};
use crate::services::notify::{Notifier, NotifyError, UserNotice};
use crate::services::subscriptions::{self, Placement};
use crate::services::sweeps;

#[derive(Deserialize)]
struct ServerPayload {
    server_id: i64,
}

#[derive(Deserialize)]
struct SubscriptionPayload {
    subscription_id: i64,
    #[serde(default)]
    to: Option<String>,
}

fn payload<T: for<'de> Deserialize<'de>>(job: &ClaimedJob) -> Result<T, Outcome> {
    serde_json::from_value(job.payload.clone()).map_err(|e| Outcome::Permanent(format!("bad payload: {e}")))
}

/// Maps a node sync result to a job outcome: busy nodes wait without using an attempt, unreachable ones retry
/// with backoff, a changed host key or a broken base config stops until an operator acts.
fn sync_outcome<T>(result: Result<T, SyncError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(SyncError::Busy) => Outcome::Defer(Duration::from_millis(500)),
        Err(SyncError::Node(e @ (NodeError::HostKeyMismatch { .. } | NodeError::HostKeyNotPinned))) => {
            Outcome::Permanent(e.to_string())
        }
        Err(SyncError::Render(e)) => Outcome::Permanent(format!("fix the node's base config: {e}")),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

/// Which node operation a job runs.
#[derive(Clone, Copy)]
pub enum NodeOp {
    Apply,
    Reconcile,
    Meter,
}

pub struct NodeJob {
    pub nodes: Nodes,
    pub op: NodeOp,
}

#[async_trait::async_trait]
impl JobHandler for NodeJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let p: ServerPayload = match payload(job) {
            Ok(p) => p,
            Err(o) => return o,
        };
        match self.op {
            NodeOp::Apply => sync_outcome(self.nodes.apply(p.server_id).await),
            NodeOp::Reconcile => sync_outcome(self.nodes.reconcile(p.server_id).await),
            NodeOp::Meter => sync_outcome(self.nodes.meter(p.server_id).await),
        }
    }

    fn keep_done(&self) -> bool {
        // a node is metered every few seconds and reconciled every few minutes: nothing to look back at
        !matches!(self.op, NodeOp::Meter | NodeOp::Reconcile)
    }
}

pub struct PlaceJob {
    pub pool: PgPool,
    pub jobs: JobSettings,
}

#[async_trait::async_trait]
impl JobHandler for PlaceJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let p: SubscriptionPayload = match payload(job) {
            Ok(p) => p,
            Err(o) => return o,
        };
        match subscriptions::place(&self.pool, p.subscription_id, &self.jobs).await {
            Ok(Placement::Placed { server_id }) => {
                tracing::info!(subscription.id = p.subscription_id, server.id = server_id, "subscription placed");
                Outcome::Done
            }
            Ok(Placement::AlreadyDone) => Outcome::Done,
            Ok(Placement::NoCapacity) => {
                // the placement sweep retries it; operators are told once an hour
                tracing::warn!(subscription.id = p.subscription_id, "no node with free capacity in its location");
                let key = format!("capacity:{}", chrono::Utc::now().format("%Y%m%d%H"));
                let text = "A paid subscription is waiting: no enabled node of its location has free capacity. \
                            Add a node or raise a node's capacity.";
                match crate::services::notify::enqueue_admin_alert(&self.pool, &key, text, &self.jobs).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

pub struct EndJob {
    pub pool: PgPool,
    pub jobs: JobSettings,
}

#[async_trait::async_trait]
impl JobHandler for EndJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let p: SubscriptionPayload = match payload(job) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let Some(to) = p.to.as_deref().and_then(|t| t.parse::<SubscriptionStatus>().ok()) else {
            return Outcome::Permanent("bad payload: `to` must be a subscription status".into());
        };
        match subscriptions::end(&self.pool, p.subscription_id, to, to.as_str(), &self.jobs).await {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

pub struct NotifyUserJob {
    pub notifier: Arc<dyn Notifier>,
}

fn notify_outcome(result: Result<(), NotifyError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(NotifyError::RetryAfter(secs)) => {
            Outcome::RetryAfter(Duration::from_secs(secs.max(1)), format!("rate limited for {secs} s"))
        }
        Err(NotifyError::Unreachable(e)) => Outcome::Permanent(e),
        Err(NotifyError::Other(e)) => Outcome::Retry(format!("{e:#}")),
    }
}

#[async_trait::async_trait]
impl JobHandler for NotifyUserJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        match payload::<UserNotice>(job) {
            Ok(notice) => notify_outcome(self.notifier.notify_user(&notice, &format!("job{}", job.id)).await),
            Err(o) => o,
        }
    }
}

pub struct NotifyAdminsJob {
    pub notifier: Arc<dyn Notifier>,
}

#[async_trait::async_trait]
impl JobHandler for NotifyAdminsJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let text = job.payload.get("text").and_then(|t| t.as_str()).unwrap_or_default();
        notify_outcome(self.notifier.alert_admins(text).await)
    }
}

/// The provisioning sweeps, by their names in `scheduler.sweeps`.
pub enum ProvisionSweep {
    /// `meter`: a metering job per node.
    Meter,
    /// `reconcile`: a drift-repair job per node.
    Reconcile,
    /// `lifecycle`: ends of expired subscriptions and expiry reminders.
    Lifecycle,
    /// `placement`: subscriptions still waiting for a node.
    Placement,
}

pub struct ProvisionSweeps {
    pub pool: PgPool,
    pub jobs: JobSettings,
    pub which: ProvisionSweep,
}

#[async_trait::async_trait]
impl Sweep for ProvisionSweeps {
    async fn run(&self) -> anyhow::Result<u64> {
        use crate::services::nodes::{METER_KIND, RECONCILE_KIND};
        let (pool, jobs) = (&self.pool, &self.jobs);
        Ok(match self.which {
            ProvisionSweep::Meter => sweeps::enqueue_per_node(pool, METER_KIND, jobs).await?,
            ProvisionSweep::Reconcile => sweeps::enqueue_per_node(pool, RECONCILE_KIND, jobs).await?,
            ProvisionSweep::Lifecycle => {
                sweeps::enqueue_expiries(pool, jobs).await? + sweeps::enqueue_expiry_reminders(pool, jobs).await?
            }
            ProvisionSweep::Placement => sweeps::enqueue_placements(pool, jobs).await?,
        })
    }
}
