//! Telegram's rate limits as the fake enforces them (Bot FAQ: "avoid sending more than one message per second"
//! in a chat, "no more than 20 messages per minute" in a group, "not more than 30 messages per second" in bulk).
//! Windows are measured on arrival, strictly: a second message to a chat 999 ms after the first is refused.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);
const GROUP_INTERVAL: Duration = Duration::from_secs(3);
const OVERALL_PER_SECOND: usize = 30;

#[derive(Default)]
pub(super) struct Enforced {
    /// Messages a second overall, when not Telegram's 30 (tests that send thousands go faster).
    pub per_second: Option<usize>,
    /// When each chat last got a new message.
    last_sent: HashMap<i64, Instant>,
    /// Messages (new or edited) accepted in the last second.
    recent: VecDeque<Instant>,
    pub refused: u64,
}

/// A method that puts a new message in a chat.
fn sends(method: &str) -> bool {
    matches!(
        method,
        "sendMessage" | "sendPhoto" | "sendDocument" | "sendMediaGroup" | "sendVideo" | "sendAudio" | "sendSticker"
    )
}

fn edits(method: &str) -> bool {
    method.starts_with("editMessage")
}

impl Enforced {
    /// `Some(retry_after seconds)` when this call is over a limit; otherwise it is counted.
    pub fn check(&mut self, method: &str, params: &Value, now: Instant) -> Option<u32> {
        if !sends(method) && !edits(method) {
            return None;
        }
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= SECOND) {
            self.recent.pop_front();
        }
        let chat = params.get("chat_id").and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()));
        let interval = if chat.is_some_and(|c| c < 0) { GROUP_INTERVAL } else { SECOND };
        let chat_busy = sends(method)
            && chat.and_then(|c| self.last_sent.get(&c)).is_some_and(|t| now.duration_since(*t) < interval);
        if chat_busy || self.recent.len() >= self.per_second.unwrap_or(OVERALL_PER_SECOND) {
            self.refused += 1;
            return Some(1);
        }
        self.recent.push_back(now);
        if let (true, Some(chat)) = (sends(method), chat) {
            self.last_sent.insert(chat, now);
        }
        None
    }
}
