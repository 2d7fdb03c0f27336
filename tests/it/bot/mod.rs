//! The bot, driven like Telegram drives it: updates POSTed to the real app's webhook, replies read from a
//! local fake of the Bot API.

mod awaiting;
mod conversation;
mod currency;
mod extend;
mod inbox;
mod intake;
mod journey;
mod limits;
mod outbound;
mod services;
mod trial;

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use vpnshop::config::Settings;
use vpnshop::services::servers::{self, Actor};

use crate::helpers::{TestApp, spawn_app_with};
use crate::support::{Call, FakeTelegram, TgUser, callback_update, command_update};

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

/// A customer named Sam who speaks `lang`.
pub fn user(id: i64, lang: &str) -> TgUser {
    TgUser { id, first_name: "Sam".into(), username: Some(format!("sam{id}")), language_code: Some(lang.into()) }
}

/// Presses a button on the bot's latest message in this chat and returns the screen it leads to.
pub async fn press(shop: &BotShop, u: &TgUser, data: &str) -> Screen {
    let message = shop.last_message_id(u);
    shop.deliver(&callback_update(next_id(), u, message, data)).await;
    shop.screen(u)
}

/// Sends a command and returns the screen it leads to.
pub async fn command(shop: &BotShop, u: &TgUser, text: &str) -> Screen {
    shop.deliver(&command_update(next_id(), u, text)).await;
    shop.screen(u)
}

/// The text of the latest answer to a button press in this chat.
pub fn last_toast(shop: &BotShop) -> String {
    let answer = shop.tg.calls_of("answerCallbackQuery").pop().expect("a button press was answered");
    answer.params["text"].as_str().unwrap_or_default().to_owned()
}

/// /buy, then `de`, 30 days, one device, 50 GB: the summary. Returns the order id and the summary.
pub async fn walk_to_summary(shop: &BotShop, u: &TgUser) -> (i64, Screen) {
    let locations = command(shop, u, "/buy").await;
    let de = locations.data("l:");
    let order: i64 = de[2..de.rfind(':').unwrap()].parse().unwrap();
    let durations = press(shop, u, &de).await;
    let devices = press(shop, u, &durations.data(&format!("d:{order}:30"))).await;
    let data = press(shop, u, &devices.data(&format!("s:{order}:1"))).await;
    let summary = press(shop, u, &data.data(&format!("dm:{order}:51200"))).await;
    (order, summary)
}

/// An order's (status, amount, currency).
pub async fn order_row(pool: &PgPool, id: i64) -> (String, Option<i64>, Option<String>) {
    sqlx::query_as("SELECT status, amount_minor, currency FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// How many drafts exist.
pub async fn drafts(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'draft'").fetch_one(pool).await.unwrap()
}

/// A fresh update id per call, increasing.
pub fn next_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A paid subscription of a customer who has written to the bot: a 30-day plan in `de` with `seats` devices
/// (50 GB, or unlimited), fulfilled from an order of `amount_minor` `currency`, in `status`, placed on the `de`
/// node with one live client per seat. Returns its id.
pub async fn subscription(pool: &PgPool, telegram_id: i64, status: &str, seats: i32, unlimited: bool) -> i64 {
    let user: i64 = sqlx::query_scalar("SELECT id FROM users WHERE telegram_id = $1")
        .bind(telegram_id)
        .fetch_one(pool)
        .await
        .expect("the customer wrote to the bot first");
    let cap = (!unlimited).then_some(50_i64 << 30);
    let plan: i64 = sqlx::query_scalar(
        "SELECT id FROM plans WHERE location_code = 'de' AND duration_days = 30 AND seats = $1
            AND data_cap_bytes IS NOT DISTINCT FROM $2 AND NOT is_trial",
    )
    .bind(seats)
    .bind(cap)
    .fetch_one(pool)
    .await
    .unwrap();
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
         VALUES ($1, $2, 299, 'USD', 'fulfilled') RETURNING id",
    )
    .bind(user)
    .bind(plan)
    .fetch_one(pool)
    .await
    .unwrap();
    let server: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE location_code = 'de' ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap();
    let placed = status != "pending";
    let sub: i64 = sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, order_id, plan_id, location_code, server_id, status, seats, duration_days,
                                    data_cap_bytes, token, starts_at, expires_at)
         VALUES ($1, $2, $3, 'de', $4, $5, $6, 30, $7, $8,
                 CASE WHEN $9 THEN now() END, CASE WHEN $9 THEN now() + interval '30 days' END)
         RETURNING id",
    )
    .bind(user)
    .bind(order)
    .bind(plan)
    .bind(server)
    .bind(status)
    .bind(seats)
    .bind(cap)
    // a feed token is 43 URL-safe characters
    .bind(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())[..43].to_owned())
    .bind(placed)
    .fetch_one(pool)
    .await
    .unwrap();
    for seat in 1..=seats {
        let uuid = uuid::Uuid::new_v4();
        let client: i64 = sqlx::query_scalar(
            "INSERT INTO clients (subscription_id, seat, server_id, uuid, email, node_state)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(sub)
        .bind(seat)
        .bind(server)
        .bind(uuid)
        .bind(format!("s{sub}-{seat}-{}", &uuid.simple().to_string()[..8]))
        .bind(if placed { "present" } else { "absent" })
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO traffic (client_id) VALUES ($1)").bind(client).execute(pool).await.unwrap();
    }
    sub
}
