//! Telling people things. Services enqueue a `notify.user` (or `notify.admins`) job in the transaction that
//! made the change; a `Notifier` (the bot) delivers it after commit, with retries. Once per event: the
//! idempotency key names the event.

use sqlx::PgExecutor;

use crate::config::JobSettings;
use crate::services::queue::JobSpec;

pub const USER_KIND: &str = "notify.user";
pub const ADMINS_KIND: &str = "notify.admins";

/// Something a customer is told about one of their subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    /// It works: links, QR codes and the feed URL.
    SubscriptionReady,
    /// The data cap is used up; how to add data.
    DataCapReached,
    /// Time is up; how to renew.
    SubscriptionExpired,
    /// An admin or a refund ended it.
    SubscriptionRevoked,
    ExpiresSoon {
        days: i32,
    },
    DataAlmostUsed {
        percent: u8,
    },
    /// Renewed or topped up: it works again.
    SubscriptionResumed,
}

impl Notice {
    fn key_part(&self) -> String {
        match self {
            Notice::SubscriptionReady => "ready".into(),
            Notice::DataCapReached => "limited".into(),
            Notice::SubscriptionExpired => "expired".into(),
            Notice::SubscriptionRevoked => "revoked".into(),
            Notice::ExpiresSoon { days } => format!("expires-{days}d"),
            Notice::DataAlmostUsed { percent } => format!("data-{percent}"),
            Notice::SubscriptionResumed => "resumed".into(),
        }
    }
}

/// The payload of a `notify.user` job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserNotice {
    pub user_id: i64,
    pub subscription_id: i64,
    #[serde(flatten)]
    pub notice: Notice,
}

/// Enqueues a notice in the caller's transaction. `occurrence` separates events that may legitimately
/// repeat (a resumption after each renewal); pass the same value to get at-most-once.
pub async fn enqueue_user(
    db: impl PgExecutor<'_>,
    notice: &UserNotice,
    occurrence: &str,
    jobs: &JobSettings,
) -> sqlx::Result<()> {
    let key = format!("notify:{}:{}:{occurrence}", notice.subscription_id, notice.notice.key_part());
    let payload = serde_json::to_value(notice).unwrap_or_default();
    JobSpec::new(USER_KIND, payload).once(key).enqueue(db, jobs).await?;
    Ok(())
}

/// Enqueues an alert for the shop's admins; alerts with the same `key` are sent once.
pub async fn enqueue_admin_alert(
    db: impl PgExecutor<'_>,
    key: &str,
    text: &str,
    jobs: &JobSettings,
) -> sqlx::Result<()> {
    JobSpec::new(ADMINS_KIND, serde_json::json!({ "text": text }))
        .once(format!("alert:{key}"))
        .enqueue(db, jobs)
        .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Try again after this many seconds (Telegram's 429).
    #[error("rate limited, retry in {0} s")]
    RetryAfter(u64),
    /// The recipient cannot be reached (blocked the bot): do not retry.
    #[error("recipient unreachable: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Delivers notices; the bot implements it.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers a notice; `key` is unique per notice (repeat calls with it must not repeat messages).
    async fn notify_user(&self, notice: &UserNotice, key: &str) -> Result<(), NotifyError>;
    async fn alert_admins(&self, text: &str) -> Result<(), NotifyError>;

    /// Tells a customer how their payment was decided (`accepted`, `rejected`, `revoked`).
    async fn notify_payment(&self, payment_id: i64, event: &str) -> Result<(), NotifyError> {
        tracing::info!(payment.id = payment_id, event, "payment notice not sent: bot disabled");
        Ok(())
    }

    /// Posts a payment's review (receipt, order, customer, Accept/Reject) to the admins.
    async fn post_review(&self, payment_id: i64) -> Result<(), NotifyError> {
        tracing::warn!(payment.id = payment_id, "a receipt awaits review (bot disabled: use the CLI or the API)");
        Ok(())
    }

    /// Edits every admin's copy of a decided review to show who decided, when, and the outcome.
    async fn close_review(&self, payment_id: i64) -> Result<(), NotifyError> {
        tracing::debug!(payment.id = payment_id, "review decided");
        Ok(())
    }
}

/// Used when the bot is off: notices are logged and dropped.
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    async fn notify_user(&self, notice: &UserNotice, _key: &str) -> Result<(), NotifyError> {
        tracing::info!(user.id = notice.user_id, subscription.id = notice.subscription_id, notice = ?notice.notice, "notice not sent: bot disabled");
        Ok(())
    }

    async fn alert_admins(&self, text: &str) -> Result<(), NotifyError> {
        tracing::warn!(alert = text, "admin alert (bot disabled)");
        Ok(())
    }
}
