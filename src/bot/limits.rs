//! Telegram's sending limits, kept before each message rather than learnt from 429s: about one message a second
//! in a chat (twenty a minute in a group) and thirty a second overall. Each limit is a GCRA (generic cell rate
//! algorithm: one "theoretical arrival time" per key), so a message goes out at once whenever it is within the
//! limits and otherwise waits exactly as long as needed — no ticks, no worker queue.
//!
//! A message first waits for its chat; then it takes the next free slot of the overall limit (slots are handed out
//! in order, so a busy moment is served first come, first served) and marks its chat busy until one chat interval
//! after that slot. New messages in a chat are spaced a full interval; edits of the bot's own screen (a customer
//! tapping through menus) may come in a short burst first. With Redis configured both limits live there, checked
//! and updated by one atomic script on Redis's clock, so every instance shares them; without Redis, and while it
//! fails, they are kept in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::TelegramLimitSettings;

/// What a call does to a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new message (text, photo, …).
    Send,
    /// An edit of a message already there.
    Edit,
}

/// The limits, in intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Between two messages to one private chat.
    pub chat: Duration,
    /// Between two messages to one group (negative chat id).
    pub group: Duration,
    /// Between two messages overall.
    pub overall: Duration,
    /// Edits allowed at once in a chat before they too are spaced by `chat`.
    pub edit_burst: u32,
}

impl Rules {
    pub fn from_settings(s: &TelegramLimitSettings) -> Rules {
        Rules {
            chat: Duration::from_millis(s.chat_interval_ms),
            group: Duration::from_millis(s.group_interval_ms),
            overall: Duration::from_secs_f64(1.0 / f64::from(s.per_second.max(1))),
            edit_burst: s.edit_burst.max(1),
        }
    }

    fn interval(&self, chat: i64) -> Duration {
        if chat < 0 { self.group } else { self.chat }
    }

    /// How far ahead of its chat's schedule a call may go.
    fn tolerance(&self, chat: i64, kind: Kind) -> Duration {
        match kind {
            Kind::Send => Duration::ZERO,
            Kind::Edit => self.interval(chat) * (self.edit_burst - 1),
        }
    }
}

/// Keeps the limits; cheap to clone (clones share them).
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Rules,
    local: Mutex<Local>,
    redis: Option<Shared>,
}

/// The limits in Redis.
struct Shared {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    take: redis::Script,
    hold: redis::Script,
    pace: redis::Script,
    /// After a failure Redis is left alone for a while (each call would otherwise wait for its timeout).
    down_until: Mutex<Option<Instant>>,
}

/// How long Redis is skipped after it failed.
const REDIS_BACKOFF: Duration = Duration::from_secs(5);

/// What one look at the limits decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A slot was taken: send after this long (zero: now).
    Go(Duration),
    /// The chat is busy for this long; look again then.
    ChatBusy(Duration),
}

/// Takes a slot: `KEYS[1]` the chat's arrival time, `KEYS[2]` the next free overall slot (µs on Redis's clock);
/// `ARGV` chat interval, this call's tolerance, overall interval (µs). Returns `{1, wait}` for a slot taken and
/// `{0, wait}` for a busy chat.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local chat = tonumber(redis.call('GET', KEYS[1]) or now)
local ready = chat - tonumber(ARGV[2])
if ready > now then return {0, ready - now} end
local slot = math.max(now, tonumber(redis.call('GET', KEYS[2]) or now))
local overall = slot + tonumber(ARGV[3])
local chat_next = math.max(chat, slot) + tonumber(ARGV[1])
redis.call('SET', KEYS[2], string.format('%d', overall), 'PX', math.ceil((overall - now) / 1000) + 1000)
redis.call('SET', KEYS[1], string.format('%d', chat_next), 'PX', math.ceil((chat_next - now) / 1000) + 1000)
return {1, slot - now}
";

/// Takes the next slot of a pace (`KEYS[1]`, the next free slot in µs on Redis's clock) spaced `ARGV[1]` µs;
/// returns how long to wait for it.
const PACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or now))
local next_ = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', next_), 'PX', math.ceil((next_ - now) / 1000) + 1000)
return slot - now
";

/// Holds a chat: nothing goes to `KEYS[1]` for `ARGV[1]` µs.
const HOLD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%d', until_), 'PX', math.ceil((until_ - now) / 1000) + 1000)
return 1
";

