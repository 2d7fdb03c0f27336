//! What handlers work with: who is talking, in which language, and how a screen reaches them — edited in
//! place when a button was pressed (no chat spam), sent when a command was typed. Every message an update's
//! handler sends is one step of its `Progress`, recorded once sent, so a retry of the update (after an error, a
//! panic or the time limit) skips what was already said.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode};
use teloxide::{ApiError, RequestError};

use super::TgBot;
use super::callback::Cb;
use super::limits::Kind;
use crate::app::AppState;
use crate::db::users::UserRow;
use crate::domain::Language;
use crate::i18n;

/// A message with its buttons.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    pub text: String,
    pub keyboard: Option<InlineKeyboardMarkup>,
}

impl Screen {
    pub fn new(text: String, rows: Vec<Vec<InlineKeyboardButton>>) -> Screen {
        Screen { text, keyboard: (!rows.is_empty()).then(|| InlineKeyboardMarkup::new(rows)) }
    }
}

/// A button that sends `cb`.
pub fn button(text: impl Into<String>, cb: Cb) -> InlineKeyboardButton {
    InlineKeyboardButton::callback(text.into(), cb.to_string())
}

/// Escapes text for Telegram's HTML parse mode.
pub use teloxide::utils::html::escape as html;

/// How many messages an update's handler has sent, over all its attempts.
pub struct Progress {
    pool: sqlx::PgPool,
    update_id: i64,
    worker: Arc<str>,
    /// Sent by earlier attempts: this attempt skips that many.
    before: i32,
    /// The number of the next message this attempt comes to.
    next: AtomicI32,
}

/// One message of an update, not sent by an earlier attempt.
#[must_use = "record the message with `sent` once it went out"]
pub struct Step<'a> {
    progress: &'a Progress,
    number: i32,
}

impl Progress {
    /// An update claimed by `worker` whose earlier attempts sent `before` messages.
    pub fn new(pool: sqlx::PgPool, update_id: i64, worker: Arc<str>, before: i32) -> Progress {
        Progress { pool, update_id, worker, before, next: AtomicI32::new(0) }
    }

    /// Whether an earlier attempt of this update sent messages already (it ended before it finished).
    pub fn sent_before(&self) -> bool {
        self.before > 0
    }

    /// The next message: `None` when an earlier attempt sent it already (skip it).
    pub fn step(&self) -> Option<Step<'_>> {
        let number = self.next.fetch_add(1, Ordering::SeqCst);
        (number >= self.before).then_some(Step { progress: self, number })
    }
}

impl Step<'_> {
    /// Records the message as sent. If that fails the update goes on; a retry may repeat this one message.
    pub async fn sent(self) {
        let p = self.progress;
        match crate::services::inbox::record_sent(&p.pool, p.update_id, &p.worker, self.number + 1).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the update's lease passed to another worker while it was being handled"),
            Err(e) => tracing::warn!(error = %e, "could not record a sent message; a retry may repeat it"),
        }
    }
}

/// One update's context.
pub struct Ctx<'a> {
    pub app: &'a AppState,
    pub bot: &'a TgBot,
    pub user: UserRow,
    pub chat: ChatId,
    /// The message a pressed button belongs to (screens replace it), if any.
    pub origin: Option<MessageId>,
    pub progress: &'a Progress,
}

impl Ctx<'_> {
    pub fn lang(&self) -> Language {
        self.user.language
    }

    pub fn t(&self, key: &str) -> String {
        i18n::t(self.lang(), key)
    }

    pub fn t_args(&self, key: &str, args: &[(&'static str, i18n::Arg)]) -> String {
        i18n::t_args(self.lang(), key, args)
    }

    /// Shows a screen: replaces the pressed button's message, or sends a new one.
    pub async fn show(&self, screen: Screen) -> Result<(), RequestError> {
        let Some(step) = self.progress.step() else { return Ok(()) };
        self.edit_or_send(screen).await?;
        step.sent().await;
        Ok(())
    }

    /// Sends a screen as a new message.
    pub async fn send(&self, screen: Screen) -> Result<(), RequestError> {
        let Some(step) = self.progress.step() else { return Ok(()) };
        self.send_new(screen).await?;
        step.sent().await;
        Ok(())
    }

    async fn edit_or_send(&self, screen: Screen) -> Result<(), RequestError> {
        if let Some(message) = self.origin {
            let mut edit =
                self.bot.api().edit_message_text(self.chat, message, &screen.text).parse_mode(ParseMode::Html);
            if let Some(kb) = &screen.keyboard {
                edit = edit.reply_markup(kb.clone());
            }
            match self.bot.send(self.chat, Kind::Edit, edit).await {
                Ok(_) => return Ok(()),
                // the same screen again (a double tap, or a retried update): nothing to change
                Err(RequestError::Api(ApiError::MessageNotModified)) => return Ok(()),
                // too old or deleted to edit: send it instead
                Err(RequestError::Api(ApiError::MessageToEditNotFound | ApiError::MessageCantBeEdited)) => {}
                Err(e) => return Err(e),
            }
        }
        self.send_new(screen).await
    }

    async fn send_new(&self, screen: Screen) -> Result<(), RequestError> {
        let mut send = self.bot.api().send_message(self.chat, screen.text).parse_mode(ParseMode::Html);
        if let Some(kb) = screen.keyboard {
            send = send.reply_markup(kb);
        }
        self.bot.send(self.chat, Kind::Send, send).await.map(|_| ())
    }
}
