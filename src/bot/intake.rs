//! Durable intake: an update is in Postgres before Telegram gets its 200. Handlers hand raw updates to a
//! bounded queue; writers take whatever arrived in the last millisecond (up to 64) and store it with one
//! multi-row `INSERT … ON CONFLICT DO NOTHING`, then answer every waiting request. A full queue answers
//! "busy" (503) at once so Telegram retries later, instead of memory growing without bound.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::db;

const BATCH: usize = 64;
const GATHER: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Not an update: no numeric `update_id`.
    #[error("not a Telegram update")]
    Invalid,
    /// The queue is full: try again later.
    #[error("intake is busy")]
    Busy,
    /// The database did not take it: try again later.
    #[error("intake could not store the update")]
    Store,
}

struct Item {
    update_id: i64,
    chat_id: i64,
    payload: serde_json::Value,
    done: oneshot::Sender<Result<(), IntakeError>>,
}

/// The sending side, shared by the webhook handler and the long-polling loop.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Item>,
    rx: Arc<Mutex<mpsc::Receiver<Item>>>,
}

/// The chat an update belongs to (its order key); updates without one stand alone.
pub fn chat_of(update: &serde_json::Value, update_id: i64) -> i64 {
    let obj = match update.as_object() {
        Some(o) => o,
        None => return -update_id,
    };
    for (key, body) in obj {
        if key == "update_id" {
            continue;
        }
        let chat = body
            .pointer("/chat/id")
            .or_else(|| body.pointer("/message/chat/id"))
            .or_else(|| body.pointer("/from/id"))
            .and_then(|v| v.as_i64());
        if let Some(chat) = chat {
            return chat;
        }
    }
    -update_id
}

impl Intake {
    pub fn new(capacity: usize) -> Intake {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Intake { tx, rx: Arc::new(Mutex::new(rx)) }
    }

    /// Stores one raw update (waiting for the commit). A repeated `update_id` is accepted and ignored.
    pub async fn accept(&self, payload: serde_json::Value) -> Result<(), IntakeError> {
        let update_id =
            payload.get("update_id").and_then(|v| v.as_i64()).filter(|v| *v >= 0).ok_or(IntakeError::Invalid)?;
        let chat_id = chat_of(&payload, update_id);
        let (done, wait) = oneshot::channel();
        self.tx.try_send(Item { update_id, chat_id, payload, done }).map_err(|_| IntakeError::Busy)?;
        metrics::gauge!("vpnshop_telegram_intake_queue").set((self.tx.max_capacity() - self.tx.capacity()) as f64);
        wait.await.unwrap_or(Err(IntakeError::Store))
    }

    /// A writer: runs until cancelled, storing batches.
    pub async fn write(self, pool: PgPool, cancel: CancellationToken) {
        loop {
            let batch = {
                let mut rx = self.rx.lock().await;
                let first = tokio::select! {
                    _ = cancel.cancelled() => return,
                    item = rx.recv() => match item { Some(i) => i, None => return },
                };
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + GATHER;
                while batch.len() < BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(item)) => batch.push(item),
                        _ => break,
                    }
                }
                batch
            };
            let ids: Vec<i64> = batch.iter().map(|i| i.update_id).collect();
            let chats: Vec<i64> = batch.iter().map(|i| i.chat_id).collect();
            let payloads: Vec<serde_json::Value> = batch.iter().map(|i| i.payload.clone()).collect();
            let result = match db::telegram_updates::insert_many(&pool, &ids, &chats, &payloads).await {
                Ok(new) => {
                    metrics::counter!("vpnshop_telegram_updates_total", "result" => "stored").increment(new);
                    metrics::counter!("vpnshop_telegram_updates_total", "result" => "duplicate")
                        .increment(batch.len() as u64 - new);
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %e, updates = batch.len(), "could not store Telegram updates");
                    Err(IntakeError::Store)
                }
            };
            for item in batch {
                let _ = item.done.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_ordered_by_their_chat() {
        let msg =
            serde_json::json!({"update_id": 5, "message": {"message_id": 1, "chat": {"id": 42}, "from": {"id": 42}}});
        assert_eq!(chat_of(&msg, 5), 42);
        let cb = serde_json::json!({"update_id": 6, "callback_query": {"id": "x", "from": {"id": 7},
            "message": {"message_id": 3, "chat": {"id": 7}}}});
        assert_eq!(chat_of(&cb, 6), 7);
        let inline = serde_json::json!({"update_id": 8, "inline_query": {"id": "q", "from": {"id": 9}}});
        assert_eq!(chat_of(&inline, 8), 9);
        assert_eq!(chat_of(&serde_json::json!({"update_id": 10}), 10), -10);
    }
}
