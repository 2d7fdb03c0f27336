//! People talking to the shop through Telegram: each acts on what the fake Telegram shows them (a new message
//! with the expected text, a pressed button's answer) and fails the test when an answer never comes. Their
//! updates reach the instances through [`Webhook`].

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use super::webhook::Webhook;
use crate::bot::next_id;
use crate::payments::jpeg;
use crate::support::{
    FakeTelegram, SentMessage, TgUser, callback_update, command_update, message_update, photo_update,
};

/// How long anyone waits for an answer: the update may have been taken by the instance that is killed, and is then
/// handled when that instance is back.
const PATIENCE: Duration = Duration::from_secs(30);

/// What customers talk to.
pub struct Shop<'a> {
    pub tg: &'a FakeTelegram,
    pub hook: &'a Arc<Webhook>,
    pub pool: &'a PgPool,
    /// Updates whose answer was the one a second attempt gives (the first attempt's effect is there, its answer
    /// is not): allowed only for updates the killed instance was handling. With what the customer saw.
    pub retried: Mutex<Vec<(i64, String)>>,
}

impl<'a> Shop<'a> {
    pub fn new(tg: &'a FakeTelegram, hook: &'a Arc<Webhook>, pool: &'a PgPool) -> Shop<'a> {
        Shop { tg, hook, pool, retried: Mutex::new(Vec::new()) }
    }
}

pub struct Customer<'a> {
    shop: &'a Shop<'a>,
    pub user: TgUser,
    /// The id of the update this customer sent last.
    last: Cell<i64>,
    /// The callback query ids of this customer's presses.
    queries: std::cell::RefCell<Vec<String>>,
}

/// The callback data of a message's first button starting with `prefix`.
pub fn button(message: &SentMessage, prefix: &str) -> String {
    let rows = message.reply_markup.as_ref().and_then(|m| m["inline_keyboard"].as_array().cloned());
    rows.unwrap_or_default()
        .iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .find(|d| d.starts_with(prefix))
        .unwrap_or_else(|| panic!("no button {prefix}… on {message:#?}"))
}

fn shows(message: &SentMessage, needle: &str) -> bool {
    [&message.text, &message.caption].into_iter().flatten().any(|t| t.contains(needle))
}

