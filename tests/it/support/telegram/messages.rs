//! The bot's messages: sending (text, photo, document, albums), editing and deleting, with the real API's
//! checks (empty or too long text, callback data over 64 bytes, edits of unknown or unchanged messages).

use serde_json::{Map, Value, json};

use super::api::{ApiError, bad_request};
use super::multipart::Form;
use super::updates::{bot_user, merge};
use super::{SentMessage, State, unix_now};

const MAX_TEXT: usize = 4096;
const MAX_CAPTION: usize = 1024;
const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are \
                            exactly the same as a current content and reply markup of the message";

/// What an edit changes (the inline keyboard is always replaced: leaving it out removes it).
pub(super) enum Edit {
    Text,
    Caption,
    Markup,
}

pub(super) fn send_message(st: &mut State, p: &Map<String, Value>) -> Result<Value, ApiError> {
    let chat_id = chat_id(p)?;
    let text = checked_text(p, "text", MAX_TEXT)?.ok_or_else(|| bad_request("message text is empty"))?;
    let markup = inline_markup(p)?;
    let mut message = new_message(st, chat_id);
    message.text = Some(text);
    message.reply_markup = markup;
    Ok(store(st, message))
}

/// `sendPhoto` / `sendDocument`: `field` is `photo` or `document`.
pub(super) fn send_file(st: &mut State, form: &Form, field: &str) -> Result<Value, ApiError> {
    let p = &form.fields;
    let chat_id = chat_id(p)?;
    let value = p.get(field).ok_or_else(|| bad_request(&format!("there is no {field} in the request")))?;
    let caption = checked_text(p, "caption", MAX_CAPTION)?;
    let markup = inline_markup(p)?;
    let (file_id, media) = attach(st, form, field, value)?;
    let mut message = new_message(st, chat_id);
    (message.caption, message.reply_markup, message.file_id, message.media) =
        (caption, markup, Some(file_id), Some(media));
    Ok(store(st, message))
}

/// `sendMediaGroup`: photos stay photos, every other kind is answered as a document.
pub(super) fn send_media_group(st: &mut State, form: &Form) -> Result<Value, ApiError> {
    let chat_id = chat_id(&form.fields)?;
    let items = form.fields.get("media").and_then(Value::as_array).ok_or_else(|| bad_request("media is empty"))?;
    let group = format!("album-{}", st.next_message_id + 1);
    let mut sent = vec![];
    for item in items {
        let kind = if item["type"] == "photo" { "photo" } else { "document" };
        let caption = item.as_object().map(|i| checked_text(i, "caption", MAX_CAPTION)).transpose()?.flatten();
        let (file_id, media) = attach(st, form, kind, &item["media"])?;
        let mut message = new_message(st, chat_id);
        (message.caption, message.file_id, message.media) = (caption, Some(file_id), Some(media));
        message.media_group_id = Some(group.clone());
        sent.push(store(st, message));
    }
    Ok(Value::Array(sent))
}

pub(super) fn edit(st: &mut State, p: &Map<String, Value>, what: Edit) -> Result<Value, ApiError> {
    if p.contains_key("inline_message_id") {
        return Ok(json!(true));
    }
    let key = (chat_id(p)?, message_id(p)?);
    let new_text = match what {
        Edit::Text => Some(checked_text(p, "text", MAX_TEXT)?.ok_or_else(|| bad_request("message text is empty"))?),
        Edit::Caption => checked_text(p, "caption", MAX_CAPTION)?,
        Edit::Markup => None,
    };
    let markup = inline_markup(p)?;
    let strict = st.strict_edits;
    if !strict && !st.messages.contains_key(&key) {
        let message = SentMessage { message_id: key.1, ..new_message(st, key.0) };
        st.messages.insert(key, message);
    }
    let message = st.messages.get_mut(&key).ok_or_else(|| bad_request("message to edit not found"))?;
    let slot = match what {
        Edit::Text => Some(&mut message.text),
        Edit::Caption => Some(&mut message.caption),
        Edit::Markup => None,
    };
    if strict {
        if matches!(what, Edit::Text) && slot.as_ref().is_some_and(|s| s.is_none()) {
            return Err(bad_request("there is no text in the message to edit"));
        }
        let same_text = slot.as_ref().is_none_or(|s| **s == new_text);
        if same_text && message.reply_markup == markup {
            return Err(bad_request(NOT_MODIFIED));
        }
    }
    if let Some(slot) = slot {
        *slot = new_text;
    }
    message.reply_markup = markup;
    message.edit_date = Some(unix_now());
    Ok(message_json(message))
}

pub(super) fn delete(st: &mut State, p: &Map<String, Value>) -> Result<Value, ApiError> {
    let key = (chat_id(p)?, message_id(p)?);
    if st.messages.remove(&key).is_none() && st.strict_edits {
        return Err(bad_request("message to delete not found"));
    }
    Ok(json!(true))
}

/// A text-ish param as a string (form values may have been read as numbers).
pub(super) fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn chat_id(p: &Map<String, Value>) -> Result<i64, ApiError> {
    match p.get("chat_id") {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad_request("chat not found")),
        Some(Value::String(s)) => s.parse().map_err(|_| bad_request("chat not found")),
        _ => Err(bad_request("chat_id is empty")),
    }
}