impl Limits {
    /// Limits kept in Redis when a connection is given (keys under `prefix`), else in this process.
    pub fn new(rules: Rules, redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> Limits {
        let redis = redis.map(|conn| Shared {
            conn,
            prefix: format!("{prefix}:tg"),
            take: redis::Script::new(TAKE),
            hold: redis::Script::new(HOLD),
            pace: redis::Script::new(PACE),
            down_until: Mutex::new(None),
        });
        Limits { inner: Arc::new(Inner { rules, local: Mutex::new(Local::default()), redis }) }
    }

    pub fn rules(&self) -> Rules {
        self.inner.rules
    }

    /// Waits until a call of `kind` to `chat` is within the limits, and counts it.
    pub async fn wait(&self, chat: i64, kind: Kind) {
        let started = Instant::now();
        loop {
            match self.take(chat, kind).await {
                Verdict::Go(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    metrics::histogram!("vpnshop_telegram_send_wait_seconds").record(started.elapsed().as_secs_f64());
                    return;
                }
                Verdict::ChatBusy(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// Waits for the next slot of the pace `name` (one call per `interval`, shared like the limits), before
    /// [`wait`](Self::wait): bulk sending (broadcasts) takes only its share of the overall limit this way.
    pub async fn pace(&self, name: &str, interval: Duration) {
        let wait = match self.shared() {
            Some(shared) => {
                let mut call = shared.pace.key(format!("{}:pace:{name}", shared.prefix));
                call.arg(micros(interval));
                match call.invoke_async::<i64>(&mut shared.conn.clone()).await {
                    Ok(wait) => Some(Duration::from_micros(wait.max(0) as u64)),
                    Err(e) => {
                        shared.failed(&e);
                        None
                    }
                }
            }
            None => None,
        };
        let wait = wait.unwrap_or_else(|| self.local().pace(name, Instant::now(), interval));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Telegram answered 429 for `chat`: nothing more goes there for `retry_after`.
    pub async fn hold(&self, chat: i64, retry_after: Duration) {
        if let Some(shared) = self.shared() {
            let mut call = shared.hold.key(format!("{}:chat:{chat}", shared.prefix));
            call.arg(micros(retry_after));
            match call.invoke_async::<i64>(&mut shared.conn.clone()).await {
                Ok(_) => return,
                Err(e) => shared.failed(&e),
            }
        }
        self.local().hold(chat, Instant::now() + retry_after);
    }

    async fn take(&self, chat: i64, kind: Kind) -> Verdict {
        let rules = &self.inner.rules;
        if let Some(shared) = self.shared() {
            let mut call = shared.take.key(format!("{}:chat:{chat}", shared.prefix));
            call.key(format!("{}:all", shared.prefix));
            call.arg(micros(rules.interval(chat))).arg(micros(rules.tolerance(chat, kind))).arg(micros(rules.overall));
            match call.invoke_async::<(i64, i64)>(&mut shared.conn.clone()).await {
                Ok((1, wait)) => return Verdict::Go(Duration::from_micros(wait.max(0) as u64)),
                Ok((_, wait)) => return Verdict::ChatBusy(Duration::from_micros(wait.max(0) as u64)),
                Err(e) => shared.failed(&e),
            }
        }
        self.local().take(rules, Instant::now(), chat, kind)
    }

    /// Redis, unless there is none or it failed a moment ago.
    fn shared(&self) -> Option<&Shared> {
        let shared = self.inner.redis.as_ref()?;
        let down = *shared.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match down {
            Some(until) if Instant::now() < until => None,
            _ => Some(shared),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.inner.local.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    fn failed(&self, e: &redis::RedisError) {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(error = %e, "Telegram send limits: Redis unavailable; keeping them in this process");
        }
        *down = Some(Instant::now() + REDIS_BACKOFF);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The limits of this process: each chat's next arrival time and the next free overall slot.
#[derive(Default)]
struct Local {
    chats: HashMap<i64, Instant>,
    overall: Option<Instant>,
    /// The next free slot of each pace.
    paces: HashMap<String, Instant>,
    /// Chats are forgotten once their time has passed (checked every so many calls).
    calls: u32,
}

impl Local {
    fn take(&mut self, rules: &Rules, now: Instant, chat: i64, kind: Kind) -> Verdict {
        let at = self.chats.get(&chat).copied().unwrap_or(now);
        let ready = at.checked_sub(rules.tolerance(chat, kind)).unwrap_or(now);
        if ready > now {
            return Verdict::ChatBusy(ready - now);
        }
        let slot = self.overall.map_or(now, |next| next.max(now));
        self.overall = Some(slot + rules.overall);
        self.chats.insert(chat, at.max(slot) + rules.interval(chat));
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(1024) {
            self.chats.retain(|_, at| *at > now);
        }
        Verdict::Go(slot - now)
    }

    fn pace(&mut self, name: &str, now: Instant, interval: Duration) -> Duration {
        let slot = self.paces.get(name).map_or(now, |next| (*next).max(now));
        self.paces.insert(name.to_owned(), slot + interval);
        slot - now
    }

    fn hold(&mut self, chat: i64, until: Instant) {
        let at = self.chats.entry(chat).or_insert(until);
        *at = (*at).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rules() -> Rules {
        Rules { chat: 1000 * MS, group: 3000 * MS, overall: 100 * MS, edit_burst: 3 }
    }

    #[test]
    fn within_the_limits_a_message_goes_at_once_and_a_chat_gets_one_a_second() {
        let (mut l, t0) = (Local::default(), Instant::now());
        assert_eq!(l.take(&rules(), t0, 1, Kind::Send), Verdict::Go(Duration::ZERO));
        assert_eq!(l.take(&rules(), t0 + 500 * MS, 1, Kind::Send), Verdict::ChatBusy(500 * MS));
        assert_eq!(l.take(&rules(), t0 + 1000 * MS, 1, Kind::Send), Verdict::Go(Duration::ZERO));
        // another chat is not held up by this one's limit
        assert_eq!(l.take(&rules(), t0 + 1200 * MS, 2, Kind::Send), Verdict::Go(Duration::ZERO));
        // groups: twenty a minute
        assert_eq!(l.take(&rules(), t0 + 1300 * MS, -5, Kind::Send), Verdict::Go(Duration::ZERO));
        assert_eq!(l.take(&rules(), t0 + 1400 * MS, -5, Kind::Send), Verdict::ChatBusy(2900 * MS));
    }

    #[test]
    fn the_overall_limit_hands_out_slots_in_order() {
        let (mut l, t0) = (Local::default(), Instant::now());
        let waits: Vec<Verdict> = (1..=4).map(|chat| l.take(&rules(), t0, chat, Kind::Send)).collect();
        let expected: Vec<Verdict> = (0..4).map(|i| Verdict::Go(100 * MS * i)).collect();
        assert_eq!(waits, expected);
        // a chat waiting for its overall slot is busy until an interval after that slot
        assert_eq!(l.take(&rules(), t0, 4, Kind::Send), Verdict::ChatBusy(1300 * MS));
    }

    #[test]
    fn edits_may_come_in_a_short_burst_then_one_a_second() {
        let (mut l, t0) = (Local::default(), Instant::now());
        let r = Rules { overall: Duration::ZERO, ..rules() };
        for _ in 0..3 {
            assert_eq!(l.take(&r, t0, 1, Kind::Edit), Verdict::Go(Duration::ZERO));
        }
        assert_eq!(l.take(&r, t0, 1, Kind::Edit), Verdict::ChatBusy(1000 * MS));
        // a new message waits for the whole schedule
        assert_eq!(l.take(&r, t0, 1, Kind::Send), Verdict::ChatBusy(3000 * MS));
    }

    #[test]
    fn a_pace_hands_out_its_own_slots_in_order() {
        let (mut l, t0) = (Local::default(), Instant::now());
        let waits: Vec<Duration> = (0..3).map(|_| l.pace("bulk", t0, 50 * MS)).collect();
        assert_eq!(waits, vec![Duration::ZERO, 50 * MS, 100 * MS]);
        assert_eq!(l.pace("other", t0, 50 * MS), Duration::ZERO);
        assert_eq!(l.pace("bulk", t0 + 500 * MS, 50 * MS), Duration::ZERO, "a pace does not bank idle time");
    }

    #[test]
    fn a_429_holds_its_chat() {
        let (mut l, t0) = (Local::default(), Instant::now());
        l.hold(1, t0 + 5000 * MS);
        assert_eq!(l.take(&rules(), t0, 1, Kind::Send), Verdict::ChatBusy(5000 * MS));
        assert_eq!(l.take(&rules(), t0, 2, Kind::Send), Verdict::Go(Duration::ZERO));
    }
}
