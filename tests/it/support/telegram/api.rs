//! The HTTP side of the fake: `POST /bot{token}/{method}` (JSON, form or multipart body, or a query string)
//! and `GET /file/bot{token}/{file_path}`. Each call is recorded, then checked against the token and the
//! injected failures, then answered the way the Bot API answers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::messages;
use super::multipart::{self, Form, text_value};
use super::updates::{bot_user, merge};
use super::{Call, Failure, Shared, State, TEST_TOKEN};

/// The longest a `getUpdates` long poll is held, whatever its `timeout`, so a stopping poller is not kept.
const LONG_POLL_CAP: Duration = Duration::from_secs(1);

/// A Bot API error: HTTP status (= `error_code`) and description.
pub(super) type ApiError = (u16, String);

pub(super) fn bad_request(description: &str) -> ApiError {
    (400, format!("Bad Request: {description}"))
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).layer(DefaultBodyLimit::max(64 * 1024 * 1024)).with_state(shared)
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    match segments.as_slice() {
        [file, bot, path @ ..] if file == "file" && !path.is_empty() => download(&shared, bot, &path.join("/")),
        [bot, method] if bot.starts_with("bot") => call(&shared, &bot[3..], method, &uri, &headers, &body).await,
        _ => error(404, "Not Found", None),
    }
}

async fn call(shared: &Shared, token: &str, name: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    // the Bot API spelling: teloxide sends `SendMessage`, the docs say `sendMessage`
    let mut chars = name.chars();
    let method: String = chars.next().map(|c| c.to_ascii_lowercase()).into_iter().chain(chars).collect();
    let form = read_params(uri, headers, body);
    let injected = {
        let mut st = shared.lock();
        let params = form.as_ref().map_or_else(|e| json!({"unreadable_body": e}), Form::recorded);
        let now = Instant::now();
        let limited = match (&mut st.limits, token == TEST_TOKEN) {
            (Some(limits), true) => limits.check(&method, &params, now),
            _ => None,
        };
        let blocked = method.starts_with("send")
            && params
                .get("chat_id")
                .and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()))
                .is_some_and(|c| st.blocked.contains(&c));
        st.calls.push(Call { method: method.clone(), params, at: now });
        if token != TEST_TOKEN {
            None
        } else {
            take_failure(&mut st, &method).or(limited.map(Failure::RetryAfter)).or(blocked.then_some(Failure::Blocked))
        }
    };
    if token != TEST_TOKEN {
        return error(401, "Unauthorized", None);
    }
    if let Some(failure) = injected {
        return failed(failure);
    }
    let form = match form {
        Ok(form) => form,
        Err(e) => return error(400, &format!("Bad Request: {e}"), None),
    };
    if method == "getUpdates" {
        return get_updates(shared, &form.fields).await;
    }
    let answered = answer(&mut shared.lock(), &method, &form);
    shared.answered.notify_waiters();
    match answered {
        Ok(result) => Json(json!({"ok": true, "result": result})).into_response(),
        Err((code, description)) => error(code, &description, None),
    }
}

fn answer(st: &mut State, method: &str, form: &Form) -> Result<Value, ApiError> {
    let p = &form.fields;
    match method {
        "getMe" => {
            let mut me = bot_user();
            let flags = json!({"can_join_groups": false, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "can_connect_to_business": false, "has_main_web_app": false});
            merge(&mut me, flags);
            Ok(me)
        }
        "sendMessage" => messages::send_message(st, p),
        "sendPhoto" => messages::send_file(st, form, "photo"),
        "sendDocument" => messages::send_file(st, form, "document"),
        "sendMediaGroup" => messages::send_media_group(st, form),
        "editMessageText" => messages::edit(st, p, messages::Edit::Text),
        "editMessageCaption" => messages::edit(st, p, messages::Edit::Caption),
        "editMessageReplyMarkup" => messages::edit(st, p, messages::Edit::Markup),
        "deleteMessage" => messages::delete(st, p),
        "getFile" => get_file(st, p),
        "setWebhook" => set_webhook(st, form),
        "deleteWebhook" => {
            if p.get("drop_pending_updates") == Some(&json!(true)) {
                st.updates.clear();
            }
            st.webhook = None;
            Ok(json!(true))
        }
        "getWebhookInfo" => {
            let mut info =
                json!({"url": "", "has_custom_certificate": false, "pending_update_count": st.updates.len()});
            for key in ["url", "max_connections", "allowed_updates"] {
                if let Some(value) = st.webhook.as_ref().and_then(|w| w.get(key)) {
                    info[key] = value.clone();
                }
            }
            Ok(info)
        }
        "setMyCommands" => {
            st.commands = p.get("commands").cloned().unwrap_or(json!([]));
            Ok(json!(true))
        }
        "getMyCommands" => Ok(st.commands.clone()),
        "deleteMyCommands" => {
            st.commands = json!([]);
            Ok(json!(true))
        }
        "answerCallbackQuery"
        | "sendChatAction"
        | "setChatMenuButton"
        | "setMyDescription"
        | "setMyShortDescription"
        | "setMyName"
        | "answerPreCheckoutQuery" => Ok(json!(true)),
        _ => Err((404, "Not Found: method not found".to_owned())),
    }
}

