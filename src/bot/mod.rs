//! The Telegram bot: durable intake (webhook or long polling) → the inbox (per-chat ordered, leased) →
//! handlers (thin: parse → service → screen) → replies; notices go out through the job table.
//!
//! Updates come from our own inbox table rather than teloxide's dispatcher, so routing is a plain `match`
//! over the typed button payloads (`callback::Cb`) and commands; teloxide provides the Bot API client and
//! its `Throttle` adaptor (≈1 message/s per chat, 30/s overall, waits out 429s).

pub mod callback;
pub mod handlers;
pub mod inbox;
pub mod intake;
pub mod notifier;
pub mod outbox;
pub mod ui;

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use intake::Intake;

/// The Bot API client we use everywhere: teloxide's `Bot` behind its rate-limiting adaptor.
pub type TgBot = teloxide::adaptors::Throttle<Bot>;

/// The bot's outside-facing parts, present when a token is configured.
#[derive(Clone)]
pub struct Telegram {
    pub bot: TgBot,
    pub intake: Intake,
}

impl Telegram {
    /// Builds the client (no network yet). Needs a Tokio runtime (the throttle runs a task).
    pub fn new(settings: &Settings) -> anyhow::Result<Option<Telegram>> {
        let Some(token) = &settings.telegram.token else { return Ok(None) };
        let bot = Bot::new(token.expose_secret()).set_api_url(settings.telegram.api_url.clone());
        let limits = teloxide::adaptors::throttle::Limits::default();
        let bot = teloxide::adaptors::Throttle::new_spawn(bot, limits);
        Ok(Some(Telegram { bot, intake: Intake::new(settings.telegram.intake_queue) }))
    }
}

/// Our webhook URL, `{telegram.public_url}/telegram/webhook`: any path of the public URL is kept (a shop behind a
/// reverse proxy under `/vpn` is reached at `/vpn/telegram/webhook`), with or without its trailing slash.
pub fn webhook_url(settings: &Settings) -> Option<url::Url> {
    let mut url = settings.telegram.public_url.clone()?;
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut().ok()?.pop_if_empty().extend(["telegram", "webhook"]);
    Some(url)
}

/// Registers the webhook (webhook mode) or removes it (polling mode, which needs it gone).
pub async fn configure_delivery(tg: &Telegram, settings: &Settings) -> anyhow::Result<()> {
    let me = tg.bot.get_me().await.context("Telegram getMe (is the token right?)")?;
    tracing::info!(bot = %me.username(), "Telegram bot connected");
    match webhook_url(settings) {
        Some(url) => {
            let secret =
                settings.telegram.webhook_secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default();
            tg.bot
                .set_webhook(url.clone())
                .secret_token(secret)
                .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
                .max_connections(settings.telegram.max_connections)
                .await
                .context("Telegram setWebhook")?;
            tracing::info!(%url, "Telegram webhook set");
        }
        None => {
            tg.bot.delete_webhook().await.context("Telegram deleteWebhook")?;
            tracing::info!("no telegram.public_url: receiving updates by long polling");
        }
    }
    Ok(())
}

/// Long polling (local use): fetch updates, store each durably, then confirm them to Telegram with the next
/// offset. A crash between storing and confirming only repeats updates, which the inbox ignores.
pub async fn poll(tg: Telegram, cancel: CancellationToken) {
    let mut offset: i32 = 0;
    while !cancel.is_cancelled() {
        let request = tg
            .bot
            .get_updates()
            .offset(offset)
            .timeout(25)
            .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
        let raw: Result<Vec<serde_json::Value>, _> = tokio::select! {
            _ = cancel.cancelled() => return,
            r = raw_updates(request) => r,
        };
        match raw {
            Ok(updates) => {
                for update in updates {
                    let id = update.get("update_id").and_then(|v| v.as_i64()).unwrap_or(-1);
                    if tg.intake.accept(update).await.is_err() {
                        break;
                    }
                    offset = offset.max(i32::try_from(id + 1).unwrap_or(offset));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Telegram getUpdates failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}

/// The raw JSON of each update, so what is stored is exactly what Telegram sent.
async fn raw_updates(
    request: <TgBot as Requester>::GetUpdates,
) -> Result<Vec<serde_json::Value>, teloxide::RequestError> {
    use teloxide::requests::Request;
    let updates = request.send().await?;
    Ok(updates.into_iter().filter_map(|u| serde_json::to_value(u).ok()).collect())
}
