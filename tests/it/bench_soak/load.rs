//! The soak's load, as concurrent tasks each started at a fixed rate (open loop: a slow answer never delays the
//! next start, so latencies are honest), for the length of the window:
//! - **visits**: customer `i mod customers` sends `/start` through the webhook; every `browse_every`-th visit
//!   then taps on: a subscribed customer opens My services and their subscription, anyone else Buy and a location
//!   (the plans with their prices); a second between taps;
//! - **purchases**: a new customer walks the card purchase (`/buy`, location, 30 days, 1 device, 50 GB, pay by
//!   card) and sends a receipt photo (served to the shop by the fake's `getFile`);
//! - **reviews**: an admin polls the review queue over the admin API every 2 s and accepts each receipt, or rejects
//!   one in ten (by payment id);
//! - **feed refreshes**: `GET /sub/{token}` of the active subscriptions in turn, each from its own client address
//!   (`X-Forwarded-For` through the trusted proxy);
//! - **admin reads**: orders, subscriptions, customers and the statistics, in turn.
//!
//! Bot interactions are timed from the webhook POST to the moment the fake Telegram holds the bot's answer in
//! that chat (a new message or the edited screen): the update's whole way through intake, inbox, handler,
//! our send limits and the Bot API call.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::Value;
use tokio::task::JoinSet;

use super::record::Recorder;
use crate::bot::SECRET;
use crate::support::{FakeTelegram, SentMessage, TgUser, callback_update, command_update, photo_update};

/// Telegram ids: customer `c` is `CUSTOMER_BASE + c` (the first `clients` of them were sold a subscription before
/// the window); buyer `k` is `BUYER_BASE + k`.
pub const CUSTOMER_BASE: i64 = 6_000_000;
pub const BUYER_BASE: i64 = 8_000_000;
/// A customer's pause between taps.
const THINK: Duration = Duration::from_secs(1);
/// An answer later than this counts as an error.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

pub const WEBHOOK: &str = "POST /telegram/webhook";
const FEED: &str = "GET /sub/{token}";
const QUEUE: &str = "GET /api/v1/payments (review queue)";
const ACCEPT: &str = "POST /api/v1/payments/{id}/accept";
const REJECT: &str = "POST /api/v1/payments/{id}/reject";
const ADMIN_READS: [(&str, &str); 4] = [
    ("GET /api/v1/orders", "/api/v1/orders?limit=50"),
    ("GET /api/v1/subscriptions", "/api/v1/subscriptions?status=active&limit=50"),
    ("GET /api/v1/users", "/api/v1/users?limit=50"),
    ("GET /api/v1/stats", "/api/v1/stats?days=30"),
];
const START: &str = "bot: /start → answer";
const BUY: &str = "bot: /buy → answer";
const TAP: &str = "bot: button → screen edited";
const RECEIPT: &str = "bot: receipt photo → answer";

/// How much of each kind of load.
#[derive(Debug, Clone)]
pub struct Rates {
    pub customers: u64,
    pub clients: u64,
    pub visits_per_sec: f64,
    pub browse_every: u64,
    pub purchases_per_min: f64,
    pub feeds_per_sec: f64,
    pub admin_per_sec: f64,
}

