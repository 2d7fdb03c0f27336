//! Card-to-card payments through the bot: receipts, review by admins in Telegram, auto-accept of overdue reviews,
//! exactly-once fulfilment — against the fake Telegram, real Postgres and Redis (and a real node where a config
//! must work).

mod admin;
mod flow;
mod methods;
mod races;
mod receipts;
mod renewals;

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use vpnshop::config::Settings;

use crate::bot::{BotShop, Screen, bot_shop_with, next_id, user, walk_to_summary};
use crate::helpers::redis_url;
use crate::support::{Call, TgUser, callback_update, command_update, photo_update};

/// The admin who reviews (in `telegram.admin_ids`).
pub const ADMIN: i64 = 900_001;
/// A second admin, added with `vpnshop admin add` (an `admins` row).
pub const ADMIN2: i64 = 900_002;

/// The shop with the bot, card payments, two admins, Redis and the scheduler off (tests run sweeps themselves).
pub async fn card_shop(pool: PgPool) -> BotShop {
    card_shop_with(pool, |_| {}).await
}

pub async fn card_shop_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> BotShop {
    let shop = bot_shop_with(pool, |s| {
        card_settings(s);
        customize(s);
    })
    .await;
    vpnshop::services::users::add_admin(&shop.app.state.pool, "second", Some(ADMIN2), "admin").await.unwrap();
    shop
}

/// Card payment settings the tests use (the rest as shipped).
pub fn card_settings(s: &mut Settings) {
    s.telegram.admin_ids = vec![ADMIN];
    s.redis.url = Some(redis_url().into());
    s.payments.card.review_mins = 30;
    s.payments.card.deadline_mins = 60;
    s.scheduler.enabled = false;
}

/// An admin as a Telegram user.
pub fn admin(id: i64) -> TgUser {
    TgUser { id, first_name: "Ada".into(), username: Some(format!("ada{id}")), language_code: Some("en".into()) }
}

/// A JPEG's first bytes and then `seed`, so each receipt is a different image.
pub fn jpeg(seed: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0];
    bytes.extend_from_slice(seed.as_bytes());
    bytes.extend(std::iter::repeat_n(0x42, 2048));
    bytes
}

/// Walks a customer to the summary and pays by card: the order awaits payment. Returns the order id and the
/// payment screen.
pub async fn order_by_card(shop: &BotShop, u: &TgUser) -> (i64, Screen) {
    let (order, summary) = walk_to_summary(shop, u).await;
    let pay = crate::bot::press(shop, u, &summary.data(&format!("p:{order}:card"))).await;
    (order, pay)
}

/// The customer sends `bytes` as a photo (Telegram ids `file_id`/`unique`); waits until it was handled.
pub async fn send_receipt(shop: &BotShop, u: &TgUser, file_id: &str, unique: &str, bytes: Vec<u8>) -> String {
    shop.tg.add_file(file_id, unique, bytes);
    shop.deliver(&photo_update(next_id(), u, file_id, unique)).await;
    shop.screen(u).text
}

