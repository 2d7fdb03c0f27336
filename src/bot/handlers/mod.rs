//! Routing: an update becomes a call to one handler. Handlers are thin (parse → service → screen). An update
//! may be handled again (after an error, a panic, the time limit or a crash): state lives in the database, the
//! messages an earlier attempt sent are skipped (`ui::Progress`), and screens are edited in place — but a
//! service call that is not idempotent can take effect twice, so services check state before they change it.

mod admin;
mod buy;
mod menu;
mod pay;
mod receipt;
pub(crate) mod services;
mod trial;

pub use buy::{data_text, days_text, devices_text};

use teloxide::prelude::*;
use teloxide::types::{CallbackQuery, Message, Update, UpdateKind};

use super::TgBot;
use super::callback::Cb;
use super::ui::{Ctx, Progress};
use crate::app::AppState;
use crate::error::AppError;
use crate::services::users::{self, TelegramUser};

/// What a handler can fail with: Telegram (retry the update) or our own services.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Telegram(#[from] teloxide::RequestError),
    #[error(transparent)]
    App(#[from] AppError),
}

pub type HandlerResult = Result<(), HandlerError>;

/// Handles one stored update; `progress` knows what earlier attempts sent.
pub async fn handle(app: &AppState, bot: &TgBot, payload: &str, progress: &Progress) -> HandlerResult {
    let update: Update = match serde_json::from_str(payload) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "an update we cannot read; skipping it");
            return Ok(());
        }
    };
    match update.kind {
        UpdateKind::Message(msg) => on_message(app, bot, msg, progress).await,
        UpdateKind::CallbackQuery(q) => on_callback(app, bot, q, progress).await,
        _ => Ok(()),
    }
}

async fn context<'a>(
    app: &'a AppState,
    bot: &'a TgBot,
    from: &teloxide::types::User,
    chat: ChatId,
    progress: &'a Progress,
) -> Result<Ctx<'a>, HandlerError> {
    let who = TelegramUser {
        telegram_id: i64::try_from(from.id.0).map_err(|_| AppError::invalid("bad user id"))?,
        username: from.username.as_deref(),
        first_name: Some(from.first_name.as_str()),
        language_code: from.language_code.as_deref(),
    };
    let user = users::touch(&app.pool, &who, &app.settings).await?;
    Ok(Ctx { app, bot, user, chat, origin: None, progress })
}

/// Banned customers get one clear message, once, and nothing else.
async fn banned(ctx: &Ctx<'_>) -> Result<bool, HandlerError> {
    if ctx.user.banned_at.is_none() {
        return Ok(false);
    }
    if users::take_ban_notice(&ctx.app.pool, ctx.user.id).await? {
        let text = ctx.t_args("banned", &[("support", ctx.app.settings.shop.support_contact.clone().into())]);
        ctx.send(super::ui::Screen::new(text, vec![])).await?;
    }
    Ok(true)
}

async fn on_message(app: &AppState, bot: &TgBot, msg: Message, progress: &Progress) -> HandlerResult {
    let Some(from) = msg.from.as_ref() else { return Ok(()) };
    let command =
        msg.text().map(|t| t.split_whitespace().next().unwrap_or("").split('@').next().unwrap_or("").to_owned());
    let admin_command = command.as_deref().is_some_and(|c| admin::COMMANDS.contains(&c));
    // the admin group (payments.card.review_chat_id) takes admin commands; other groups are ignored
    let admin_group = app.settings.payments.card.review_chat_id == Some(msg.chat.id.0);
    if from.is_bot || !(msg.chat.is_private() || (admin_group && admin_command)) {
        return Ok(());
    }
    let ctx = context(app, bot, from, msg.chat.id, progress).await?;
    if banned(&ctx).await? {
        return Ok(());
    }
    if admin_command {
        if users::is_admin(&app.pool, &app.settings, ctx.user.telegram_id).await? {
            return admin::command(&ctx, from, msg.text().unwrap_or_default()).await;
        }
        if !msg.chat.is_private() {
            return Ok(());
        }
        return menu::unknown(&ctx).await;
    }
    if let Some((receipt, meta, mime)) = receipt::receipt_of(&msg) {
        return receipt::take(&ctx, receipt, meta, mime).await;
    }
    if command.as_deref().is_none_or(|c| !c.starts_with('/')) && receipt::awaits_receipt(&ctx).await? {
        return receipt::hint(&ctx).await;
    }
    match command.as_deref() {
        Some("/start") => match msg.text().and_then(|t| t.split_whitespace().nth(1)) {
            // back from a payment page: https://t.me/<bot>?start=paid_<order>
            Some(arg) if arg.starts_with("paid_") => match arg[5..].parse::<i64>() {
                Ok(order) if order > 0 => menu::back_from_payment(&ctx, order).await,
                _ => menu::start(&ctx).await,
            },
            _ => menu::start(&ctx).await,
        },
        Some("/menu") => menu::main(&ctx).await,
        Some("/buy") => buy::start(&ctx).await,
        Some("/trial") => trial::offer(&ctx).await,
        Some("/services") => services::list(&ctx).await,
        Some("/language") => menu::language(&ctx).await,
        Some("/help") => menu::help(&ctx).await,
        _ => menu::unknown(&ctx).await,
    }
}

