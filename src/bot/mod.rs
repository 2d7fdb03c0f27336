//! The Telegram bot: durable intake (webhook, or long polling in `polling`) → the inbox (per-chat ordered, leased) →
//! handlers (thin: parse → service → screen) → replies; notices go out through the job table.
//!
//! Updates come from our own inbox table rather than teloxide's dispatcher, so routing is a plain `match`
//! over the typed button payloads (`callback::Cb`) and commands; teloxide provides the Bot API client, and every
//! message goes through our limits first (`client`, `limits`: sent at once within Telegram's limits, waiting only
//! as long as needed beyond them, shared across instances through Redis).

pub mod broadcast;
pub mod callback;
pub mod client;
pub mod handlers;
pub mod inbox;
pub mod intake;
pub mod limits;
pub mod notifier;
pub mod outbox;
pub mod polling;
pub mod review;
pub mod ui;

use anyhow::Context;
use secrecy::ExposeSecret;
use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;

use crate::config::Settings;
use intake::Intake;

pub use client::TgBot;

/// The bot's outside-facing parts, present when a token is configured.
#[derive(Clone)]
pub struct Telegram {
    pub bot: TgBot,
    pub intake: Intake,
}

impl Telegram {
    /// Builds the client (no network yet); its send limits live in `redis` when given.
    pub fn new(settings: &Settings, redis: Option<redis::aio::ConnectionManager>) -> anyhow::Result<Option<Telegram>> {
        let Some(token) = &settings.telegram.token else { return Ok(None) };
        let api = Bot::new(token.expose_secret()).set_api_url(settings.telegram.api_url.clone());
        let limits =
            limits::Limits::new(limits::Rules::from_settings(&settings.telegram.limits), redis, &settings.redis.prefix);
        Ok(Some(Telegram { bot: TgBot::new(api, limits), intake: Intake::new(settings.telegram.intake_queue) }))
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
    let me = tg.bot.api().get_me().await.context("Telegram getMe (is the token right?)")?;
    tracing::info!(bot = %me.username(), "Telegram bot connected");
    match webhook_url(settings) {
        Some(url) => {
            let secret =
                settings.telegram.webhook_secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default();
            tg.bot
                .api()
                .set_webhook(url.clone())
                .secret_token(secret)
                .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
                .max_connections(settings.telegram.max_connections)
                .await
                .context("Telegram setWebhook")?;
            tracing::info!(%url, "Telegram webhook set");
        }
        None => {
            tg.bot.api().delete_webhook().await.context("Telegram deleteWebhook")?;
            tracing::info!("no telegram.public_url: receiving updates by long polling");
        }
    }
    Ok(())
}
