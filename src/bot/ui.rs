//! What handlers work with: who is talking, in which language, and how a screen reaches them — edited in
//! place when a button was pressed (no chat spam), sent when a command was typed.

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
pub fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One update's context.
pub struct Ctx<'a> {
    pub app: &'a AppState,
    pub bot: &'a TgBot,
    pub user: UserRow,
    pub chat: ChatId,
    /// The message a pressed button belongs to (screens replace it), if any.
    pub origin: Option<MessageId>,
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
        self.send(screen).await
    }

    /// Sends a screen as a new message.
    pub async fn send(&self, screen: Screen) -> Result<(), RequestError> {
        let mut send = self.bot.api().send_message(self.chat, screen.text).parse_mode(ParseMode::Html);
        if let Some(kb) = screen.keyboard {
            send = send.reply_markup(kb);
        }
        self.bot.send(self.chat, Kind::Send, send).await.map(|_| ())
    }
}
