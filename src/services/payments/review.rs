//! Deciding card payments: accept, reject (with a preset or typed reason) and auto-accept of overdue reviews —
//! from Telegram, the API, the CLI or the scheduler, all through [`decide`]. The payment row is locked and its
//! state checked, so of any number of concurrent decisions exactly one wins; the others learn who decided, when
//! and how. The winner fulfils the order (or, rejecting an auto-accepted payment, takes back what it granted),
//! records the decision in the audit log and enqueues the customer's notice and the edit of every admin's copy
//! of the review — all in one transaction.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{AUTO_ACCEPT_KIND, PAYMENT_NOTICE_KIND, PaymentView, REVIEW_CLOSE_KIND, fulfil, view};
use crate::config::Settings;
use crate::db::{self, payments::DecisionRecord};
use crate::domain::status::{PaymentMethod, PaymentStatus};
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;
use crate::services::notify;
use crate::services::queue::{self, JobSpec};

crate::text_enum! {
    /// Why a receipt was rejected (each has its message for the customer).
    pub enum RejectReason {
        WrongAmount => "wrong_amount",
        Unreadable => "unreadable",
        NotReceived => "not_received",
        Duplicate => "duplicate",
        Other => "other",
    }
}

/// What a reviewer decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject {
        reason: RejectReason,
        text: Option<String>,
    },
    /// The scheduler, for a review past its window and within the auto-accept ceiling.
    AutoAccept,
}

crate::text_enum! {
    /// Where a decision came from.
    pub enum Via {
        Telegram => "telegram",
        Api => "api",
        Scheduler => "scheduler",
        Cli => "cli",
        Dashboard => "dashboard",
    }
}

/// Who decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// As people read it: `@alice`, `admin 3`, `auto-accept`.
    pub name: String,
    pub admin_id: Option<i64>,
    pub via: Via,
    /// For the audit log: `admin`, `api_key`, `system`, `cli`, and the id within that kind.
    pub actor_kind: &'static str,
    pub actor_id: Option<String>,
    /// The caller's address, when it came over HTTP.
    pub source_ip: Option<String>,
}

impl Reviewer {
    pub fn scheduler() -> Reviewer {
        Reviewer {
            name: "auto-accept".into(),
            admin_id: None,
            via: Via::Scheduler,
            actor_kind: "system",
            actor_id: Some("auto_accept".into()),
            source_ip: None,
        }
    }

    pub fn cli() -> Reviewer {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Reviewer {
            name: format!("{user} (CLI)"),
            admin_id: None,
            via: Via::Cli,
            actor_kind: "cli",
            actor_id: Some(user),
            source_ip: None,
        }
    }

    /// An admin in Telegram: an `admins` row when they have one, else a Telegram id from the settings.
    pub async fn telegram(
        pool: &PgPool,
        telegram_id: i64,
        username: Option<&str>,
        first_name: &str,
    ) -> AppResult<Reviewer> {
        let row = db::admins::by_telegram_id(pool, telegram_id).await?;
        let name = match username {
            Some(u) if !u.is_empty() => format!("@{u}"),
            _ => first_name.to_owned(),
        };
        Ok(Reviewer {
            name,
            admin_id: row.as_ref().map(|r| r.id),
            via: Via::Telegram,
            actor_kind: "admin",
            actor_id: Some(row.map_or_else(|| format!("tg:{telegram_id}"), |r| r.id.to_string())),
            source_ip: None,
        })
    }

    /// A caller of the admin API (an admin's token or an API key), as the audit log knows them.
    pub fn api(who: &Who) -> Reviewer {
        Reviewer {
            name: who.name.clone(),
            admin_id: if who.kind == "admin" { who.id.as_deref().and_then(|id| id.parse().ok()) } else { None },
            via: Via::Api,
            actor_kind: who.kind,
            actor_id: who.id.clone(),
            source_ip: who.ip.clone(),
        }
    }

    /// An admin deciding in the dashboard (signed in there), as the audit log knows them.
    pub fn dashboard(who: &Who) -> Reviewer {
        Reviewer { via: Via::Dashboard, ..Reviewer::api(who) }
    }
}

/// How a decision went.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// This call decided it.
    Decided { status: PaymentStatus },
    /// Someone decided before (or it is not up for this decision): who, when, and how it stands.
    Already { status: PaymentStatus, by: Option<String>, at: Option<DateTime<Utc>> },
    /// Auto-accept only: not overdue yet, above the ceiling, or auto-accept is off.
    NotDue,
}