/// The load generator's state, shared by its tasks.
pub struct Load {
    pub http: reqwest::Client,
    pub base: String,
    pub tg: FakeTelegram,
    pub rec: Recorder,
    pub api_key: String,
    pub tokens: Vec<String>,
    pub rates: Rates,
    next_update: AtomicU32,
    /// Webhook POSTs answered 200 (each a new update id).
    pub updates_ok: AtomicU64,
    pub receipts: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

impl Load {
    pub fn new(base: String, tg: FakeTelegram, api_key: String, tokens: Vec<String>, rates: Rates) -> Load {
        Load {
            http: reqwest::Client::new(),
            base,
            tg,
            rec: Recorder::default(),
            api_key,
            tokens,
            rates,
            next_update: AtomicU32::new(1),
            updates_ok: AtomicU64::new(0),
            receipts: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn update_id(&self) -> u32 {
        self.next_update.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request and reads the whole answer; (status, body) or what went wrong.
    async fn fetch(&self, route: &'static str, req: reqwest::RequestBuilder) -> Option<Bytes> {
        let started = Instant::now();
        let answer = async {
            let res = req.send().await.map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            Ok::<_, String>((status, res.bytes().await.map_err(|e| e.to_string())?))
        }
        .await;
        self.rec.answer(route, started.elapsed(), &answer.as_ref().map(|(s, _)| *s).map_err(Clone::clone));
        answer.ok().filter(|(s, _)| (200..300).contains(s)).map(|(_, body)| body)
    }

    /// Delivers an update the way Telegram does; whether it was taken (200).
    async fn post_update(&self, update: &Value) -> bool {
        let req = self
            .http
            .post(format!("{}/telegram/webhook", self.base))
            .header("x-telegram-bot-api-secret-token", SECRET)
            .header("content-type", "application/json")
            .body(update.to_string());
        let taken = self.fetch(WEBHOOK, req).await.is_some();
        if taken {
            self.updates_ok.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Sends an update from `user` and waits for the bot's answer in their chat (a new message, or a changed one);
    /// returns the chat's newest message then.
    async fn say(&self, user: &TgUser, update: Value, route: &'static str) -> Option<SentMessage> {
        let chat = user.id;
        let before = self.tg.messages_to(chat);
        let started = Instant::now();
        if !self.post_update(&update).await {
            return None;
        }
        let changed = |tg: &FakeTelegram| Some(tg.messages_to(chat)).filter(|now| *now != before);
        match self.tg.wait_until(ANSWER_WITHIN, changed).await {
            Some(now) => {
                self.rec.ok(route, started.elapsed());
                now.last().cloned()
            }
            None => {
                self.rec.error(route, format!("no answer in chat {chat} within {ANSWER_WITHIN:?}"));
                None
            }
        }
    }

    /// Presses the first button of `screen` whose data starts with `prefix`; its data and the screen it led to.
    async fn tap(&self, user: &TgUser, screen: &SentMessage, prefix: &str) -> Option<(String, SentMessage)> {
        let Some(data) = button(screen, prefix) else {
            let text: String = screen.text.as_deref().unwrap_or_default().chars().take(80).collect();
            self.rec.error(TAP, format!("no button {prefix}… under {text:?}"));
            return None;
        };
        let update = callback_update(self.update_id(), user, screen.message_id, &data);
        let next = self.say(user, update, TAP).await?;
        Some((data, next))
    }

    /// One visit of customer `i mod customers`.
    pub async fn visit(self: Arc<Self>, i: u64) {
        let c = i % self.rates.customers;
        let user = TgUser {
            id: CUSTOMER_BASE + c as i64,
            first_name: "Soak".into(),
            username: Some(format!("soak{c}")),
            language_code: Some(["en", "fa", "en", "ru"][c as usize % 4].into()),
        };
        let Some(menu) = self.say(&user, command_update(self.update_id(), &user, "/start"), START).await else {
            return;
        };
        if self.rates.browse_every == 0 || !i.is_multiple_of(self.rates.browse_every) {
            return;
        }
        // subscribed customers look at their subscription (links, usage); the others at the plans and prices
        let (first, second) = if c < self.rates.clients { ("v", "v:") } else { ("b", "l:") };
        tokio::time::sleep(THINK).await;
        let Some((_, screen)) = self.tap(&user, &menu, first).await else { return };
        tokio::time::sleep(THINK).await;
        self.tap(&user, &screen, second).await;
    }

    /// Buyer `k` walks the card purchase and sends a receipt.
    pub async fn purchase(self: Arc<Self>, k: u64) {
        let user = TgUser {
            id: BUYER_BASE + k as i64,
            first_name: "Buyer".into(),
            username: Some(format!("buyer{k}")),
            language_code: Some("en".into()),
        };
        let Some(locations) = self.say(&user, command_update(self.update_id(), &user, "/buy"), BUY).await else {
            return;
        };
        tokio::time::sleep(THINK).await;
        let Some((location, mut screen)) = self.tap(&user, &locations, "l:").await else { return };
        let order = &location[2..location.rfind(':').unwrap_or(location.len())];
        for prefix in
            [format!("d:{order}:30"), format!("s:{order}:1"), format!("dm:{order}:51200"), format!("p:{order}:card")]
        {
            tokio::time::sleep(THINK).await;
            let Some((_, next)) = self.tap(&user, &screen, &prefix).await else { return };
            screen = next;
        }
        tokio::time::sleep(THINK).await;
        let (file_id, unique) = (format!("soak-receipt-{k}"), format!("soak-receipt-unique-{k}"));
        self.tg.add_file(&file_id, &unique, crate::payments::jpeg(&file_id));
        let receipt = photo_update(self.update_id(), &user, &file_id, &unique);
        if self.say(&user, receipt, RECEIPT).await.is_some() {
            self.receipts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One feed refresh: subscription `i mod n`, from its own address.
    pub async fn feed(self: Arc<Self>, i: u64) {
        let k = i as usize % self.tokens.len();
        let ip = format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255);
        let req = self.http.get(format!("{}/sub/{}", self.base, self.tokens[k])).header("x-forwarded-for", ip);
        if let Some(body) = self.fetch(FEED, req).await
            && body.is_empty()
        {
            self.rec.error(FEED, "an empty feed".into());
        }
    }

    fn admin(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.bearer_auth(&self.api_key).header("x-forwarded-for", "192.0.2.10")
    }

    /// One admin read, the routes in turn.
    pub async fn admin_read(self: Arc<Self>, i: u64) {
        let (route, path) = ADMIN_READS[i as usize % ADMIN_READS.len()];
        self.fetch(route, self.admin(self.http.get(format!("{}{path}", self.base)))).await;
    }

    /// The reviewing admin, until `until`.
    pub async fn review(self: Arc<Self>, until: Instant) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        while Instant::now() < until {
            tick.tick().await;
            let queue = format!("{}/api/v1/payments?status=under_review&method=card&order=asc&limit=50", self.base);
            let Some(body) = self.fetch(QUEUE, self.admin(self.http.get(queue))).await else { continue };
            let page: Value = serde_json::from_slice(&body).unwrap_or_default();
            let ids: Vec<i64> =
                page["items"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_i64()).collect();
            for id in ids {
                if Instant::now() >= until {
                    break;
                }
                let url = |verb: &str| format!("{}/api/v1/payments/{id}/{verb}", self.base);
                if id % 10 == 3 {
                    let reason = serde_json::json!({"reason": "The amount does not match", "code": "wrong_amount"});
                    let req = self.admin(self.http.post(url("reject")).json(&reason));
                    if self.fetch(REJECT, req).await.is_some() {
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                } else if self.fetch(ACCEPT, self.admin(self.http.post(url("accept")))).await.is_some() {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Runs every kind of load for `window`; returns once every started task is done.
    pub async fn run(self: Arc<Self>, window: Duration) {
        let until = Instant::now() + window;
        let r = &self.rates;
        tokio::join!(
            paced(r.visits_per_sec, until, &self, Load::visit),
            paced(r.purchases_per_min / 60.0, until, &self, Load::purchase),
            paced(r.feeds_per_sec, until, &self, Load::feed),
            paced(r.admin_per_sec, until, &self, Load::admin_read),
            self.clone().review(until),
        );
    }
}

/// The callback data of the first button of `m` whose data starts with `prefix`.
fn button(m: &SentMessage, prefix: &str) -> Option<String> {
    let rows = m.reply_markup.as_ref()?["inline_keyboard"].as_array()?.clone();
    rows.iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .find(|d| d.starts_with(prefix))
}

/// Starts `task(load, 0)`, `task(load, 1)`, … `per_sec` times a second until `until` (a start that fell behind is
/// made up at once), each as its own task; returns when all of them are done.
async fn paced<F, Fut>(per_sec: f64, until: Instant, load: &Arc<Load>, task: F)
where
    F: Fn(Arc<Load>, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if per_sec <= 0.0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut tasks, mut i) = (JoinSet::new(), 0);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() >= until {
                    break;
                }
                tasks.spawn(task(load.clone(), i));
                i += 1;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => done.expect("a load task panicked"),
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a load task panicked");
    }
}