async fn on_callback(app: &AppState, bot: &TgBot, q: CallbackQuery, progress: &Progress) -> HandlerResult {
    let chat =
        q.message.as_ref().map(|m| m.chat().id).unwrap_or(ChatId(i64::try_from(q.from.id.0).unwrap_or_default()));
    let mut ctx = context(app, bot, &q.from, chat, progress).await?;
    ctx.origin = q.message.as_ref().map(|m| m.id());
    if banned(&ctx).await? {
        answer(&ctx, &q, Some(ctx.t_args("banned", &[("support", app.settings.shop.support_contact.clone().into())])))
            .await;
        return Ok(());
    }
    let Some(cb) = q.data.as_deref().and_then(Cb::parse) else {
        answer(&ctx, &q, Some(ctx.t("stale-button"))).await;
        return menu::main(&ctx).await;
    };
    let result = match cb {
        Cb::ReviewAccept(_)
        | Cb::ReviewReject(_)
        | Cb::ReviewRejectWith(..)
        | Cb::ReviewTyped(_)
        | Cb::ReviewBack(_) => {
            if users::is_admin(&app.pool, &app.settings, ctx.user.telegram_id).await? {
                admin::button(&ctx, &q, cb).await
            } else {
                Ok(Some(ctx.t("stale-button")))
            }
        }
        cb => route(&ctx, cb).await,
    };
    let toast = match &result {
        Ok(toast) => toast.clone(),
        Err(HandlerError::App(e)) => Some(ctx.t(error_key(e))),
        Err(HandlerError::Telegram(_)) => None,
    };
    answer(&ctx, &q, toast).await;
    match result {
        Ok(_) => Ok(()),
        // the customer's own mistake or a stale button: told in the toast; show where they are now
        Err(HandlerError::App(AppError::Conflict(_) | AppError::NotFound(_))) => menu::main(&ctx).await,
        Err(HandlerError::App(AppError::Invalid(_) | AppError::RateLimited { .. })) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs a button; `Ok(Some(text))` is a short toast to show with the answer.
async fn route(ctx: &Ctx<'_>, cb: Cb) -> Result<Option<String>, HandlerError> {
    match cb {
        Cb::Menu => menu::main(ctx).await.map(|_| None),
        Cb::Help => menu::help(ctx).await.map(|_| None),
        Cb::Language => menu::language(ctx).await.map(|_| None),
        Cb::SetLanguage(lang) => menu::set_language(ctx, lang).await,
        Cb::Buy => buy::start(ctx).await.map(|_| None),
        Cb::Resume(order) => buy::resume(ctx, order).await.map(|_| None),
        Cb::Location(o, code) => buy::choose(ctx, o, crate::services::orders::Choice::Location(code)).await,
        Cb::Duration(o, d) => buy::choose(ctx, o, crate::services::orders::Choice::Duration(d)).await,
        Cb::Devices(o, n) => buy::choose(ctx, o, crate::services::orders::Choice::Devices(n)).await,
        Cb::Data(o, gb) => buy::choose_data(ctx, o, gb).await,
        Cb::Back(o) => buy::choose(ctx, o, crate::services::orders::Choice::Back).await,
        Cb::Pay(o, method) => pay::pay(ctx, o, method).await,
        Cb::Cancel(o) => pay::cancel(ctx, o).await,
        Cb::Order(o) => pay::order(ctx, o).await.map(|_| None),
        Cb::Trial => trial::offer(ctx).await.map(|_| None),
        Cb::TrialLocation(code) => trial::take(ctx, &code).await,
        Cb::Services => services::list(ctx).await.map(|_| None),
        Cb::Service(id) => services::show(ctx, id).await.map(|_| None),
        Cb::Qr(id) => services::qr(ctx, id).await,
        Cb::Renew(id) => buy::renew(ctx, id).await.map(|_| None),
        Cb::TopUp(id) => buy::top_up(ctx, id).await.map(|_| None),
        Cb::NewFeedUrl(id) => services::new_feed_url(ctx, id).await,
        // admins' review buttons are routed before this
        Cb::ReviewAccept(_)
        | Cb::ReviewReject(_)
        | Cb::ReviewRejectWith(..)
        | Cb::ReviewTyped(_)
        | Cb::ReviewBack(_) => Ok(Some(ctx.t("stale-button"))),
    }
}

/// The message key for a service error shown to a customer.
fn error_key(e: &AppError) -> &'static str {
    match e {
        AppError::Conflict(_) => "stale-button",
        AppError::NotFound(_) => "not-found",
        AppError::Invalid(_) | AppError::IllegalTransition(_) => "option-unavailable",
        AppError::RateLimited { .. } => "slow-down",
        _ => "error-generic",
    }
}

/// Every button press is answered (or the customer's spinner hangs); a failed answer changes nothing.
async fn answer(ctx: &Ctx<'_>, q: &CallbackQuery, text: Option<String>) {
    let mut req = ctx.bot.api().answer_callback_query(q.id.clone());
    if let Some(text) = text {
        req = req.text(text);
    }
    if let Err(e) = req.await {
        tracing::debug!(error = %e, "could not answer a callback query");
    }
}