/// Decides a card payment (see the module docs).
pub async fn decide(
    pool: &PgPool,
    settings: &Settings,
    payment_id: i64,
    verdict: &Verdict,
    reviewer: &Reviewer,
) -> AppResult<Decision> {
    if let Verdict::Reject { text: Some(text), .. } = verdict
        && text.chars().count() > 500
    {
        return Err(AppError::invalid("a reason is at most 500 characters"));
    }
    let jobs = &settings.jobs;
    let mut tx = pool.begin().await?;
    let payment = db::payments::lock(&mut tx, payment_id).await?.ok_or(AppError::NotFound("payment"))?;
    if payment.method != PaymentMethod::Card {
        return Err(AppError::invalid("only card payments are reviewed"));
    }
    let already =
        || Decision::Already { status: payment.status, by: payment.decided_by.clone(), at: payment.decided_at };
    let to = match (payment.status, verdict) {
        (PaymentStatus::UnderReview, Verdict::Accept) => PaymentStatus::Accepted,
        (PaymentStatus::UnderReview | PaymentStatus::AutoAccepted, Verdict::Reject { .. }) => PaymentStatus::Rejected,
        (PaymentStatus::UnderReview, Verdict::AutoAccept) => {
            let now = db::now(&mut *tx).await?;
            let card = &settings.payments.card;
            let overdue = payment.review_deadline.is_some_and(|d| d <= now);
            let within = card.auto_accept_ceiling(payment.currency).is_some_and(|max| payment.amount_minor <= max);
            if !(card.auto_accept && overdue && within) {
                return Ok(Decision::NotDue);
            }
            PaymentStatus::AutoAccepted
        }
        _ => return Ok(already()),
    };
    payment.status.check(to, payment.method)?;
    let (reason_code, reason_text) = match verdict {
        Verdict::Reject { reason, text } => (Some(reason.as_str()), text.as_deref().map(str::trim)),
        _ => (None, None),
    };
    let record = DecisionRecord {
        to,
        by: &reviewer.name,
        via: reviewer.via.as_str(),
        admin_id: reviewer.admin_id,
        reason_code,
        reason: reason_text.filter(|t| !t.is_empty()),
    };
    let from = payment.status;
    if !db::payments::decide(&mut tx, payment_id, from, &record).await? {
        return Ok(already());
    }
    // every admin's copy is to show this decision (an overruled auto-accept's copies were closed showing that one)
    db::payments::reopen_review_messages(&mut *tx, payment_id).await?;
    let event = match (from, to) {
        (PaymentStatus::AutoAccepted, _) => {
            let order = db::orders::find(&mut *tx, payment.order_id).await?.ok_or(AppError::NotFound("order"))?;
            fulfil::take_back(&mut tx, &order, jobs).await?;
            // overruled before the customer heard of the acceptance: to them it is simply rejected
            let unheard = queue::cancel_queued(&mut *tx, &notice_key(payment_id, "accepted")).await?;
            if unheard { "rejected" } else { "revoked" }
        }
        (_, PaymentStatus::Rejected) => {
            // the customer is asked for a new receipt: they get the time to send one, even if the review outlasted
            // the order's deadline
            db::orders::extend_pay_by(&mut tx, payment.order_id, settings.payments.card.deadline_mins).await?;
            "rejected"
        }
        _ => {
            fulfil::fulfil(&mut tx, payment.order_id, jobs).await?;
            "accepted"
        }
    };
    let entity_id = payment_id.to_string();
    let entry = db::audit::AuditEntry {
        actor_kind: reviewer.actor_kind,
        actor_id: reviewer.actor_id.as_deref(),
        action: &format!("payment.{}", to.as_str()),
        entity: "payment",
        entity_id: Some(&entity_id),
        detail: serde_json::json!({
            "from": from.as_str(),
            "via": reviewer.via.as_str(),
            "by": reviewer.name,
            "order_id": payment.order_id,
            "reason_code": reason_code,
            "reason": reason_text,
        }),
        source_ip: reviewer.source_ip.as_deref(),
    };
    db::audit::record(&mut *tx, &entry).await?;
    let mut notice = JobSpec::new(PAYMENT_NOTICE_KIND, serde_json::json!({ "payment_id": payment_id, "event": event }))
        .once(notice_key(payment_id, event));
    if to == PaymentStatus::AutoAccepted {
        // an admin may still overrule it in the next moments (a Reject racing the sweep): the customer hears
        // only the outcome that stands
        notice = notice.after(std::time::Duration::from_secs(settings.payments.card.auto_accept_notice_secs));
    }
    notice.enqueue(&mut *tx, jobs).await?;
    JobSpec::new(REVIEW_CLOSE_KIND, serde_json::json!({ "payment_id": payment_id }))
        .once(format!("review.close:{payment_id}:{}", to.as_str()))
        .enqueue(&mut *tx, jobs)
        .await?;
    if to == PaymentStatus::AutoAccepted {
        let text = format!(
            "Payment #{payment_id} was accepted automatically: its review was not decided within {} minutes. \
             Reject it with /reject {payment_id} to take back what it granted.",
            settings.payments.card.review_mins
        );
        notify::enqueue_admin_alert(&mut *tx, &format!("auto-accepted:{payment_id}"), &text, jobs).await?;
    }
    tx.commit().await?;
    metrics::counter!("vpnshop_payments_decided_total", "status" => to.as_str(), "via" => reviewer.via.as_str())
        .increment(1);
    match (from, to) {
        (_, PaymentStatus::Accepted | PaymentStatus::AutoAccepted) => {
            crate::metrics::revenue(payment.currency, payment.method, payment.amount_minor)
        }
        (PaymentStatus::AutoAccepted, _) => {
            crate::metrics::revenue_reversed(payment.currency, payment.method, payment.amount_minor)
        }
        _ => {}
    }
    Ok(Decision::Decided { status: to })
}

