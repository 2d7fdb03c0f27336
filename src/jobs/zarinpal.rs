//! Zarinpal's background work. The `payments_reconcile` sweep: payments that were paid but never came back to us
//! are verified and fulfilled, and stale unpaid ones expire (`services::payments::zarinpal::reconcile`); one
//! instance runs it at a time (the scheduler's lock). The `zarinpal.verify` job: queued by every callback before it
//! verifies (due once the request timeout has surely ended it; at once when Zarinpal did not answer), it verifies a
//! payment still pending again, with the job queue's backoff, until Zarinpal answers — so a callback cut off
//! mid-verify is followed up too; a payment settled meanwhile is left alone. Each payment is settled under
//! its own row lock, so a callback arriving meanwhile is safe.

use std::sync::Arc;

use sqlx::PgPool;

use super::scheduler::Sweep;
use super::{JobHandler, Outcome};
use crate::config::Settings;
use crate::db::jobs::ClaimedJob;
use crate::payments::zarinpal::Zarinpal;
use crate::services::payments::online::Gateways;
use crate::services::payments::zarinpal;

pub struct ReconcileSweep {
    pub pool: PgPool,
    pub settings: Settings,
    /// `None` while Zarinpal is not configured: the sweep does nothing.
    pub zarinpal: Option<Arc<Zarinpal>>,
}

impl ReconcileSweep {
    pub fn new(pool: &PgPool, settings: &Settings, gateways: &Gateways) -> ReconcileSweep {
        ReconcileSweep { pool: pool.clone(), settings: settings.clone(), zarinpal: zarinpal::client(gateways) }
    }
}

#[async_trait::async_trait]
impl Sweep for ReconcileSweep {
    /// How many payments it settled (paid or expired).
    async fn run(&self) -> anyhow::Result<u64> {
        let Some(client) = &self.zarinpal else { return Ok(0) };
        let done = zarinpal::reconcile(&self.pool, &self.settings, client).await?;
        Ok(done.paid + done.expired)
    }
}

/// Verifies a payment again (`zarinpal.verify`, payload `payment_id`).
pub struct VerifyJob {
    pub pool: PgPool,
    pub settings: Settings,
    pub zarinpal: Option<Arc<Zarinpal>>,
}

impl VerifyJob {
    pub fn new(pool: &PgPool, settings: &Settings, gateways: &Gateways) -> VerifyJob {
        VerifyJob { pool: pool.clone(), settings: settings.clone(), zarinpal: zarinpal::client(gateways) }
    }
}

#[async_trait::async_trait]
impl JobHandler for VerifyJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let Some(id) = job.payload.get("payment_id").and_then(|v| v.as_i64()) else {
            return Outcome::Permanent("bad payload: no payment_id".into());
        };
        let Some(client) = &self.zarinpal else {
            return Outcome::Permanent("Zarinpal is not configured".into());
        };
        match zarinpal::verify_again(&self.pool, &self.settings, client, id).await {
            Ok(zarinpal::Outcome::Pending) => Outcome::Retry("Zarinpal did not confirm or refuse it yet".into()),
            Ok(_) => Outcome::Done,
            Err(e) if !e.is_internal() => Outcome::Permanent(e.to_string()),
            Err(e) => Outcome::Retry(format!("{e:#}")),
        }
    }
}
