//! Zarinpal end to end: a Persian-speaking customer pays in IRR through the bot, comes back through the callback
//! (verified with our amount: 100 and 101 paid; NOK, -51, -54 and -50 not), the reconciliation sweep finds what
//! never came back and expires what was never paid, a gateway that is down leaves the order payable, two
//! instances settle one callback once, and a real node carries the bought link — against `FakeZarinpal`, the fake
//! Telegram, real Postgres and Redis.

mod bot;
mod callback;
mod reconcile;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use vpnshop::config::Settings;
use vpnshop::domain::Language;
use vpnshop::i18n::{self, Arg};

use crate::bot::{BotShop, Screen, bot_shop_with, press, user, walk_to_summary};
use crate::helpers::{TestApp, redis_url};
use crate::payments::{ADMIN, scalar};
use crate::support::TgUser;
use crate::support::zarinpal::{FakeZarinpal, MERCHANT};

/// The bot's username in these tests (the fake Telegram's).
pub const BOT: &str = crate::support::BOT_USERNAME;

/// The shop with the bot, Zarinpal pointed at the fake, card payments, an admin, Redis; the scheduler off (tests
/// run the sweep themselves).
pub struct ZarinpalShop {
    pub shop: BotShop,
    pub zp: FakeZarinpal,
}

/// Zarinpal settings of these tests (short timeouts: a hanging fake must not hold a test up).
pub fn zarinpal_settings(s: &mut Settings, zp: &FakeZarinpal) {
    s.zarinpal.api_url = zp.url();
    s.zarinpal.merchant_id = Some(MERCHANT.to_owned().into());
    s.zarinpal.connect_timeout_secs = 1;
    s.zarinpal.timeout_secs = 1;
    s.zarinpal.retries = 1;
    s.telegram.bot_username = Some(BOT.into());
    s.telegram.admin_ids = vec![ADMIN];
    s.redis.url = Some(redis_url().into());
    s.scheduler.enabled = false;
}

pub async fn zarinpal_shop(pool: PgPool) -> ZarinpalShop {
    zarinpal_shop_with(pool, |_| {}).await
}

pub async fn zarinpal_shop_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> ZarinpalShop {
    let zp = FakeZarinpal::start().await;
    let shop = bot_shop_with(pool, |s| {
        zarinpal_settings(s, &zp);
        customize(s);
    })
    .await;
    ZarinpalShop { shop, zp }
}

/// A customer who speaks Persian (and so pays in IRR).
pub fn persian(id: i64) -> TgUser {
    user(id, "fa")
}

/// The customer walks to the summary and chooses Zarinpal. Returns the order and the payment screen.
pub async fn order_by_zarinpal(shop: &BotShop, u: &TgUser) -> (i64, Screen) {
    let (order, summary) = walk_to_summary(shop, u).await;
    let pay = press(shop, u, &summary.data(&format!("p:{order}:zarinpal"))).await;
    (order, pay)
}

/// The URL of the link button on the bot's latest message to this customer, if it has one.
pub fn url_button(shop: &BotShop, u: &TgUser) -> Option<String> {
    let call = shop.tg.calls().into_iter().rev().find(|c| {
        matches!(c.method.as_str(), "sendMessage" | "editMessageText") && c.params["chat_id"].as_i64() == Some(u.id)
    })?;
    let rows = call.params["reply_markup"]["inline_keyboard"].as_array()?.clone();
    rows.iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .find_map(|b| b["url"].as_str().map(str::to_owned))
}

/// The newest payment of an order: its id and Zarinpal authority.
pub async fn payment_of(pool: &PgPool, order: i64) -> (i64, String) {
    sqlx::query_as("SELECT id, zarinpal_authority FROM payments WHERE order_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A payment's status and why it failed (or was held).
pub async fn status_of(pool: &PgPool, payment: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, failure_reason FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn subscriptions_of(pool: &PgPool, order: i64) -> i64 {
    scalar(pool, "SELECT count(*) FROM subscriptions WHERE order_id = $1", order).await
}

/// A customer pays an order by Zarinpal: the order, its payment and the callback query Zarinpal sends them back
/// with.
pub async fn paid_order(z: &ZarinpalShop, u: &TgUser) -> (i64, i64, String) {
    let (order, _) = order_by_zarinpal(&z.shop, u).await;
    let (payment, authority) = payment_of(&z.shop.app.state.pool, order).await;
    (order, payment, z.zp.pay(&authority))
}

/// Two Zarinpal attempts of one order, both still payable at Zarinpal: the order, then the first attempt (replaced
/// in our books once stale) and the second, each as its payment and authority.
pub async fn two_attempts(z: &ZarinpalShop, u: &TgUser) -> (i64, (i64, String), (i64, String)) {
    let pool = &z.shop.app.state.pool;
    let (order, _) = order_by_zarinpal(&z.shop, u).await;
    let first = payment_of(pool, order).await;
    // the first page went stale; the customer asks for a new one
    sqlx::query("UPDATE payments SET created_at = created_at - interval '1 day' WHERE id = $1")
        .bind(first.0)
        .execute(pool)
        .await
        .unwrap();
    press(&z.shop, u, &format!("o:{order}")).await;
    let second = payment_of(pool, order).await;
    assert_ne!(first.0, second.0, "a second attempt");
    (order, first, second)
}

/// Zarinpal's redirect arrives: `GET /pay/zarinpal/callback?{query}`. Returns the status and the page.
pub async fn callback(app: &TestApp, query: &str) -> (u16, String) {
    get(app, &format!("/pay/zarinpal/callback?{query}")).await
}

pub async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(kind, "text/html; charset=utf-8", "{path} answered {status} as a page");
    (status, response.text().await.unwrap())
}

/// A message as the customer's page shows it (`order` in the language's digits).
pub fn said(lang: Language, key: &str, order: i64) -> String {
    let support = crate::helpers::test_settings().shop.support_contact;
    i18n::t_args(lang, key, &[("order", i18n::number(lang, order).into()), ("support", Arg::from(support.as_str()))])
}

/// Asserts the page is Persian, right to left, says `key` about `order`, and links back to the bot's
/// `/start paid_<order>`.
pub fn assert_persian_page(page: &str, key: &str, order: i64) {
    assert!(page.contains(r#"<html lang="fa" dir="rtl">"#), "{page}");
    assert!(page.contains(&said(Language::Fa, key, order)), "the page says {key}: {page}");
    let back = format!(r#"href="https://t.me/{BOT}?start=paid_{order}""#);
    assert!(page.contains(&back), "links back to the bot: {page}");
}

/// Polls until `check` holds (or fails after 20 s, saying `what`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(20), "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