/// The payment of an order that is (or was) under review, newest.
pub async fn payment_of(pool: &PgPool, order: i64) -> i64 {
    sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn payment_status(pool: &PgPool, payment: i64) -> String {
    sqlx::query_scalar("SELECT status FROM payments WHERE id = $1").bind(payment).fetch_one(pool).await.unwrap()
}

/// Waits for `n` calls of `method` to `chat` (any order), returning them.
pub async fn wait_calls_to(shop: &BotShop, method: &str, chat: i64, n: usize) -> Vec<Call> {
    let start = Instant::now();
    loop {
        let calls: Vec<Call> =
            shop.tg.calls_of(method).into_iter().filter(|c| c.params["chat_id"].as_i64() == Some(chat)).collect();
        if calls.len() >= n {
            return calls;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{n} {method} to {chat} expected, got {calls:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Texts the bot sent to a chat (messages and captions, in order).
pub fn texts_to(shop: &BotShop, chat: i64) -> Vec<String> {
    shop.tg
        .calls()
        .into_iter()
        .filter(|c| c.params["chat_id"].as_i64() == Some(chat))
        .filter_map(|c| c.params["text"].as_str().or(c.params["caption"].as_str()).map(str::to_owned))
        .collect()
}

/// Waits until a text containing `needle` was sent to `chat`; returns it.
pub async fn wait_text(shop: &BotShop, chat: i64, needle: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(t) = texts_to(shop, chat).into_iter().find(|t| t.contains(needle)) {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no {needle:?} to {chat}; got {:#?}", texts_to(shop, chat));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An admin presses a button on a message in their chat.
pub async fn admin_press(shop: &BotShop, who: &TgUser, message_id: i32, data: &str) {
    shop.deliver(&callback_update(next_id(), who, message_id, data)).await;
}

/// An admin types a command; returns the bot's answer.
pub async fn admin_says(shop: &BotShop, who: &TgUser, text: &str) -> String {
    shop.deliver(&command_update(next_id(), who, text)).await;
    texts_to(shop, who.id).pop().unwrap_or_default()
}

/// The callback data of the buttons on a call (sendPhoto/sendMessage/edits).
pub fn buttons(call: &Call) -> Vec<String> {
    call.params["reply_markup"]["inline_keyboard"]
        .as_array()
        .map(|rows| rows.iter().flat_map(|r| r.as_array().cloned().unwrap_or_default()).collect::<Vec<Value>>())
        .unwrap_or_default()
        .iter()
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .collect()
}

/// A customer who speaks English.
pub fn customer(id: i64) -> TgUser {
    user(id, "en")
}

/// Waits for the review of `payment` posted to `chat` (the receipt with its caption); returns its message id.
pub async fn wait_review(shop: &BotShop, chat: i64, payment: i64) -> i32 {
    let needle = format!("Payment #{payment}</b>");
    let start = Instant::now();
    loop {
        let posted = shop
            .tg
            .messages_to(chat)
            .into_iter()
            .find(|m| m.file_id.is_some() && m.caption.as_deref().is_some_and(|c| c.contains(&needle)));
        if let Some(m) = posted {
            return m.message_id;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no review of payment {payment} in chat {chat}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until a message (text or caption) containing `needle` was sent to `chat`; returns that call.
pub async fn wait_message(shop: &BotShop, chat: i64, needle: &str) -> Call {
    let start = Instant::now();
    loop {
        let found = shop.tg.calls().into_iter().find(|c| {
            c.params["chat_id"].as_i64() == Some(chat)
                && [&c.params["text"], &c.params["caption"]]
                    .iter()
                    .any(|t| t.as_str().is_some_and(|t| t.contains(needle)))
        });
        if let Some(call) = found {
            return call;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no {needle:?} to {chat}; got {:#?}", texts_to(shop, chat));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The callback data of the buttons a message in `chat` has now.
pub fn buttons_now(shop: &BotShop, chat: i64, message_id: i32) -> Vec<String> {
    let message = shop.tg.message(chat, message_id).expect("the message exists");
    let markup = serde_json::json!({ "reply_markup": message.reply_markup });
    buttons(&Call { method: String::new(), params: markup, at: Instant::now() })
}

/// What the bot now shows in a message of `chat`: its text or caption.
pub fn shown(shop: &BotShop, chat: i64, message_id: i32) -> String {
    let message = shop.tg.message(chat, message_id).expect("the message exists");
    message.caption.or(message.text).unwrap_or_default()
}

/// Delivers `update` and returns the texts the bot sent to `chat` while handling it (and anything sent there
/// meanwhile).
pub async fn answers(shop: &BotShop, update: &Value, chat: i64) -> Vec<String> {
    let before = shop.tg.calls().len();
    shop.deliver(update).await;
    shop.tg.calls()[before..]
        .iter()
        .filter(|c| c.method.eq_ignore_ascii_case("sendMessage") && c.params["chat_id"].as_i64() == Some(chat))
        .filter_map(|c| c.params["text"].as_str().map(str::to_owned))
        .collect()
}

/// An admin (or anyone) types `text` in their private chat; returns what the bot answered there.
pub async fn says(shop: &BotShop, who: &TgUser, text: &str) -> Vec<String> {
    answers(shop, &command_update(next_id(), who, text), who.id).await
}

/// A number the database computes (`count(*)` and the like) for one bound id.
pub async fn scalar(pool: &PgPool, sql: &'static str, id: i64) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(pool).await.unwrap()
}

/// A number the database computes, with nothing bound.
pub async fn number(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}
