//! Admin commands and review buttons: `/pending` (the queue, oldest first, with buttons), `/accept <payment>`,
//! `/reject <payment> [reason]`, `/payment <id>`, `/stats`. Only admins get here (the caller checks; anyone else
//! gets the ordinary "unknown command"). Every decision goes through `review::decide`: of concurrent decisions one
//! wins, and the others are told who decided, when and how.

use teloxide::prelude::*;
use teloxide::types::{CallbackQuery, MessageId, ParseMode};

use super::{HandlerError, HandlerResult};
use crate::bot::limits::Kind;
use crate::bot::review::{self, admin_lang};
use crate::bot::ui::{Ctx, Screen, html};
use crate::domain::Money;
use crate::error::AppError;
use crate::i18n::{self, Arg};
use crate::services::payments::review::{Decision, RejectReason, Reviewer, Verdict, decide, pending, stats};
use crate::services::payments::{self, copies};

/// The admin commands.
pub const COMMANDS: &[&str] = &["/pending", "/accept", "/reject", "/payment", "/stats"];

/// How many reviews `/pending` shows at once.
const PENDING_SHOWN: i64 = 10;

/// Who the admin is, for the decision and the audit log.
async fn reviewer(ctx: &Ctx<'_>, from: &teloxide::types::User) -> Result<Reviewer, HandlerError> {
    let id = i64::try_from(from.id.0).map_err(|_| AppError::invalid("bad user id"))?;
    Ok(Reviewer::telegram(&ctx.app.pool, id, from.username.as_deref(), &from.first_name).await?)
}

fn say(ctx: &Ctx<'_>, key: &str, args: &[(&'static str, Arg)]) -> Screen {
    Screen::new(i18n::t_args(admin_lang(&ctx.app.settings), key, args), vec![])
}

/// The answer to a decision, for the admin who made it.
fn outcome_text(ctx: &Ctx<'_>, payment_id: i64, decision: &Decision) -> String {
    let lang = admin_lang(&ctx.app.settings);
    let id = ("payment", Arg::from(payment_id.to_string()));
    match decision {
        Decision::Decided { status } => {
            i18n::t_args(lang, &format!("admin-decided-{}", status.as_str().replace('_', "-")), &[id])
        }
        Decision::Already { status, by, at } => i18n::t_args(
            lang,
            "admin-already",
            &[
                id,
                ("status", status.as_str().replace('_', " ").into()),
                ("by", html(by.as_deref().unwrap_or("-")).into()),
                ("at", at.map(|t| i18n::moment(lang, t)).unwrap_or_default().into()),
            ],
        ),
        Decision::NotDue => i18n::t_args(lang, "admin-not-due", &[id]),
    }
}

/// The error an admin sees for a decision that could not be made.
fn error_text(ctx: &Ctx<'_>, payment_id: i64, e: &AppError) -> Option<String> {
    let lang = admin_lang(&ctx.app.settings);
    let id = ("payment", Arg::from(payment_id.to_string()));
    match e {
        AppError::NotFound(_) => Some(i18n::t_args(lang, "admin-no-payment", &[id])),
        AppError::Invalid(m) | AppError::Conflict(m) => {
            Some(i18n::t_args(lang, "admin-cannot", &[id, ("why", html(m).into())]))
        }
        _ => None,
    }
}

/// Runs an admin command (the caller checked that the sender is an admin).
pub async fn command(ctx: &Ctx<'_>, from: &teloxide::types::User, text: &str) -> HandlerResult {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or("").split('@').next().unwrap_or("");
    let arg = words.next();
    let rest: Vec<&str> = words.collect();
    let id = arg.and_then(|a| a.trim_start_matches('#').parse::<i64>().ok()).filter(|v| *v > 0);
    match (name, id) {
        ("/pending", _) => return pending_queue(ctx).await,
        ("/stats", _) => return show_stats(ctx).await,
        ("/accept" | "/reject" | "/payment", None) => {
            let usage = say(ctx, "admin-usage", &[("command", name.to_owned().into())]);
            ctx.send(usage).await?;
            return Ok(());
        }
        _ => {}
    }
    let Some(id) = id else { return Ok(()) };
    let verdict = match name {
        "/accept" => Verdict::Accept,
        "/reject" => {
            let typed = rest.join(" ");
            Verdict::Reject { reason: RejectReason::Other, text: (!typed.trim().is_empty()).then_some(typed) }
        }
        _ => return show_payment(ctx, id).await,
    };
    let who = reviewer(ctx, from).await?;
    let text = match decide(&ctx.app.pool, &ctx.app.settings, id, &verdict, &who).await {
        Ok(decision) => outcome_text(ctx, id, &decision),
        Err(e) => error_text(ctx, id, &e).ok_or(HandlerError::App(e))?,
    };
    ctx.send(Screen::new(text, vec![])).await?;
    Ok(())
}

/// `/pending`: the reviews waiting, oldest first, each with its buttons.
async fn pending_queue(ctx: &Ctx<'_>) -> HandlerResult {
    let queue = pending(&ctx.app.pool, PENDING_SHOWN).await?;
    if queue.is_empty() {
        ctx.send(say(ctx, "admin-queue-empty", &[])).await?;
        return Ok(());
    }
    ctx.send(say(ctx, "admin-queue", &[("n", Arg::Count(queue.len() as i64))])).await?;
    for v in &queue {
        show_copy(ctx, v).await?;
    }
    Ok(())
}

