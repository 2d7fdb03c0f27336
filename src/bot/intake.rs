//! Durable intake: an update is in Postgres before Telegram gets its 200. Handlers hand raw updates to a
//! bounded queue; a free writer takes everything waiting (up to 64: what arrived while the writers were busy
//! storing the previous batches) and stores it with multi-row `INSERT … ON CONFLICT DO NOTHING`s of at most
//! 8 KiB of JSON each (run at once), then answers every waiting request once its INSERT committed. A full queue
//! answers "busy" (503) at once so Telegram retries later, instead of memory growing without bound.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::db;

const BATCH: usize = 64;
/// The most JSON one INSERT carries; a bigger batch is stored by several INSERTs at once. sqlx 0.9.0 does not
/// set TCP_NODELAY (transact-rs/sqlx#4335): a statement bigger than a fresh socket's send buffer (16 KiB on
/// Linux) goes out in two writes, and the second waits ~40 ms for the server's delayed ACK. Measured
/// (`bench_intake_insert_size`): one INSERT of 64 `/start` updates (16 KiB of JSON) takes ~44 ms, of 56 ~1 ms.
const CHUNK_BYTES: usize = 8 * 1024;

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
                // whatever else is waiting: updates pile up while the writers' INSERTs run, so batches grow
                // with the load and nothing waits for a timer
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                batch
            };
            futures::future::join_all(chunks(batch).into_iter().map(|chunk| store(&pool, chunk))).await;
        }
    }
}

/// Splits a batch into INSERTs of at most `CHUNK_BYTES` of JSON each (a bigger update goes alone), in order.
fn chunks(batch: Vec<Item>) -> Vec<Vec<Item>> {
    let mut chunks = Vec::new();
    let (mut chunk, mut bytes) = (Vec::new(), 0);
    for item in batch {
        let size = json_len(&item.payload);
        if !chunk.is_empty() && bytes + size > CHUNK_BYTES {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(item);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// The length of a value's JSON text, without building it.
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Stores one chunk with one multi-row INSERT, then answers each of its requests.
async fn store(pool: &PgPool, chunk: Vec<Item>) {
    let n = chunk.len();
    let (mut ids, mut chats, mut payloads, mut waiting) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for item in chunk {
        ids.push(item.update_id);
        chats.push(item.chat_id);
        payloads.push(item.payload);
        waiting.push(item.done);
    }
    let result = match db::telegram_updates::insert_many(pool, &ids, &chats, &payloads).await {
        Ok(new) => {
            metrics::counter!("vpnshop_telegram_updates_total", "result" => "stored").increment(new);
            metrics::counter!("vpnshop_telegram_updates_total", "result" => "duplicate").increment(n as u64 - new);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, updates = n, "could not store Telegram updates");
            Err(IntakeError::Store)
        }
    };
    for done in waiting {
        let _ = done.send(result);
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

    fn item(update_id: i64, text_len: usize) -> Item {
        let payload = serde_json::json!({"update_id": update_id, "message": {"text": "x".repeat(text_len)}});
        Item { update_id, chat_id: 1, payload, done: oneshot::channel().0 }
    }

    #[test]
    fn batches_are_split_into_inserts_of_at_most_8_kib_of_json() {
        let value = serde_json::json!({"a": [1, "ü\"", null], "b": {"c": 1.5}});
        assert_eq!(json_len(&value), value.to_string().len());
        let one = json_len(&item(0, 1000).payload);
        let batch: Vec<Item> = (0..64).map(|i| item(i, 1000)).collect();
        let chunks = chunks(batch);
        assert!(
            chunks.iter().all(|c| c.len() * one <= CHUNK_BYTES),
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(chunks.len(), 64_usize.div_ceil(CHUNK_BYTES / one));
        let ids: Vec<i64> = chunks.iter().flatten().map(|i| i.update_id).collect();
        assert_eq!(ids, (0..64).collect::<Vec<_>>(), "every update once, in order");
        // an update bigger than the limit goes alone; small batches stay one INSERT
        let sizes: Vec<usize> = chunks_of(vec![item(1, 10), item(2, 20_000), item(3, 10)]);
        assert_eq!(sizes, vec![1, 1, 1]);
        assert_eq!(chunks_of((0..64).map(|i| item(i, 10)).collect()), vec![64]);
    }

    fn chunks_of(batch: Vec<Item>) -> Vec<usize> {
        chunks(batch).iter().map(Vec::len).collect()
    }
}
