//! Updates in the exact Bot API shape (what Telegram posts to a webhook or returns from `getUpdates`), from a
//! user in their private chat with the bot. User messages take the update id as their message id.
//!
//! Read them as teloxide does, from text (`serde_json::from_str(&update.to_string())`): teloxide 0.17's
//! `UpdateKind` cannot be read by `serde_json::from_value` (it comes out as `UpdateKind::Error`).

use serde_json::{Value, json};

use super::{BOT_FIRST_NAME, BOT_ID, BOT_USERNAME, unix_now};

/// A Telegram user talking to the bot; their private chat has their id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl TgUser {
    /// A user without username or language.
    pub fn new(id: i64, first_name: &str) -> TgUser {
        TgUser { id, first_name: first_name.to_owned(), username: None, language_code: None }
    }

    /// The `User` object.
    pub fn json(&self) -> Value {
        let mut user = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        if let Some(username) = &self.username {
            user["username"] = json!(username);
        }
        if let Some(language) = &self.language_code {
            user["language_code"] = json!(language);
        }
        user
    }

    /// The private `Chat` object of this user with the bot.
    pub fn private_chat(&self) -> Value {
        let mut chat = json!({"id": self.id, "type": "private", "first_name": self.first_name});
        if let Some(username) = &self.username {
            chat["username"] = json!(username);
        }
        chat
    }
}

/// The bot's own `User` object (what `from` holds on its messages).
pub(super) fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
}

fn user_message(update_id: u32, user: &TgUser, content: Value) -> Value {
    let mut message = json!({
        "message_id": update_id,
        "from": user.json(),
        "chat": user.private_chat(),
        "date": unix_now(),
    });
    merge(&mut message, content);
    json!({"update_id": update_id, "message": message})
}

/// The user sends `text`.
pub fn message_update(update_id: u32, user: &TgUser, text: &str) -> Value {
    user_message(update_id, user, json!({"text": text}))
}

/// The user sends a command such as `/start` or `/start ref42`, marked by a `bot_command` entity.
pub fn command_update(update_id: u32, user: &TgUser, text: &str) -> Value {
    let command = text.split_whitespace().next().unwrap_or(text);
    let length = command.encode_utf16().count();
    user_message(
        update_id,
        user,
        json!({"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": length}]}),
    )
}

/// The user presses an inline button with `data` under the bot's message `message_id` in their chat.
pub fn callback_update(update_id: u32, user: &TgUser, message_id: i32, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("cbq-{update_id}"),
            "from": user.json(),
            "message": {
                "message_id": message_id,
                "from": bot_user(),
                "chat": user.private_chat(),
                "date": unix_now(),
                "text": "(a message of the bot)",
            },
            "chat_instance": format!("ci-{}", user.id),
            "data": data,
        }
    })
}

/// The user sends a photo: three sizes, the largest (last) with `file_id`/`file_unique_id`.
pub fn photo_update(update_id: u32, user: &TgUser, file_id: &str, file_unique_id: &str) -> Value {
    let size = |suffix: &str, side: u32, bytes: u32| {
        json!({
            "file_id": format!("{file_id}{suffix}"),
            "file_unique_id": format!("{file_unique_id}{suffix}"),
            "width": side,
            "height": side,
            "file_size": bytes,
        })
    };
    let photo = json!([size("-s", 90, 1_200), size("-m", 320, 14_000), size("", 1280, 120_000)]);
    user_message(update_id, user, json!({"photo": photo}))
}

/// The user sends a file as a document.
pub fn document_update(
    update_id: u32,
    user: &TgUser,
    file_id: &str,
    file_unique_id: &str,
    file_name: &str,
    mime_type: &str,
) -> Value {
    let document = json!({
        "file_id": file_id,
        "file_unique_id": file_unique_id,
        "file_name": file_name,
        "mime_type": mime_type,
        "file_size": 120_000,
    });
    user_message(update_id, user, json!({"document": document}))
}

/// Copies `extra`'s keys into `target` (both objects).
pub(super) fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}
