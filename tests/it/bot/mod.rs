//! The bot, driven like Telegram drives it: updates POSTed to the real app's webhook, replies read from a
//! local fake of the Bot API.

mod conversation;
mod intake;
mod journey;
mod limits;
mod outbound;
mod trial;

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use vpnshop::config::Settings;
use vpnshop::services::servers::{self, Actor};

use crate::helpers::{TestApp, spawn_app_with};
use crate::support::{Call, FakeTelegram, TgUser};

pub const SECRET: &str = "test-webhook-secret_123";
pub const CARD: &str = "6037-9911-2233-4455";

/// The app with its bot pointed at a fake Telegram, in webhook mode, and a node registered in `de` (no SSH:
/// these tests stop at the shop window; provisioning has its own tests).
pub struct BotShop {
    pub app: TestApp,
    pub tg: FakeTelegram,
}

pub fn bot_settings(s: &mut Settings, tg: &FakeTelegram) {
    s.telegram.token = Some(tg.token().to_owned().into());
    s.telegram.api_url = tg.url();
    s.telegram.public_url = Some("https://shop.example/".parse().unwrap());
    s.telegram.webhook_secret = Some(SECRET.to_owned().into());
    s.payments.card.number = CARD.into();
    s.payments.card.holder = "Shop Owner".into();
    s.payments.card.bank = "Mellat".into();
    s.redis.prefix = format!("vpnshop-test-{}", uuid::Uuid::new_v4().simple());
}

pub async fn bot_shop(pool: PgPool) -> BotShop {
    bot_shop_with(pool, |_| {}).await
}

pub async fn bot_shop_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> BotShop {
    let tg = FakeTelegram::start().await;
    let app = spawn_app_with(pool, |s| {
        bot_settings(s, &tg);
        customize(s);
    })
    .await;
    add_node(&app.state.pool, "de").await;
    BotShop { app, tg }
}

/// Registers a node (never contacted here) so the location has room.
pub async fn add_node(pool: &PgPool, location: &str) {
    let input = crate::helpers::server_input(&format!("{location}-1"), location);
    servers::add(pool, &input, Actor::CLI).await.unwrap();
}

impl BotShop {
    /// Delivers an update the way Telegram does; returns the HTTP status.
    pub async fn post(&self, update: &Value) -> u16 {
        self.app
            .http
            .post(self.app.url("/telegram/webhook"))
            .header("x-telegram-bot-api-secret-token", SECRET)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Delivers an update and waits until the app has handled it.
    pub async fn deliver(&self, update: &Value) {
        assert_eq!(self.post(update).await, 200, "{update}");
        let id = update["update_id"].as_i64().unwrap();
        let pool = &self.app.state.pool;
        let start = std::time::Instant::now();
        loop {
            let handled: Option<bool> =
                sqlx::query_scalar("SELECT handled_at IS NOT NULL FROM telegram_updates WHERE update_id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .unwrap();
            if handled == Some(true) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "update {id} was not handled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The latest message the bot sent or edited in this chat (text and buttons).
    pub fn screen(&self, user: &TgUser) -> Screen {
        let call = self
            .tg
            .calls()
            .into_iter()
            .rev()
            .find(|c| {
                matches!(c.method.as_str(), "sendMessage" | "editMessageText")
                    && c.params["chat_id"].as_i64() == Some(user.id)
            })
            .expect("the bot said something");
        Screen::from(&call)
    }

    /// The message id of the latest message the bot sent to this chat.
    pub fn last_message_id(&self, user: &TgUser) -> i32 {
        self.tg.messages_to(user.id).last().expect("a message to this chat").message_id
    }
}

/// What the customer sees: the text and the buttons' callback data.
#[derive(Debug, Clone)]
pub struct Screen {
    pub text: String,
    pub buttons: Vec<(String, String)>,
}

impl From<&Call> for Screen {
    fn from(call: &Call) -> Screen {
        let buttons = call.params["reply_markup"]["inline_keyboard"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                    .map(|b| {
                        (
                            b["text"].as_str().unwrap_or("").to_owned(),
                            b["callback_data"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Screen { text: call.params["text"].as_str().unwrap_or_default().to_owned(), buttons }
    }
}

impl Screen {
    /// The callback data of the first button whose data starts with `prefix`.
    pub fn data(&self, prefix: &str) -> String {
        self.buttons
            .iter()
            .find(|(_, d)| d.starts_with(prefix))
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no button {prefix}… in {self:#?}"))
    }

    pub fn label_of(&self, data: &str) -> String {
        self.buttons.iter().find(|(_, d)| d == data).map(|(l, _)| l.clone()).unwrap_or_default()
    }
}

/// A fresh update id per call, increasing.
pub fn next_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
