//! `FakeTelegram`: a local Bot API server on 127.0.0.1 (port 0) that teloxide talks to as if it were
//! api.telegram.org. It records every call, answers with the real `{"ok":…}` envelope, keeps the messages the
//! bot sent (so edits follow the real rules), serves files, hands queued updates to `getUpdates`, fails on
//! request, and (when asked) enforces Telegram's rate limits with 429s. Update builders in the exact Bot API shape
//! live in [`updates`].

mod api;
mod limits;
mod messages;
mod multipart;
mod updates;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use url::Url;

pub use updates::{TgUser, callback_update, command_update, document_update, message_update, photo_update};

/// The token tests give the bot; calls with any other token are answered 401 `Unauthorized`.
pub const TEST_TOKEN: &str = "123456:TEST-token";
/// The bot's user id (the token's number, as with the real API).
pub const BOT_ID: i64 = 123_456;
pub const BOT_USERNAME: &str = "vpnshop_test_bot";
pub const BOT_FIRST_NAME: &str = "VPN Shop (test)";

/// One request the fake received. `method` is the Bot API spelling (`sendMessage`; teloxide sends
/// `SendMessage`, and method names are case-insensitive); file downloads are recorded as `downloadFile` with
/// `{"file_path": …}`. `params` is the JSON body; for form bodies every text field is read as JSON when it
/// parses (so `"42"` becomes `42` and `allowed_updates` an array) and kept as a string otherwise; an uploaded
/// file appears as `{"file_name", "len", "sha256"}` in place of its `attach://…` reference.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub at: Instant,
}

/// How the next call(s) of a method fail (see [`FakeTelegram::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 with `parameters.retry_after` = the seconds; teloxide surfaces `RequestError::RetryAfter`.
    RetryAfter(u32),
    /// HTTP 403 `Forbidden: bot was blocked by the user`; teloxide surfaces `ApiError::BotBlocked`.
    Blocked,
    /// This HTTP status and description. Beware: teloxide sleeps 10 s after any 5xx before reporting it.
    Status(u16, String),
}

/// A message the bot sent, as it stands now (after edits; deleted messages are gone).
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub message_id: i32,
    pub text: Option<String>,
    pub caption: Option<String>,
    /// The inline keyboard (`{"inline_keyboard": …}`); other markups are not part of a message.
    pub reply_markup: Option<Value>,
    /// The photo's or document's file id; its bytes are served through `getFile`.
    pub file_id: Option<String>,
    /// `{"photo": [...]}` or `{"document": {...}}`, merged into the message object.
    media: Option<Value>,
    media_group_id: Option<String>,
    date: i64,
    edit_date: Option<i64>,
}

struct StoredFile {
    unique_id: String,
    path: String,
    bytes: Vec<u8>,
}

struct State {
    calls: Vec<Call>,
    /// (method lowercased, times left, failure), consulted in order.
    failures: Vec<(String, u32, Failure)>,
    strict_edits: bool,
    next_message_id: i32,
    next_file: u64,
    /// Keyed by (chat id, message id).
    messages: BTreeMap<(i64, i32), SentMessage>,
    files: HashMap<String, StoredFile>,
    /// Queued updates not yet confirmed by a `getUpdates` offset, oldest first.
    updates: VecDeque<Value>,
    /// The params of the last `setWebhook` (cleared by `deleteWebhook`).
    webhook: Option<Value>,
    commands: Value,
    /// Telegram's rate limits, when enforced.
    limits: Option<limits::Enforced>,
    /// Chats whose user blocked the bot: new messages there answer 403.
    blocked: HashSet<i64>,
}

impl State {
    fn add_file(&mut self, file_id: &str, unique_id: &str, bytes: Vec<u8>) -> String {
        self.next_file += 1;
        let path = format!("files/file_{}.bin", self.next_file);
        self.files
            .insert(file_id.to_owned(), StoredFile { unique_id: unique_id.to_owned(), path: path.clone(), bytes });
        path
    }
}