impl<'a> Customer<'a> {
    pub fn new(shop: &'a Shop<'a>, id: i64) -> Customer<'a> {
        let user = TgUser {
            id,
            first_name: "Sam".into(),
            username: Some(format!("sam{id}")),
            language_code: Some("en".into()),
        };
        Customer { shop, user, last: Cell::new(0), queries: Default::default() }
    }

    fn update(&self, id: u32) -> u32 {
        self.last.set(id.into());
        id
    }

    /// The answer to this customer's last update was the one its second attempt gives (see [`Shop::retried`]).
    fn answered_as_retried(&self, message: &SentMessage) {
        let seen = message.text.clone().or(message.caption.clone()).unwrap_or_default();
        self.retried(self.last.get(), seen);
    }

    fn retried(&self, update: i64, seen: String) {
        self.shop.retried.lock().unwrap().push((update, seen));
    }

    /// Checks the answer to this customer's last update: `first` as a first attempt gives it, or `again` as a
    /// second attempt does (recorded as such). Returns whether it was the first.
    pub fn answered(&self, text: &str, first: &str, again: &str) -> bool {
        if text.contains(first) {
            return true;
        }
        assert!(text.contains(again), "{} was answered {text:?}, neither {first:?} nor {again:?}", self.user.id);
        self.retried(self.last.get(), text.to_owned());
        false
    }

    fn newest_id(&self) -> i32 {
        self.shop.tg.messages_to(self.user.id).last().map_or(0, |m| m.message_id)
    }

    /// The data of a button on a message this customer sees; fails with what the bot said to them.
    pub fn button(&self, message: &SentMessage, prefix: &str) -> String {
        let found = std::panic::catch_unwind(|| button(message, prefix));
        found.unwrap_or_else(|_| {
            panic!("no button {prefix}… for {}; the bot's calls: {:#?}", self.user.id, self.calls())
        })
    }

    /// The Bot API calls about this customer's chat and presses, in short.
    fn calls(&self) -> Vec<String> {
        let chat = serde_json::json!(self.user.id);
        let queries = self.queries.borrow();
        self.shop
            .tg
            .calls()
            .into_iter()
            .filter(|c| {
                c.params["chat_id"] == chat
                    || c.params["callback_query_id"].as_str().is_some_and(|q| queries.iter().any(|m| m == q))
            })
            .map(|c| {
                let text: String =
                    c.params["text"].as_str().or(c.params["caption"].as_str()).unwrap_or("").chars().take(40).collect();
                format!("{} {} {} {text:?}", c.method, c.params["message_id"], c.params["callback_query_id"])
            })
            .collect()
    }

    /// Sends a text (a command when it starts with '/') and waits for a new message of the bot that shows
    /// `expect`.
    pub async fn says(&self, text: &str, expect: &str) -> SentMessage {
        let after = self.newest_id();
        self.shop.hook.deliver(self.text_update(text)).await;
        self.new_message(after, &[expect]).await
    }

    fn text_update(&self, text: &str) -> Value {
        let id = self.update(next_id());
        if text.starts_with('/') { command_update(id, &self.user, text) } else { message_update(id, &self.user, text) }
    }

    /// Sends several texts one after the other without waiting for answers (a customer tapping fast); then waits
    /// for an answer to each, showing its `expect`.
    pub async fn rattles_off(&self, texts: &[(&str, &str)]) {
        let after = self.newest_id();
        for (text, _) in texts {
            self.shop.hook.deliver(self.text_update(text)).await;
        }
        for (_, expect) in texts {
            self.new_message(after, &[expect]).await;
        }
    }

    /// Waits for a message newer than `after` that shows `expect[0]`, or one of the others: the answers a second
    /// attempt of the update gives (recorded as such).
    pub async fn new_message(&self, after: i32, expect: &[&str]) -> SentMessage {
        let start = Instant::now();
        loop {
            let messages = self.shop.tg.messages_to(self.user.id);
            for (i, expect) in expect.iter().enumerate() {
                if let Some(m) = messages.iter().find(|m| m.message_id > after && shows(m, expect)) {
                    if i > 0 {
                        self.answered_as_retried(m);
                    }
                    return m.clone();
                }
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{} got no {expect:?} within {PATIENCE:?}; their chat: {messages:#?}",
                self.user.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Presses a button under one of the bot's messages and waits for the press to be answered; returns that
    /// message as it is then.
    pub async fn presses(&self, message_id: i32, data: &str) -> SentMessage {
        let id = self.update(next_id());
        self.shop.hook.deliver(callback_update(id, &self.user, message_id, data)).await;
        let query = format!("cbq-{id}");
        self.queries.borrow_mut().push(query.clone());
        let start = Instant::now();
        while !self.shop.tg.calls_of("answerCallbackQuery").iter().any(|c| c.params["callback_query_id"] == query) {
            assert!(start.elapsed() < PATIENCE, "{}'s press of {data} was never answered", self.user.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shop.tg.message(self.user.id, message_id).expect("the pressed message")
    }

    /// Sends a photo of a transfer receipt; waits for the bot to say it is under review (or, on a second attempt,
    /// that it is being checked, or was sent before).
    pub async fn sends_receipt(&self) -> SentMessage {
        let (file, unique) = (format!("receipt-{}", self.user.id), format!("unique-{}", self.user.id));
        self.shop.tg.add_file(&file, &unique, jpeg(&format!("transfer of {}", self.user.id)));
        let after = self.newest_id();
        let id = self.update(next_id());
        self.shop.hook.deliver(photo_update(id, &self.user, &file, &unique)).await;
        self.new_message(after, &["is under review", "is being checked", "You sent this receipt before"]).await
    }
}

/// Looks around: the menu, help, something the bot does not understand, two buttons.
pub async fn browse(c: Customer<'_>) {
    c.says("/start", "What would you like to do?").await;
    c.says("/help", "How it works").await;
    let unknown = c.says("is this the vpn shop?", "did not understand").await;
    let help = c.presses(unknown.message_id, &button(&unknown, "h")).await;
    assert!(shows(&help, "How it works"), "{help:#?}");
    let menu = c.presses(unknown.message_id, &button(&help, "m")).await;
    assert!(shows(&menu, "What would you like to do?"), "{menu:#?}");
}

/// Four messages in a row, without waiting: their answers are new messages to one chat in quick succession, from
/// whichever instances handle them.
pub async fn rattle(c: Customer<'_>) {
    c.rattles_off(&[
        ("/help", "How it works"),
        ("/start", "What would you like to do?"),
        ("hello?", "did not understand"),
        ("/trial", "Free trial"),
    ])
    .await;
}

/// Takes the free trial in `de`, then asks for it again (refused: one trial per customer).
pub async fn take_trial(c: Customer<'_>) {
    c.says("/start", "What would you like to do?").await;
    let offer = c.says("/trial", "Free trial").await;
    let granted = c.presses(offer.message_id, "tl:de").await;
    if shows(&granted, "already used your free trial") {
        c.answered_as_retried(&granted);
    } else {
        assert!(shows(&granted, "Your trial is being set up"), "{granted:#?}");
    }
    c.says("/trial", "already used your free trial").await;
}

/// Buys 30 days, one device, 50 GB in `de`, pays by card and sends the receipt. Returns the order and payment.
pub async fn buy_by_card(c: Customer<'_>) -> (i64, i64) {
    let mut screen = c.says("/buy", "Choose a location").await;
    let buy = c.last.get();
    let mut location = c.button(&screen, "l:");
    let mut at = c.presses(screen.message_id, &location).await;
    if shows(&at, "What would you like to do?") {
        // the menu went out twice: the instance that sent it died before it noted so, and /buy was handled again,
        // starting the purchase over; the first menu is out of date, the second one is current
        c.retried(buy, "a second location menu".into());
        screen = c.new_message(screen.message_id, &["Choose a location"]).await;
        location = c.button(&screen, "l:");
        at = c.presses(screen.message_id, &location).await;
    }
    let order: i64 = location.split(':').nth(1).and_then(|o| o.parse().ok()).expect("the order in the button");
    for step in
        [format!("d:{order}:30"), format!("s:{order}:1"), format!("dm:{order}:51200"), format!("p:{order}:card")]
    {
        let data = c.button(&at, &step);
        at = c.presses(screen.message_id, &data).await;
    }
    assert!(shows(&at, crate::bot::CARD), "the card to pay to: {at:#?}");
    c.sends_receipt().await;
    let payment = sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(c.shop.pool)
        .await
        .expect("the receipt's payment");
    (order, payment)
}

/// An admin decides a payment with a command (`/accept 12`, `/reject 12 why`); returns the bot's answer.
pub async fn decide(admin: &Customer<'_>, command: &str, payment: i64) -> String {
    let answer = admin.says(command, &format!("Payment #{payment} ")).await;
    answer.text.unwrap_or_default()
}

/// An admin presses Accept under the review of `payment` posted to their chat.
pub async fn accept_by_button(admin: &Customer<'_>, payment: i64) {
    let needle = format!("Payment #{payment}</b>");
    let start = Instant::now();
    let review = loop {
        let posted =
            admin.shop.tg.messages_to(admin.user.id).into_iter().find(|m| m.file_id.is_some() && shows(m, &needle));
        if let Some(review) = posted {
            break review;
        }
        assert!(start.elapsed() < PATIENCE, "the review of payment {payment} never reached {}", admin.user.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    admin.presses(review.message_id, &format!("ra:{payment}")).await;
}
