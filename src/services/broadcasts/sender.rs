//! Sending a broadcast, at most once per customer even when an instance dies mid-send or several run at once.
//!
//! Recipients are claimed a few at a time (`pending → sending`, with the claimant and a deadline) and the claim is
//! committed before anything is sent. Before each message the claim is renewed and marked as being sent
//! (`send_started_at`), and only a live claim is sent; the result is then recorded (`sent`, `failed`, `blocked`).
//! A recipient still `sending` after its claim ran out belonged to a sender that vanished: if its message had
//! started to go out it becomes `unknown` and is never sent again; if not, it goes back to `pending`. So a crash
//! leaves at most the messages that were in flight at that instant uncertain. A 429 was not
//! delivered: its recipient waits `retry_after` and is sent again; a customer who blocked the bot is `blocked`
//! and left out of later broadcasts; other refusals are retried a few times, then `failed`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::config::BroadcastSettings;
use crate::db::broadcasts::{self as db, BroadcastStatus, Claimed, RecipientStatus};

/// The job that sends a broadcast (payload `{"broadcast_id": …}`).
pub const SEND_KIND: &str = "broadcast.send";

/// Sends of one recipient that may fail (Telegram answered an error) before it counts as `failed`.
const MAX_ATTEMPTS: i32 = 3;
/// 429s one recipient waits out in a row before it goes back to the queue (still unsent).
const MAX_WAITS: u32 = 5;

/// How one message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Too many requests: not delivered; send again after this long.
    RetryAfter(Duration),
    /// The customer blocked the bot or is gone.
    Blocked(String),
    /// Refused for good (the chat does not exist, …).
    Refused(String),
    /// Not delivered (Telegram answered an error, or could not be reached at all): may be tried again.
    NotDelivered(String),
    /// The request may have reached Telegram (the connection broke after it was sent): never sent again.
    Uncertain(String),
}

/// What sends a broadcast's messages (the bot; fakes in tests).
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    /// Waits until one more broadcast message to `chat_id` is within the broadcasts' share and Telegram's limits.
    async fn ready(&self, chat_id: i64);
    /// Sends `html` (Telegram HTML, checked when the broadcast was made).
    async fn send(&self, chat_id: i64, html: &str) -> Delivery;
    /// Telegram asked us to leave `chat_id` alone for `wait`.
    async fn hold(&self, chat_id: i64, wait: Duration);
}

/// What the job does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing left for this job (done, paused, cancelled or gone).
    Stop,
    /// More to send: run again after this long.
    Again(Duration),
}

/// One sender's run over one broadcast.
pub struct Run<'a> {
    pub pool: &'a PgPool,
    pub sender: &'a dyn Sender,
    pub settings: &'a BroadcastSettings,
    /// Unique to this run (instance and run), recorded on its claims.
    pub claimant: String,
}

impl Run<'_> {
    /// Sends broadcast `id` for about `slice` (then hands back, so a long broadcast is a chain of short job runs
    /// that any instance may take over); pause and cancel are looked at before each batch.
    pub async fn run(&self, id: i64, slice: Duration) -> sqlx::Result<Next> {
        let started = Instant::now();
        let Some(row) = db::find(self.pool, id).await? else { return Ok(Next::Stop) };
        let texts: HashMap<String, String> = serde_json::from_value(row.texts).unwrap_or_default();
        let fallback = texts.get(&row.fallback).cloned().unwrap_or_default();
        loop {
            let expired = db::expire_claims(self.pool, id).await?;
            if expired > 0 {
                tracing::warn!(broadcast.id = id, recipients = expired, "claims ran out mid-send: marked unknown");
                metrics::counter!("vpnshop_broadcast_messages_total", "outcome" => "unknown").increment(expired);
            }
            if db::status(self.pool, id).await? != Some(BroadcastStatus::Running) {
                return Ok(Next::Stop);
            }
            if started.elapsed() >= slice {
                return Ok(Next::Again(Duration::ZERO));
            }
            let batch = i64::from(self.settings.batch.max(1));
            let claimed = db::claim(self.pool, id, &self.claimant, batch, self.claim_secs()).await?;
            if claimed.is_empty() {
                if db::finish_if_done(self.pool, id).await? {
                    tracing::info!(broadcast.id = id, "broadcast done");
                    return Ok(Next::Stop);
                }
                // someone else's claims (or a dead sender's, until they run out) are still open
                let end = db::next_claim_end(self.pool, id).await?.unwrap_or(0.0);
                let wait = Duration::from_secs_f64(end.clamp(0.05, 5.0));
                if started.elapsed() + wait >= slice {
                    return Ok(Next::Again(wait));
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let sends = claimed.iter().map(|r| {
                let text = texts.get(&r.language).unwrap_or(&fallback);
                self.deliver(id, r, text)
            });
            for result in futures::future::join_all(sends).await {
                result?;
            }
        }
    }

    fn claim_secs(&self) -> f64 {
        self.settings.claim_secs as f64
    }

    /// Sends one claimed recipient and records how it went.
    async fn deliver(&self, id: i64, r: &Claimed, text: &str) -> sqlx::Result<()> {
        let mut waits = 0;
        loop {
            self.sender.ready(r.chat_id).await;
            // only a live claim of ours is sent: one that ran out is someone else's `unknown` now
            if !db::renew(self.pool, id, r.user_id, &self.claimant, self.claim_secs(), true).await? {
                tracing::warn!(broadcast.id = id, user.id = r.user_id, "claim ran out before sending; not sent");
                return Ok(());
            }
            let (status, error) = match self.sender.send(r.chat_id, text).await {
                Delivery::Sent => (RecipientStatus::Sent, None),
                Delivery::RetryAfter(wait) => {
                    metrics::counter!("vpnshop_telegram_rate_limited_total").increment(1);
                    self.sender.hold(r.chat_id, wait).await;
                    waits += 1;
                    if waits > MAX_WAITS {
                        db::release(self.pool, id, r.user_id, &self.claimant).await?;
                        return Ok(());
                    }
                    let hold = self.claim_secs() + wait.as_secs_f64();
                    if !db::renew(self.pool, id, r.user_id, &self.claimant, hold, false).await? {
                        return Ok(());
                    }
                    tracing::info!(
                        broadcast.id = id,
                        chat.id = r.chat_id,
                        wait_ms = wait.as_millis() as u64,
                        "Telegram asked us to wait; sending again after it"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Delivery::Blocked(e) => (RecipientStatus::Blocked, Some(e)),
                Delivery::Refused(e) => (RecipientStatus::Failed, Some(e)),
                Delivery::NotDelivered(e) if r.attempts + 1 < MAX_ATTEMPTS => (RecipientStatus::Pending, Some(e)),
                Delivery::NotDelivered(e) => (RecipientStatus::Failed, Some(e)),
                Delivery::Uncertain(e) => (RecipientStatus::Unknown, Some(e)),
            };
            metrics::counter!("vpnshop_broadcast_messages_total", "outcome" => status.as_str()).increment(1);
            let mut tx = self.pool.begin().await?;
            db::settle(&mut *tx, id, r.user_id, &self.claimant, status, error.as_deref()).await?;
            if status == RecipientStatus::Blocked {
                db::mark_user_blocked(&mut *tx, r.user_id).await?;
            }
            return tx.commit().await;
        }
    }
}
