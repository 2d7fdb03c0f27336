//! Reviews in Telegram: the receipt posted to every admin (or to the admin group) with the order, the amount, the
//! customer and their history, and Accept / Reject buttons; every copy edited once the payment is decided to show
//! who decided, when, and how. Admin texts are in the shop's default language.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId, ParseMode};
use teloxide::{ApiError, RequestError};

use super::TgBot;
use super::callback::Cb;
use super::limits::Kind;
use super::ui::html;
use crate::config::Settings;
use crate::db::locks::{HeldLock, Locks};
use crate::domain::status::PaymentStatus;
use crate::domain::{DataCap, Language};
use crate::i18n::{self, Arg};
use crate::services::notify::NotifyError;
use crate::services::payments::review::RejectReason;
use crate::services::payments::{self, PaymentView, copies};
use crate::services::users;

/// The language admin texts are written in.
pub fn admin_lang(settings: &Settings) -> Language {
    settings.shop.default_language
}

/// Where reviews go: the admin group when set, else every admin's private chat.
pub async fn review_chats(pool: &sqlx::PgPool, settings: &Settings) -> Vec<i64> {
    if let Some(group) = settings.payments.card.review_chat_id {
        return vec![group];
    }
    let mut ids = settings.telegram.admin_ids.clone();
    if let Ok(more) = users::admin_telegram_ids(pool).await {
        ids.extend(more);
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The payment's status line: under review, or who decided what and when.
fn status_line(v: &PaymentView, lang: Language) -> String {
    let p = &v.payment;
    let by = html(p.decided_by.as_deref().unwrap_or("?"));
    let at = p.decided_at.map(|t| i18n::moment(lang, t)).unwrap_or_default();
    match p.status {
        PaymentStatus::UnderReview => i18n::t(lang, "review-status-open"),
        PaymentStatus::Accepted => {
            i18n::t_args(lang, "review-status-accepted", &[("by", by.into()), ("at", at.into())])
        }
        PaymentStatus::AutoAccepted => i18n::t_args(lang, "review-status-auto", &[("at", at.into())]),
        PaymentStatus::Rejected => {
            let reason = reason_text(lang, p.reason_code.as_deref(), p.reason.as_deref());
            i18n::t_args(
                lang,
                "review-status-rejected",
                &[("by", by.into()), ("at", at.into()), ("reason", reason.into())],
            )
        }
        other => html(other.as_str()),
    }
}

/// A rejection reason in `lang`: the typed text, else the preset's words.
pub fn reason_text(lang: Language, code: Option<&str>, typed: Option<&str>) -> String {
    if let Some(text) = typed.filter(|t| !t.trim().is_empty()) {
        // short enough that a review's caption (1024 characters as shown) always holds it
        let text: String = text.trim().chars().take(200).collect();
        return html(&text);
    }
    let code = code.and_then(|c| c.parse::<RejectReason>().ok()).unwrap_or(RejectReason::Other);
    i18n::t(lang, &format!("reject-reason-{}", code.as_str().replace('_', "-")))
}

/// The review's text (a caption under the receipt).
pub fn caption(v: &PaymentView, settings: &Settings) -> String {
    let lang = admin_lang(settings);
    let (p, o, c) = (&v.payment, &v.order, &v.customer);
    let plan = v
        .plan
        .as_ref()
        .map(|plan| {
            let data =
                DataCap::from_db(plan.data_cap_bytes).map(|d| super::handlers::data_text(lang, d)).unwrap_or_default();
            format!(
                "{} · {} · {} · {}",
                html(&plan.location_code),
                super::handlers::days_text(lang, plan.duration_days),
                super::handlers::devices_text(lang, plan.seats),
                data
            )
        })
        .unwrap_or_default();
    let card = payments::card_of(o).map(|c| html(&c.number)).unwrap_or_default();
    let customer = html(&payments::person(c.username.as_deref(), c.first_name.as_deref(), c.telegram_id));
    let sent = p.submitted_at.map(|t| i18n::moment(lang, t)).unwrap_or_default();
    let auto = match (settings.payments.card.auto_accept, p.review_deadline) {
        (true, Some(due))
            if settings.payments.card.auto_accept_ceiling(p.currency).is_some_and(|m| p.amount_minor <= m) =>
        {
            i18n::t_args(lang, "review-auto-at", &[("at", i18n::moment(lang, due).into())])
        }
        _ => i18n::t(lang, "review-no-auto"),
    };
    let text = i18n::t_args(
        lang,
        "review-caption",
        &[
            ("payment", p.id.to_string().into()),
            ("status", status_line(v, lang).into()),
            ("order", o.id.to_string().into()),
            ("kind", i18n::t(lang, &format!("order-kind-{}", o.kind)).into()),
            ("plan", plan.into()),
            ("amount", v.amount.format(lang).into()),
            ("card", card.into()),
            ("customer", customer.into()),
            ("paid", Arg::Count(v.history.0)),
            ("rejected", Arg::Count(v.history.1)),
            ("sent", sent.into()),
            ("auto", auto.into()),
        ],
    );
    // at most 1024 characters as shown: every part is bounded (names by Telegram, a typed reason by `reason_text`)
    text
}

/// Accept / Reject for a review under review (none once decided, except Reject for an auto-accepted one).
pub fn keyboard(v: &PaymentView, lang: Language) -> InlineKeyboardMarkup {
    let id = v.payment.id;
    let b = |key: &str, cb: Cb| InlineKeyboardButton::callback(i18n::t(lang, key), cb.to_string());
    let rows = match v.payment.status {
        PaymentStatus::UnderReview => {
            vec![vec![b("btn-accept", Cb::ReviewAccept(id)), b("btn-reject", Cb::ReviewReject(id))]]
        }
        PaymentStatus::AutoAccepted => vec![vec![b("btn-reject", Cb::ReviewReject(id))]],
        _ => vec![],
    };
    InlineKeyboardMarkup::new(rows)
}

/// The preset reasons, a typed one, and Back.
pub fn reasons_keyboard(payment_id: i64, lang: Language) -> InlineKeyboardMarkup {
    let b = |reason: RejectReason| {
        let key = format!("reject-reason-{}", reason.as_str().replace('_', "-"));
        InlineKeyboardButton::callback(i18n::t(lang, &key), Cb::ReviewRejectWith(payment_id, reason).to_string())
    };
    InlineKeyboardMarkup::new(vec![
        vec![b(RejectReason::WrongAmount), b(RejectReason::Unreadable)],
        vec![b(RejectReason::NotReceived), b(RejectReason::Duplicate)],
        vec![
            InlineKeyboardButton::callback(i18n::t(lang, "btn-reject-typed"), Cb::ReviewTyped(payment_id).to_string()),
            InlineKeyboardButton::callback(i18n::t(lang, "btn-back"), Cb::ReviewBack(payment_id).to_string()),
        ],
    ])
}

fn unreachable_or_retry(e: RequestError) -> NotifyError {
    match e {
        RequestError::RetryAfter(secs) => NotifyError::RetryAfter(secs.seconds().into()),
        other => NotifyError::Other(other.into()),
    }
}

/// How long posting or closing a review waits for another one of the same payment (another worker, another
/// instance) to finish.
const REVIEW_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Holds the payment's review lock: posting and closing its copies never run at once, so each copy is edited once
/// per decision and a copy never ends up showing an earlier decision than a later edit did.
async fn review_lock(locks: &Locks, payment_id: i64) -> Result<HeldLock, NotifyError> {
    let key = crate::db::advisory_key(&format!("review.{payment_id}"));
    match locks.lock_within(key, REVIEW_LOCK_WAIT).await {
        Ok(Some(held)) => Ok(held),
        Ok(None) => Err(NotifyError::Other(anyhow::anyhow!("review {payment_id} is being posted or closed elsewhere"))),
        Err(e) => Err(NotifyError::Other(e.into())),
    }
}

/// Posts the review to every review chat that does not have it yet (a retry skips the chats done), then brings
/// every copy up to date if the payment was decided meanwhile.
pub async fn post(
    bot: &TgBot,
    pool: &sqlx::PgPool,
    locks: &Locks,
    settings: &Settings,
    payment_id: i64,
) -> Result<(), NotifyError> {
    let held = review_lock(locks, payment_id).await?;
    let posted = post_copies(bot, pool, settings, payment_id).await;
    held.release().await;
    posted
}

async fn post_copies(
    bot: &TgBot,
    pool: &sqlx::PgPool,
    settings: &Settings,
    payment_id: i64,
) -> Result<(), NotifyError> {
    let v = payments::view(pool, payment_id).await.map_err(|e| NotifyError::Other(e.into()))?;
    let (Some(file_id), Some(kind)) = (v.payment.receipt_file_id.clone(), v.payment.receipt_kind.clone()) else {
        return Ok(());
    };
    let lang = admin_lang(settings);
    let text = caption(&v, settings);
    let markup = keyboard(&v, lang);
    for chat in review_chats(pool, settings).await {
        if copies::posted(pool, payment_id, chat).await.map_err(|e| NotifyError::Other(e.into()))? {
            continue;
        }
        let file = InputFile::file_id(teloxide::types::FileId(file_id.clone()));
        let sent = if kind == "document" {
            let req = bot.api().send_document(ChatId(chat), file).caption(&text).parse_mode(ParseMode::Html);
            bot.send(ChatId(chat), Kind::Send, req.reply_markup(markup.clone())).await
        } else {
            let req = bot.api().send_photo(ChatId(chat), file).caption(&text).parse_mode(ParseMode::Html);
            bot.send(ChatId(chat), Kind::Send, req.reply_markup(markup.clone())).await
        };
        match sent {
            Ok(msg) => {
                copies::record(pool, payment_id, chat, msg.id.0, true)
                    .await
                    .map_err(|e| NotifyError::Other(e.into()))?;
                if v.payment.status != PaymentStatus::UnderReview {
                    // sent showing the decision already
                    let copy = copies::ReviewMessage { chat_id: chat, message_id: msg.id.0, has_photo: true };
                    copies::close(pool, payment_id, &copy, v.payment.status)
                        .await
                        .map_err(|e| NotifyError::Other(e.into()))?;
                }
            }
            // an admin who blocked the bot or left: the others still get it
            Err(RequestError::Api(e)) => {
                tracing::warn!(chat.id = chat, error = %e, "could not post a review to an admin chat")
            }
            Err(e) => return Err(unreachable_or_retry(e)),
        }
    }
    // decided while we posted: show it on the copies that do not yet
    let now = payments::view(pool, payment_id).await.map_err(|e| NotifyError::Other(e.into()))?;
    if now.payment.status != PaymentStatus::UnderReview {
        edit_open(bot, pool, settings, &now).await?;
    }
    Ok(())
}

/// Edits every copy of a decided review that does not show the decision yet.
pub async fn close(
    bot: &TgBot,
    pool: &sqlx::PgPool,
    locks: &Locks,
    settings: &Settings,
    payment_id: i64,
) -> Result<(), NotifyError> {
    let held = review_lock(locks, payment_id).await?;
    let closed = match payments::view(pool, payment_id).await {
        Ok(v) => edit_open(bot, pool, settings, &v).await,
        Err(e) => Err(NotifyError::Other(e.into())),
    };
    held.release().await;
    closed
}

/// Edits the open copies to show `v`'s decision and closes them (an automatic acceptance's copies keep their Reject
/// button: a Reject reopens them).
async fn edit_open(bot: &TgBot, pool: &sqlx::PgPool, settings: &Settings, v: &PaymentView) -> Result<(), NotifyError> {
    let payment_id = v.payment.id;
    let lang = admin_lang(settings);
    let text = caption(v, settings);
    let markup = keyboard(v, lang);
    for copy in copies::open(pool, payment_id).await.map_err(|e| NotifyError::Other(e.into()))? {
        let (chat, message) = (ChatId(copy.chat_id), MessageId(copy.message_id));
        let edited = if copy.has_photo {
            let req = bot.api().edit_message_caption(chat, message).caption(&text).parse_mode(ParseMode::Html);
            bot.send(chat, Kind::Edit, req.reply_markup(markup.clone())).await.map(|_| ())
        } else {
            let req = bot.api().edit_message_text(chat, message, &text).parse_mode(ParseMode::Html);
            bot.send(chat, Kind::Edit, req.reply_markup(markup.clone())).await.map(|_| ())
        };
        match edited {
            Ok(()) | Err(RequestError::Api(ApiError::MessageNotModified)) => {}
            Err(RequestError::Api(e)) => {
                tracing::info!(chat.id = copy.chat_id, error = %e, "a review copy could not be edited")
            }
            Err(e) => return Err(unreachable_or_retry(e)),
        }
        copies::close(pool, payment_id, &copy, v.payment.status).await.map_err(|e| NotifyError::Other(e.into()))?;
    }
    Ok(())
}