/// Long polling: answers the queued updates from `offset` on (forgetting the older ones, which `offset`
/// confirms), or waits for one up to `timeout` (at most [`LONG_POLL_CAP`]) and answers `[]`.
async fn get_updates(shared: &Shared, p: &Map<String, Value>) -> Response {
    let offset = p.get("offset").and_then(Value::as_i64);
    let limit = p.get("limit").and_then(Value::as_u64).map_or(100, |l| l.clamp(1, 100));
    let timeout = Duration::from_secs(p.get("timeout").and_then(Value::as_u64).unwrap_or(0)).min(LONG_POLL_CAP);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let queued = shared.updates_queued.notified();
        {
            let mut st = shared.lock();
            if st.webhook.is_some() {
                let conflict = "Conflict: can't use getUpdates method while webhook is active; \
                                use deleteWebhook to delete the webhook first";
                return error(409, conflict, None);
            }
            if let Some(offset) = offset {
                st.updates.retain(|u| u["update_id"].as_i64().is_none_or(|id| id >= offset));
            }
            let batch: Vec<Value> = st.updates.iter().take(limit as usize).cloned().collect();
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                return Json(json!({"ok": true, "result": batch})).into_response();
            }
        }
        let _ = tokio::time::timeout_at(deadline, queued).await;
    }
}

fn set_webhook(st: &mut State, form: &Form) -> Result<Value, ApiError> {
    let p = &form.fields;
    if let Some(secret) = p.get("secret_token") {
        let secret = messages::as_text(secret);
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if secret.is_empty() || secret.len() > 256 || !secret.chars().all(allowed) {
            return Err(bad_request("secret token contains unallowed characters"));
        }
    }
    if p.get("drop_pending_updates") == Some(&json!(true)) {
        st.updates.clear();
    }
    let url = p.get("url").map(messages::as_text).unwrap_or_default();
    // an empty url removes the webhook, as with the real API
    st.webhook = (!url.is_empty()).then(|| form.recorded());
    Ok(json!(true))
}

fn get_file(st: &State, p: &Map<String, Value>) -> Result<Value, ApiError> {
    let file_id = p.get("file_id").map(messages::as_text).unwrap_or_default();
    let file = st.files.get(&file_id).ok_or_else(|| bad_request("invalid file_id"))?;
    Ok(json!({
        "file_id": file_id,
        "file_unique_id": file.unique_id,
        "file_size": file.bytes.len(),
        "file_path": file.path,
    }))
}

/// `GET /file/bot{token}/{file_path}`, recorded as `downloadFile`.
fn download(shared: &Shared, bot: &str, path: &str) -> Response {
    let mut st = shared.lock();
    st.calls.push(Call { method: "downloadFile".to_owned(), params: json!({"file_path": path}), at: Instant::now() });
    if bot.strip_prefix("bot") != Some(TEST_TOKEN) {
        return error(401, "Unauthorized", None);
    }
    if let Some(failure) = take_failure(&mut st, "downloadFile") {
        return failed(failure);
    }
    match st.files.values().find(|f| f.path == path) {
        Some(file) => (StatusCode::OK, file.bytes.clone()).into_response(),
        None => error(404, "Not Found", None),
    }
}

/// The call's params: the JSON, form or multipart body, plus any query string parameters.
fn read_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Form, String> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let form_fields = |bytes: &[u8]| -> Map<String, Value> {
        url::form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), text_value(&v))).collect()
    };
    let mut form = if content_type.starts_with("multipart/form-data") {
        multipart::parse(content_type, body)?
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Form { fields: form_fields(body), uploads: Default::default() }
    } else if body.iter().all(u8::is_ascii_whitespace) {
        Form { fields: Map::new(), uploads: Default::default() }
    } else {
        match serde_json::from_slice(body).map_err(|e| format!("can't parse JSON body: {e}"))? {
            Value::Object(fields) => Form { fields, uploads: Default::default() },
            _ => return Err("the JSON body is not an object".to_owned()),
        }
    };
    for (key, value) in form_fields(uri.query().unwrap_or("").as_bytes()) {
        form.fields.entry(key).or_insert(value);
    }
    Ok(form)
}

/// Uses up one injected failure for `method`, if any is left.
fn take_failure(st: &mut State, method: &str) -> Option<Failure> {
    let i = st.failures.iter().position(|(m, times, _)| *times > 0 && m.eq_ignore_ascii_case(method))?;
    let entry = &mut st.failures[i];
    entry.1 -= 1;
    let failure = entry.2.clone();
    if entry.1 == 0 {
        st.failures.remove(i);
    }
    Some(failure)
}

fn failed(failure: Failure) -> Response {
    match failure {
        Failure::RetryAfter(secs) => {
            error(429, &format!("Too Many Requests: retry after {secs}"), Some(json!({"retry_after": secs})))
        }
        Failure::Blocked => error(403, "Forbidden: bot was blocked by the user", None),
        Failure::Status(code, description) => error(code, &description, None),
    }
}

/// The error envelope, with the HTTP status equal to `error_code` as the real API does.
fn error(code: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
}
