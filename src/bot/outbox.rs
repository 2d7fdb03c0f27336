//! Messages that must arrive: stored as `telegram.send` jobs and sent after commit, with retries (429s wait
//! out `retry_after`; a blocked bot is given up at once). One job carries the messages of one notice and sends
//! them in order, recording how many went out, so a retry continues where it stopped and repeats nothing.

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ParseMode};
use teloxide::{ApiError, RequestError};

use super::TgBot;
use super::limits::Kind;
use crate::config::JobSettings;
use crate::db::jobs::ClaimedJob;
use crate::jobs::{JobHandler, Outcome};
use crate::services::access;
use crate::services::queue::JobSpec;

pub const SEND_KIND: &str = "telegram.send";

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutMessage {
    /// HTML text with optional buttons (`(label, callback data)` rows).
    Text {
        chat_id: i64,
        text: String,
        #[serde(default)]
        buttons: Vec<Vec<(String, String)>>,
    },
    /// A QR code of `link` (rendered when sent), with a caption.
    Qr { chat_id: i64, link: String, caption: String },
}

impl OutMessage {
    /// The chat it goes to.
    pub fn chat_id(&self) -> i64 {
        match self {
            OutMessage::Text { chat_id, .. } | OutMessage::Qr { chat_id, .. } => *chat_id,
        }
    }
}

/// The payload of a `telegram.send` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub messages: Vec<OutMessage>,
    /// How many of `messages` were sent already.
    #[serde(default)]
    pub sent: usize,
}

/// Enqueues messages (sent in this order) in the caller's transaction; `key` makes it once-only.
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    messages: Vec<OutMessage>,
    key: &str,
    jobs: &JobSettings,
) -> sqlx::Result<()> {
    let payload = serde_json::to_value(Batch { messages, sent: 0 }).unwrap_or_default();
    JobSpec::new(SEND_KIND, payload).once(format!("tg:{key}")).enqueue(db, jobs).await?;
    Ok(())
}

/// How a failed Bot API call maps to the job's next step.
pub fn outcome_of(e: &RequestError) -> Outcome {
    match e {
        RequestError::RetryAfter(secs) => {
            Outcome::RetryAfter(secs.duration(), format!("Telegram asked to wait {secs:?}"))
        }
        RequestError::Api(
            ApiError::BotBlocked | ApiError::UserDeactivated | ApiError::ChatNotFound | ApiError::BotKicked,
        ) => Outcome::Permanent(format!("recipient unreachable: {e}")),
        RequestError::Api(_) => Outcome::Permanent(format!("Telegram refused the message: {e}")),
        _ => Outcome::Retry(e.to_string()),
    }
}

/// Sends `telegram.send` jobs.
pub struct SendJob {
    pub bot: TgBot,
    pub pool: sqlx::PgPool,
}

#[async_trait::async_trait]
impl JobHandler for SendJob {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        let batch: Batch = match serde_json::from_value(job.payload.clone()) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent(format!("bad payload: {e}")),
        };
        for (i, msg) in batch.messages.iter().enumerate().skip(batch.sent) {
            match send(&self.bot, msg).await {
                Ok(()) => {
                    if let Err(e) = crate::services::queue::set_progress(&self.pool, job.id, "sent", i + 1).await {
                        return Outcome::Retry(format!("could not record progress: {e}"));
                    }
                }
                Err(SendError::Telegram(e)) => {
                    if let RequestError::Api(ApiError::BotBlocked | ApiError::UserDeactivated) = &e
                        && let Err(err) = crate::services::users::blocked_bot(&self.pool, msg.chat_id()).await
                    {
                        tracing::warn!(error = %err, "could not note that a customer blocked the bot");
                    }
                    return outcome_of(&e);
                }
                Err(SendError::Qr(e)) => return Outcome::Permanent(e),
            }
        }
        Outcome::Done
    }
}

#[derive(Debug)]
pub enum SendError {
    Telegram(RequestError),
    Qr(String),
}

pub async fn send(bot: &TgBot, msg: &OutMessage) -> Result<(), SendError> {
    match msg {
        OutMessage::Text { chat_id, text, buttons } => {
            let mut req = bot.api().send_message(ChatId(*chat_id), text).parse_mode(ParseMode::Html);
            if !buttons.is_empty() {
                let rows = buttons
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|(label, data)| InlineKeyboardButton::callback(label.clone(), data.clone()))
                            .collect()
                    })
                    .collect::<Vec<Vec<_>>>();
                req = req.reply_markup(InlineKeyboardMarkup::new(rows));
            }
            bot.send(ChatId(*chat_id), Kind::Send, req).await.map(|_| ()).map_err(SendError::Telegram)
        }
        OutMessage::Qr { chat_id, link, caption } => {
            let png = access::qr_png(link).map_err(|e| SendError::Qr(e.to_string()))?;
            let photo = bot
                .api()
                .send_photo(ChatId(*chat_id), InputFile::memory(png).file_name("qr.png"))
                .caption(caption)
                .parse_mode(ParseMode::Html);
            bot.send(ChatId(*chat_id), Kind::Send, photo).await.map(|_| ()).map_err(SendError::Telegram)
        }
    }
}