fn notice_key(payment_id: i64, event: &str) -> String {
    format!("payment.notice:{payment_id}:{event}")
}

/// Reviews waiting for a decision, oldest first.
pub async fn pending(pool: &PgPool, limit: i64) -> AppResult<Vec<PaymentView>> {
    let mut out = Vec::new();
    for p in db::payments::under_review(pool, limit).await? {
        out.push(view(pool, p.id).await?);
    }
    Ok(out)
}

/// The scheduler's sweep: overdue reviews within their currency's ceiling get an auto-accept job (once per
/// payment); overdue ones above it are flagged to the admins once; unpaid card orders past their deadline expire.
/// Returns how many jobs it enqueued.
pub async fn sweep(pool: &PgPool, settings: &Settings) -> AppResult<u64> {
    let card = &settings.payments.card;
    let mut n = 0;
    if card.auto_accept {
        for p in db::payments::overdue(pool, 500).await? {
            if card.auto_accept_ceiling(p.currency).is_some_and(|max| p.amount_minor <= max) {
                let spec = JobSpec::new(AUTO_ACCEPT_KIND, serde_json::json!({ "payment_id": p.id }))
                    .once(format!("auto_accept:{}", p.id));
                n += u64::from(spec.enqueue(pool, &settings.jobs).await?.is_some());
            } else {
                let text = format!(
                    "Payment #{} has waited for review over {} minutes and is above the auto-accept limit for {}: \
                     decide it with /accept {} or /reject {}.",
                    p.id, card.review_mins, p.currency, p.id, p.id
                );
                notify::enqueue_admin_alert(pool, &format!("overdue-above-ceiling:{}", p.id), &text, &settings.jobs)
                    .await?;
            }
        }
    }
    super::expire_unpaid(pool).await?;
    Ok(n)
}

/// Sales for admins: today, 7 and 30 days, and what stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub windows: Vec<(u32, db::payments::Sales)>,
    pub active_subscriptions: i64,
    pub pending_reviews: i64,
}

/// `/stats`: the windows are today (since 00:00 UTC, `0`), the last 7 and the last 30 days.
pub async fn stats(pool: &PgPool) -> AppResult<Stats> {
    let mut conn = pool.acquire().await?;
    let now = db::now(&mut *conn).await?;
    let today = now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
    let mut windows = Vec::new();
    for days in [0u32, 7, 30] {
        let since = if days == 0 { today } else { now - chrono::Duration::days(i64::from(days)) };
        windows.push((days, db::payments::sales_since(&mut conn, since).await?));
    }
    let (active_subscriptions, pending_reviews) = db::payments::now_counts(&mut *conn).await?;
    Ok(Stats { windows, active_subscriptions, pending_reviews })
}