fn message_id(p: &Map<String, Value>) -> Result<i32, ApiError> {
    let id = p.get("message_id").and_then(Value::as_i64);
    id.and_then(|id| i32::try_from(id).ok()).ok_or_else(|| bad_request("message identifier is not specified"))
}

/// The optional text param `key`, checked against the limit (counted after HTML parsing, in UTF-16 units).
fn checked_text(p: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(text) = p.get(key).map(as_text).filter(|t| !t.is_empty()) else { return Ok(None) };
    let html = p.get("parse_mode").is_some_and(|m| m.as_str().is_some_and(|m| m.eq_ignore_ascii_case("html")));
    if visible_len(&text, html) > max {
        let what = if key == "caption" { "message caption is too long" } else { "message is too long" };
        return Err(bad_request(what));
    }
    Ok(Some(text))
}

fn visible_len(text: &str, html: bool) -> usize {
    if !html {
        return text.encode_utf16().count();
    }
    let (mut len, mut in_tag, mut in_entity) = (0, false, false);
    for c in text.chars() {
        match c {
            '<' if !in_entity => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            '&' => (in_entity, len) = (true, len + 1),
            ';' if in_entity => in_entity = false,
            _ if in_entity => {}
            c => len += c.len_utf16(),
        }
    }
    len
}

/// The inline keyboard of `reply_markup` (other keyboards are accepted but are not part of the message).
fn inline_markup(p: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let Some(markup) = p.get("reply_markup").filter(|m| m.get("inline_keyboard").is_some()) else { return Ok(None) };
    let buttons = markup["inline_keyboard"].as_array().into_iter().flatten().filter_map(Value::as_array).flatten();
    for button in buttons {
        if let Some(data) = button.get("callback_data") {
            let len = data.as_str().map_or(0, str::len);
            if !(1..=64).contains(&len) {
                return Err(bad_request("BUTTON_DATA_INVALID"));
            }
        }
    }
    Ok(Some(markup.clone()))
}

fn new_message(st: &mut State, chat_id: i64) -> SentMessage {
    st.next_message_id += 1;
    SentMessage {
        chat_id,
        message_id: st.next_message_id,
        text: None,
        caption: None,
        reply_markup: None,
        file_id: None,
        media: None,
        media_group_id: None,
        date: unix_now(),
        edit_date: None,
    }
}

fn store(st: &mut State, message: SentMessage) -> Value {
    let json = message_json(&message);
    st.messages.insert((message.chat_id, message.message_id), message);
    json
}

/// The `Message` object of a bot's message.
fn message_json(m: &SentMessage) -> Value {
    let chat = if m.chat_id > 0 {
        json!({"id": m.chat_id, "type": "private", "first_name": "Test user"})
    } else {
        json!({"id": m.chat_id, "type": "supergroup", "title": "Test group"})
    };
    let mut json = json!({"message_id": m.message_id, "from": bot_user(), "chat": chat, "date": m.date});
    let fields = [
        ("text", m.text.as_ref().map(|t| json!(t))),
        ("caption", m.caption.as_ref().map(|c| json!(c))),
        ("reply_markup", m.reply_markup.clone()),
        ("media_group_id", m.media_group_id.as_ref().map(|g| json!(g))),
        ("edit_date", m.edit_date.map(|d| json!(d))),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            json[key] = value;
        }
    }
    if let Some(media) = &m.media {
        merge(&mut json, media.clone());
    }
    json
}

/// Resolves a photo/document param (an upload, a known file id or a URL) to a stored file and the message's
/// `{"photo": [...]}` / `{"document": {...}}`. Uploads and URLs get a new file id; known file ids are reused.
fn attach(st: &mut State, form: &Form, kind: &str, value: &Value) -> Result<(String, Value), ApiError> {
    let known = value.as_str().filter(|id| st.files.contains_key(*id));
    let (file_id, file_name) = match (form.upload(value), known) {
        (Some(upload), _) => (new_file(st, kind, upload.bytes.clone()), Some(upload.file_name.clone())),
        (None, Some(id)) => (id.to_owned(), None),
        (None, None) if as_text(value).starts_with("http") => (new_file(st, kind, vec![]), None),
        (None, None) => return Err(bad_request("wrong file identifier/HTTP URL specified")),
    };
    let file = &st.files[&file_id];
    let meta = json!({"file_id": file_id, "file_unique_id": file.unique_id, "file_size": file.bytes.len()});
    let media = if kind == "photo" {
        let mut size = meta;
        merge(&mut size, json!({"width": 512, "height": 512}));
        json!({"photo": [size]})
    } else {
        let mut document = meta;
        if let Some(name) = file_name {
            document["file_name"] = json!(name);
        }
        json!({"document": document})
    };
    Ok((file_id, media))
}

fn new_file(st: &mut State, kind: &str, bytes: Vec<u8>) -> String {
    let n = st.next_file + 1;
    let file_id = format!("fake-{kind}-{n}");
    st.add_file(&file_id, &format!("fake-unique-{n}"), bytes);
    file_id
}