struct Shared {
    state: Mutex<State>,
    updates_queued: Notify,
    /// Woken after every call the fake has answered (see [`FakeTelegram::wait_until`]).
    answered: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Bot API; stopped when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeTelegram {
    /// Starts the fake on 127.0.0.1, port 0. Edits are strict (like the real API) until
    /// [`set_strict_edits`](Self::set_strict_edits)`(false)`.
    pub async fn start() -> FakeTelegram {
        let state = State {
            calls: vec![],
            failures: vec![],
            strict_edits: true,
            next_message_id: 1000,
            next_file: 0,
            messages: BTreeMap::new(),
            files: HashMap::new(),
            updates: VecDeque::new(),
            webhook: None,
            commands: Value::Array(vec![]),
            limits: None,
            blocked: HashSet::new(),
        };
        let shared =
            Arc::new(Shared { state: Mutex::new(state), updates_queued: Notify::new(), answered: Notify::new() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake telegram");
        let addr = listener.local_addr().expect("fake telegram addr");
        let app = api::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram { addr, shared, task }
    }

    /// The API base URL, for `telegram.api_url` or `Bot::set_api_url`.
    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("fake telegram url")
    }

    pub fn token(&self) -> &'static str {
        TEST_TOKEN
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The calls of one method (case-insensitive: `sendMessage` or `SendMessage`), oldest first.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.shared.lock().calls.iter().filter(|c| c.method.eq_ignore_ascii_case(method)).cloned().collect()
    }

    /// Waits until `method` was called at least `n` times and returns those calls; panics after `timeout`.
    pub async fn wait_for(&self, method: &str, n: usize, timeout: Duration) -> Vec<Call> {
        let start = Instant::now();
        loop {
            let calls = self.calls_of(method);
            if calls.len() >= n {
                return calls;
            }
            if start.elapsed() > timeout {
                let seen: Vec<String> = self.calls().into_iter().map(|c| c.method).collect();
                panic!("{method} called {} times, not {n}, within {timeout:?}; calls: {seen:?}", calls.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `check` finds what it looks for, checking now and again after every call the fake answers (no
    /// polling delay: the waiter wakes as the bot's call is answered); `None` after `timeout`.
    pub async fn wait_until<T>(&self, timeout: Duration, mut check: impl FnMut(&Self) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answered = self.shared.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if let Some(found) = check(self) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return check(self);
            }
        }
    }

    /// Forgets the recorded calls (messages, files, updates and pending failures stay).
    pub fn clear(&self) {
        self.shared.lock().calls.clear();
    }

    /// Makes the next `times` calls of `method` (case-insensitive) fail with `failure`. The calls are still
    /// recorded. Several injections for one method are used up in the order given.
    pub fn fail_next(&self, method: &str, times: u32, failure: Failure) {
        self.shared.lock().failures.push((method.to_ascii_lowercase(), times, failure));
    }

    /// Strict (the default, like the real API): editing or deleting a message the bot never sent is
    /// `400 … not found`, and an edit that changes nothing is `400 Bad Request: message is not modified…`.
    /// Lenient: such edits succeed (an unknown message is taken as sent) and deletes of unknown ones too.
    pub fn set_strict_edits(&self, strict: bool) {
        self.shared.lock().strict_edits = strict;
    }

    /// From now on, answers like Telegram when the bot sends too fast: `429 Too Many Requests` with `retry_after`
    /// for a new message less than a second after the previous one to the same chat (three in a group), or for
    /// any message (new or edited) beyond 30 in the last second overall. Refused calls are recorded but not
    /// counted against the limits.
    pub fn enforce_limits(&self) {
        self.shared.lock().limits = Some(limits::Enforced::default());
    }

    /// Like [`enforce_limits`](Self::enforce_limits) with `per_second` in place of Telegram's 30 a second overall
    /// (the chat limits stay Telegram's).
    pub fn enforce_limits_at(&self, per_second: usize) {
        let mut limits = limits::Enforced::default();
        limits.per_second = Some(per_second);
        self.shared.lock().limits = Some(limits);
    }

    /// The user of `chat_id` blocked the bot: from now on messages sent there answer
    /// `403 Forbidden: bot was blocked by the user` (recorded as calls, never delivered).
    pub fn block_chat(&self, chat_id: i64) {
        self.shared.lock().blocked.insert(chat_id);
    }

    /// How many calls the enforced limits refused.
    pub fn rate_limited(&self) -> u64 {
        self.shared.lock().limits.as_ref().map_or(0, |l| l.refused)
    }

    /// Queues an update (e.g. from [`message_update`]) for `getUpdates`.
    pub fn queue_update(&self, update: Value) {
        self.shared.lock().updates.push_back(update);
        self.shared.updates_queued.notify_waiters();
    }

    /// Stores a file the way Telegram holds a user's upload: `getFile(file_id)` answers with a `file_path` and
    /// `GET /file/bot{token}/{file_path}` serves `bytes`.
    pub fn add_file(&self, file_id: &str, file_unique_id: &str, bytes: impl Into<Vec<u8>>) {
        self.shared.lock().add_file(file_id, file_unique_id, bytes.into());
    }

    /// The messages the bot has in this chat now, oldest first.
    pub fn messages_to(&self, chat_id: i64) -> Vec<SentMessage> {
        self.shared.lock().messages.range((chat_id, i32::MIN)..=(chat_id, i32::MAX)).map(|(_, m)| m.clone()).collect()
    }

    pub fn message(&self, chat_id: i64, message_id: i32) -> Option<SentMessage> {
        self.shared.lock().messages.get(&(chat_id, message_id)).cloned()
    }

    /// The params of the webhook set now (`None` before `setWebhook` and after `deleteWebhook`).
    pub fn webhook(&self) -> Option<Value> {
        self.shared.lock().webhook.clone()
    }
}

/// Seconds since the epoch, as Bot API dates are.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).ok().and_then(|d| i64::try_from(d.as_secs()).ok()).unwrap_or(1)
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}
