//! Payments as the admin API sees them: the filtered, paginated listing, one payment in full, and decisions
//! taken through the API — the same [`review::decide`] the Telegram `/accept` and `/reject` use, so exactly one
//! decision wins and the loser learns who decided and when.

use sqlx::PgPool;

use super::review::{self, Decision, RejectReason, Reviewer, Verdict};
use super::{PaymentView, view};
use crate::config::Settings;
use crate::db::{self, payments::PaymentFilter, payments::PaymentLine, payments::PaymentListRow};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::status::PaymentStatus;
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;

/// The longest reason a rejection may give (the customer reads it in Telegram).
pub const MAX_REASON_CHARS: usize = 500;

/// A page of payments and the cursor of the next one.
pub async fn list(
    pool: &PgPool,
    filter: &PaymentFilter,
    page: &PageRequest,
) -> AppResult<(Vec<PaymentListRow>, Option<Cursor>)> {
    check(filter)?;
    let rows = db::payments::list(pool, filter, page).await?;
    Ok(page.cut(rows, PaymentListRow::cursor))
}

/// [`list`] with each payment's customer (Telegram id and username), for the dashboard and its CSV export.
pub async fn lines(
    pool: &PgPool,
    filter: &PaymentFilter,
    page: &PageRequest,
) -> AppResult<(Vec<PaymentLine>, Option<Cursor>)> {
    check(filter)?;
    let rows = db::payments::lines(pool, filter, page).await?;
    Ok(page.cut(rows, |l| l.payment.cursor()))
}

fn check(filter: &PaymentFilter) -> AppResult<()> {
    if let (Some(from), Some(to)) = (filter.created_from, filter.created_to)
        && from > to
    {
        return Err(AppError::field("created_to", "before created_from"));
    }
    Ok(())
}

/// One payment with its order, customer and plan.
pub async fn get(pool: &PgPool, id: i64) -> AppResult<PaymentView> {
    view(pool, id).await
}

/// What an API caller decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVerdict {
    Accept,
    /// With the customer-facing reason (1–500 characters) and its kind (`other` unless given).
    Reject {
        reason: String,
        code: Option<RejectReason>,
    },
}

/// Decides a card payment under review for an API caller; recorded in the audit log with the caller. Someone
/// who decided first makes this a conflict ("already decided", by whom and when); nothing changes then.
pub async fn decide(
    pool: &PgPool,
    settings: &Settings,
    id: i64,
    verdict: ApiVerdict,
    who: &Who,
) -> AppResult<PaymentView> {
    decide_as(pool, settings, id, verdict, &Reviewer::api(who)).await
}

/// [`decide`] for a reviewer other than an API caller (the dashboard: [`Reviewer::dashboard`]).
pub async fn decide_as(
    pool: &PgPool,
    settings: &Settings,
    id: i64,
    verdict: ApiVerdict,
    reviewer: &Reviewer,
) -> AppResult<PaymentView> {
    let verdict = match verdict {
        ApiVerdict::Accept => Verdict::Accept,
        ApiVerdict::Reject { reason, code } => {
            let text = reason.trim();
            if text.is_empty() {
                return Err(AppError::field("reason", "say why (the customer reads it)"));
            }
            if text.chars().count() > MAX_REASON_CHARS {
                return Err(AppError::field("reason", format!("at most {MAX_REASON_CHARS} characters")));
            }
            Verdict::Reject { reason: code.unwrap_or(RejectReason::Other), text: Some(text.to_owned()) }
        }
    };
    match review::decide(pool, settings, id, &verdict, reviewer).await? {
        Decision::Decided { .. } => view(pool, id).await,
        Decision::Already { status, by: Some(by), at } => Err(AppError::conflict(format!(
            "already decided: {status} by {by}{}",
            at.map(|t| format!(" at {}", t.to_rfc3339())).unwrap_or_default()
        ))),
        Decision::Already { status: PaymentStatus::UnderReview, .. } => {
            Err(AppError::conflict("already decided: the payment changed meanwhile"))
        }
        Decision::Already { status, .. } => {
            Err(AppError::conflict(format!("the payment is {status}: only a payment under review can be decided")))
        }
        Decision::NotDue => Err(AppError::conflict("the payment cannot be decided now")),
    }
}

/// A card payment waiting for review with its customer's record: orders, payments and active subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub view: PaymentView,
    pub counts: db::users::UserCounts,
}

/// The review queue: the card payments under review, oldest receipt first (at most `limit`), and in full those
/// of them the caller does not have yet (`known`: a page polling for new receipts).
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub waiting: Vec<i64>,
    pub items: Vec<QueueItem>,
}

pub async fn queue(pool: &PgPool, limit: i64, known: &std::collections::HashSet<i64>) -> AppResult<Queue> {
    let waiting: Vec<i64> = db::payments::under_review(pool, limit).await?.into_iter().map(|p| p.id).collect();
    let mut items = Vec::new();
    for &id in waiting.iter().filter(|id| !known.contains(id)) {
        let view = match view(pool, id).await {
            Ok(v) => v,
            Err(AppError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let counts = db::users::counts(pool, view.customer.id).await?;
        items.push(QueueItem { view, counts });
    }
    Ok(Queue { waiting, items })
}
