//! Payment jobs: the auto-accept of one overdue review, the customer's payment notices, and posting and closing
//! the admins' review messages. The sweep that finds overdue reviews and unpaid card orders is `PaymentSweep`.

use std::sync::Arc;

use sqlx::PgPool;

use super::scheduler::Sweep;
use super::{JobHandler, Outcome};
use crate::config::Settings;
use crate::db::jobs::ClaimedJob;
use crate::services::notify::{Notifier, NotifyError};
use crate::services::payments::review::{self, Decision, Reviewer, Verdict};

fn payment_id(job: &ClaimedJob) -> Result<i64, Outcome> {
    job.payload
        .get("payment_id")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| Outcome::Permanent("bad payload: no payment_id".into()))
}

fn notify_outcome(result: Result<(), NotifyError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(NotifyError::RetryAfter(secs)) => {
            Outcome::RetryAfter(std::time::Duration::from_secs(secs.max(1)), format!("rate limited for {secs} s"))
        }
        Err(NotifyError::Unreachable(e)) => Outcome::Permanent(e),
        Err(NotifyError::Other(e)) => Outcome::Retry(format!("{e:#}")),
    }
}

/// Accepts one overdue review (if it is still under review, overdue and within its ceiling when this runs).
pub struct AutoAcceptJob {
    pub pool: PgPool,
    pub settings: Settings,
}

#[async_trait::async_trait]
impl JobHandler for AutoAcceptJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let id = match payment_id(job) {
            Ok(id) => id,
            Err(o) => return o,
        };
        match review::decide(&self.pool, &self.settings, id, &Verdict::AutoAccept, &Reviewer::scheduler()).await {
            Ok(Decision::Decided { .. }) => {
                tracing::info!(payment.id = id, "overdue review accepted automatically");
                Outcome::Done
            }
            Ok(Decision::Already { .. } | Decision::NotDue) => Outcome::Done,
            Err(e) if !e.is_internal() => Outcome::Permanent(e.to_string()),
            Err(e) => Outcome::Retry(format!("{e:#}")),
        }
    }
}

/// What a payment job asks the notifier to do.
#[derive(Clone, Copy)]
pub enum PaymentMessage {
    Notice,
    PostReview,
    CloseReview,
}

pub struct PaymentMessageJob {
    pub notifier: Arc<dyn Notifier>,
    pub which: PaymentMessage,
}

#[async_trait::async_trait]
impl JobHandler for PaymentMessageJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let id = match payment_id(job) {
            Ok(id) => id,
            Err(o) => return o,
        };
        notify_outcome(match self.which {
            PaymentMessage::Notice => {
                let event = job.payload.get("event").and_then(|v| v.as_str()).unwrap_or_default();
                self.notifier.notify_payment(id, event).await
            }
            PaymentMessage::PostReview => self.notifier.post_review(id).await,
            PaymentMessage::CloseReview => self.notifier.close_review(id).await,
        })
    }
}

/// `auto_accept`: overdue reviews, and unpaid card orders past their deadline.
pub struct PaymentSweep {
    pub pool: PgPool,
    pub settings: Settings,
}

#[async_trait::async_trait]
impl Sweep for PaymentSweep {
    async fn run(&self) -> anyhow::Result<u64> {
        Ok(review::sweep(&self.pool, &self.settings).await?)
    }
}

/// Tells the admins of the online payments received since the last digest, in one message.
pub struct AnnounceJob {
    pub pool: PgPool,
    pub notifier: Arc<dyn Notifier>,
}

#[async_trait::async_trait]
impl JobHandler for AnnounceJob {
    async fn run(&self, _job: &ClaimedJob) -> Outcome {
        loop {
            let mut tx = match self.pool.begin().await {
                Ok(tx) => tx,
                Err(e) => return Outcome::Retry(e.to_string()),
            };
            let text = match crate::services::payments::online::take_digest(&mut tx).await {
                Ok(Some(text)) => text,
                Ok(None) => return Outcome::Done,
                Err(e) => return Outcome::Retry(e.to_string()),
            };
            if let Err(e) = self.notifier.alert_admins(&text).await {
                return notify_outcome(Err(e));
            }
            if let Err(e) = tx.commit().await {
                return Outcome::Retry(e.to_string());
            }
        }
    }

    fn keep_done(&self) -> bool {
        false
    }
}