/// Sends one review as a text message with its buttons, recorded so the decision edits it too.
async fn show_copy(ctx: &Ctx<'_>, v: &payments::PaymentView) -> HandlerResult {
    let Some(step) = ctx.progress.step() else { return Ok(()) };
    let text = review::caption(v, &ctx.app.settings);
    let markup = review::keyboard(v, admin_lang(&ctx.app.settings));
    let req = ctx.bot.api().send_message(ctx.chat, text).parse_mode(ParseMode::Html).reply_markup(markup);
    let msg = ctx.bot.send(ctx.chat, Kind::Send, req).await?;
    step.sent().await;
    if matches!(
        v.payment.status,
        crate::domain::status::PaymentStatus::UnderReview | crate::domain::status::PaymentStatus::AutoAccepted
    ) {
        copies::record(&ctx.app.pool, v.payment.id, ctx.chat.0, msg.id.0, false).await?;
    }
    Ok(())
}

/// `/payment <id>`: one payment, whatever its state.
async fn show_payment(ctx: &Ctx<'_>, id: i64) -> HandlerResult {
    match payments::view(&ctx.app.pool, id).await {
        Ok(v) => show_copy(ctx, &v).await,
        Err(AppError::NotFound(_)) => {
            ctx.send(say(ctx, "admin-no-payment", &[("payment", id.to_string().into())])).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `/stats`: today, 7 and 30 days, and what stands now.
async fn show_stats(ctx: &Ctx<'_>) -> HandlerResult {
    let lang = admin_lang(&ctx.app.settings);
    let s = stats(&ctx.app.pool).await?;
    let mut lines = vec![i18n::t(lang, "stats-title")];
    for (days, sales) in &s.windows {
        let revenue = if sales.revenue.is_empty() {
            "0".to_owned()
        } else {
            sales
                .revenue
                .iter()
                .filter_map(|(c, m)| Money::from_minor(*m, *c).ok())
                .map(|m| m.format(lang))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let window = if *days == 0 {
            i18n::t(lang, "stats-today")
        } else {
            i18n::t_args(lang, "stats-days", &[("days", Arg::Count((*days).into()))])
        };
        lines.push(i18n::t_args(
            lang,
            "stats-window",
            &[
                ("window", window.into()),
                ("revenue", revenue.into()),
                ("orders", Arg::Count(sales.paid_orders)),
                ("customers", Arg::Count(sales.new_customers)),
                ("trials", Arg::Count(sales.trials)),
            ],
        ));
    }
    lines.push(i18n::t_args(
        lang,
        "stats-now",
        &[("active", Arg::Count(s.active_subscriptions)), ("pending", Arg::Count(s.pending_reviews))],
    ));
    ctx.send(Screen::new(lines.join("\n\n"), vec![])).await?;
    Ok(())
}

/// A review button: decide, or switch the message's buttons. Returns the toast for the admin.
pub async fn button(
    ctx: &Ctx<'_>,
    q: &CallbackQuery,
    cb: crate::bot::callback::Cb,
) -> Result<Option<String>, HandlerError> {
    use crate::bot::callback::Cb;
    let lang = admin_lang(&ctx.app.settings);
    let (id, verdict) = match cb {
        Cb::ReviewAccept(id) => (id, Verdict::Accept),
        Cb::ReviewRejectWith(id, reason) => (id, Verdict::Reject { reason, text: None }),
        Cb::ReviewReject(id) => {
            set_markup(ctx, review::reasons_keyboard(id, lang)).await?;
            return Ok(None);
        }
        Cb::ReviewBack(id) => {
            let v = payments::view(&ctx.app.pool, id).await?;
            set_markup(ctx, review::keyboard(&v, lang)).await?;
            return Ok(None);
        }
        Cb::ReviewTyped(id) => {
            return Ok(Some(i18n::t_args(lang, "admin-typed-reason", &[("payment", id.to_string().into())])));
        }
        _ => return Ok(None),
    };
    let who = reviewer(ctx, &q.from).await?;
    let toast = match decide(&ctx.app.pool, &ctx.app.settings, id, &verdict, &who).await {
        Ok(decision) => {
            if let Decision::Already { .. } = decision {
                // this copy may predate the decision: show it as it stands
                let v = payments::view(&ctx.app.pool, id).await?;
                set_markup(ctx, review::keyboard(&v, lang)).await?;
            }
            outcome_text(ctx, id, &decision)
        }
        Err(e) => error_text(ctx, id, &e).ok_or(HandlerError::App(e))?,
    };
    // toasts are plain text
    Ok(Some(strip_tags(&toast)))
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

async fn set_markup(ctx: &Ctx<'_>, markup: teloxide::types::InlineKeyboardMarkup) -> HandlerResult {
    let Some(message) = ctx.origin else { return Ok(()) };
    let req = ctx.bot.api().edit_message_reply_markup(ctx.chat, MessageId(message.0)).reply_markup(markup);
    match ctx.bot.send(ctx.chat, Kind::Edit, req).await {
        Ok(_) | Err(teloxide::RequestError::Api(teloxide::ApiError::MessageNotModified)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
