//! Broadcast messages through the bot: within the broadcasts' share of the overall limit
//! (`telegram.broadcast.per_second`, a pace shared like the limits) and then Telegram's limits themselves, so
//! replies to customers and broadcasts share one budget and replies still go out while a broadcast runs.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::ParseMode;
use teloxide::{ApiError, RequestError};

use super::TgBot;
use super::limits::Kind;
use crate::services::broadcasts::{Delivery, Sender};

/// The pace broadcasts take their slots from.
const PACE: &str = "broadcast";

pub struct Broadcaster {
    pub bot: TgBot,
    /// Between two broadcast messages (across instances).
    pub interval: Duration,
}

impl Broadcaster {
    pub fn new(bot: TgBot, per_second: u32) -> Broadcaster {
        Broadcaster { bot, interval: Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))) }
    }
}

#[async_trait::async_trait]
impl Sender for Broadcaster {
    async fn ready(&self, chat_id: i64) {
        self.bot.limits().pace(PACE, self.interval).await;
        self.bot.limits().wait(chat_id, Kind::Send).await;
    }

    async fn send(&self, chat_id: i64, html: &str) -> Delivery {
        match self.bot.api().send_message(ChatId(chat_id), html).parse_mode(ParseMode::Html).send().await {
            Ok(_) => Delivery::Sent,
            Err(e) => delivery_of(&e),
        }
    }

    async fn hold(&self, chat_id: i64, wait: Duration) {
        self.bot.limits().hold(chat_id, wait).await;
    }
}

/// What a failed call means for the recipient.
pub fn delivery_of(e: &RequestError) -> Delivery {
    match e {
        RequestError::RetryAfter(secs) => Delivery::RetryAfter(secs.duration()),
        RequestError::Api(ApiError::BotBlocked | ApiError::UserDeactivated | ApiError::BotKicked) => {
            Delivery::Blocked(e.to_string())
        }
        RequestError::Api(ApiError::ChatNotFound) | RequestError::MigrateToChatId(_) => {
            Delivery::Refused(e.to_string())
        }
        // Telegram answered: nothing was delivered
        RequestError::Api(_) => Delivery::NotDelivered(e.to_string()),
        // never connected: nothing went out
        RequestError::Network(n) if n.is_connect() => Delivery::NotDelivered(e.to_string()),
        // the request may have arrived before the connection broke
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => {
            Delivery::Uncertain(e.to_string())
        }
    }
}
