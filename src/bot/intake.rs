//! Durable intake: an update is in Postgres before Telegram gets its 200. Handlers hand raw updates to a
//! bounded queue; a free writer takes everything waiting (up to 64: what arrived while the writers were busy
//! storing the previous batches), sorts it by `update_id` and drops repeats, and stores it with a multi-row
//! `INSERT … ON CONFLICT DO NOTHING` (several, run at once, when the batch has more than 256 KiB of JSON), then
//! answers every waiting request once its INSERT committed. Every writer inserts in ascending `update_id` order,
//! so two writers storing the same re-delivered updates lock them in one order and cannot deadlock. A full
//! queue answers "busy" (503) at once so Telegram retries later, instead of memory growing without bound.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::services::inbox;

const BATCH: usize = 64;
/// How many writers `app::run` starts: each runs one INSERT at a time.
pub const WRITERS: usize = 2;
/// The most JSON one INSERT carries; a bigger batch is stored by several INSERTs at once. Only big updates
/// (long texts, many entities) reach it: 64 `/start` updates are ~16 KiB. (With sqlx-core 0.9.0 as released, a
/// statement over ~16 KiB stalled ~40 ms on Nagle's algorithm and this had to be 8 KiB; vendor/README.md.)
const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Not an update: no numeric `update_id`, or one beyond what teloxide reads (`u32`).
    #[error("not a Telegram update")]
    Invalid,
    /// The queue is full: try again later.
    #[error("intake is busy")]
    Busy,
    /// The database did not take it: try again later.
    #[error("intake could not store the update")]
    Store,
}

type Done = oneshot::Sender<Result<(), IntakeError>>;

struct Item {
    update_id: i64,
    chat_id: i64,
    /// The update's JSON text, stored as received.
    payload: String,
    /// The trace of the request that delivered it (W3C `traceparent`), continued when it is handled.
    trace_parent: Option<String>,
    done: Done,
}

/// One row to insert: an update and every request waiting for it (a repeat delivered in the same batch waits
/// for the same row).
struct Row {
    update_id: i64,
    chat_id: i64,
    payload: String,
    trace_parent: Option<String>,
    waiting: Vec<Done>,
}

/// The sending side, shared by the webhook handler and the long-polling loop.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Item>,
    rx: Arc<Mutex<mpsc::Receiver<Item>>>,
}

/// Just what the intake needs of an update: its id and the chat that orders it. Everything else is skipped
/// while parsing (much cheaper than building a full JSON tree on the hot path).
#[derive(serde::Deserialize)]
struct UpdateHead {
    update_id: i64,
    #[serde(default)]
    message: Option<InChat>,
    #[serde(default)]
    edited_message: Option<InChat>,
    #[serde(default)]
    channel_post: Option<InChat>,
    #[serde(default)]
    edited_channel_post: Option<InChat>,
    #[serde(default)]
    my_chat_member: Option<InChat>,
    #[serde(default)]
    chat_member: Option<InChat>,
    #[serde(default)]
    chat_join_request: Option<InChat>,
    #[serde(default)]
    callback_query: Option<Callback>,
    #[serde(default)]
    inline_query: Option<FromUser>,
    #[serde(default)]
    pre_checkout_query: Option<FromUser>,
    #[serde(default)]
    shipping_query: Option<FromUser>,
}

#[derive(serde::Deserialize)]
struct Id {
    id: i64,
}

#[derive(serde::Deserialize)]
struct InChat {
    chat: Id,
}

#[derive(serde::Deserialize)]
struct FromUser {
    from: Id,
}

/// A button press belongs to the chat of the message it is on (a group's, too); else to the user.
#[derive(serde::Deserialize)]
struct Callback {
    from: Id,
    #[serde(default)]
    message: Option<InChat>,
}

impl UpdateHead {
    /// The chat the update belongs to (its order key); `None` for updates of no chat, which stand alone.
    fn chat(&self) -> Option<i64> {
        [&self.message, &self.edited_message, &self.channel_post, &self.edited_channel_post, &self.my_chat_member]
            .into_iter()
            .chain([&self.chat_member, &self.chat_join_request])
            .find_map(|m| m.as_ref().map(|m| m.chat.id))
            .or_else(|| self.callback_query.as_ref().map(|q| q.message.as_ref().map_or(q.from.id, |m| m.chat.id)))
            .or_else(|| {
                [&self.inline_query, &self.pre_checkout_query, &self.shipping_query]
                    .into_iter()
                    .find_map(|q| q.as_ref().map(|q| q.from.id))
            })
    }
}

impl Intake {
    pub fn new(capacity: usize) -> Intake {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Intake { tx, rx: Arc::new(Mutex::new(rx)) }
    }

    /// Stores one update (waiting for the commit). A repeated `update_id` is accepted and ignored.
    pub async fn accept(&self, update: serde_json::Value) -> Result<(), IntakeError> {
        self.accept_raw(update.to_string().as_bytes()).await
    }

    /// Stores a webhook body as received (checked to be a JSON update first; not re-serialized).
    pub async fn accept_raw(&self, body: &[u8]) -> Result<(), IntakeError> {
        // an update is a JSON object (serde would also read a struct from an array)
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(IntakeError::Invalid);
        }
        let head: UpdateHead = serde_json::from_slice(body).map_err(|_| IntakeError::Invalid)?;
        // teloxide reads `update_id` as a u32: a bigger one could be stored but never handled
        let update_id = Some(head.update_id).filter(|v| u32::try_from(*v).is_ok()).ok_or(IntakeError::Invalid)?;
        let chat_id = head.chat().unwrap_or(-update_id);
        let text = String::from_utf8(body.to_vec()).map_err(|_| IntakeError::Invalid)?;
        self.push(update_id, chat_id, text).await
    }

    /// How many updates wait for a writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn push(&self, update_id: i64, chat_id: i64, payload: String) -> Result<(), IntakeError> {
        let (done, wait) = oneshot::channel();
        let trace_parent = crate::telemetry::current_traceparent();
        self.tx.try_send(Item { update_id, chat_id, payload, trace_parent, done }).map_err(|_| IntakeError::Busy)?;
        metrics::gauge!("vpnshop_telegram_intake_queue").set(self.queued() as f64);
        wait.await.unwrap_or(Err(IntakeError::Store))
    }

    /// A writer: runs until cancelled, storing batches. When cancelled it closes the queue (later requests get
    /// "busy") and stores what is already in it, so no request waits for an answer that never comes.
    pub async fn write(self, pool: PgPool, cancel: CancellationToken) {
        // here, not in `new`: the metrics recorder is installed when the app runs, after its state is built
        metrics::gauge!("vpnshop_telegram_intake_capacity").set(self.tx.max_capacity() as f64);
        metrics::gauge!("vpnshop_telegram_intake_queue").set(self.queued() as f64);
        loop {
            let batch = {
                let mut rx = self.rx.lock().await;
                let first = tokio::select! {
                    _ = cancel.cancelled() => {
                        rx.close();
                        let mut left = Vec::new();
                        while let Ok(item) = rx.try_recv() {
                            left.push(item);
                        }
                        drop(rx);
                        store_batch(&pool, left).await;
                        return;
                    }
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
            // what still waits, so the gauge falls as the writers catch up (not only when updates arrive)
            metrics::gauge!("vpnshop_telegram_intake_queue").set(self.queued() as f64);
            store_batch(&pool, batch).await;
        }
    }
}

async fn store_batch(pool: &PgPool, batch: Vec<Item>) {
    futures::future::join_all(chunks(rows(batch)).into_iter().map(|chunk| store(pool, chunk))).await;
}

/// The batch in ascending `update_id` order with each update once (all writers lock rows in this one order).
fn rows(mut batch: Vec<Item>) -> Vec<Row> {
    batch.sort_by_key(|item| item.update_id);
    let mut rows: Vec<Row> = Vec::with_capacity(batch.len());
    for item in batch {
        match rows.last_mut() {
            Some(last) if last.update_id == item.update_id => last.waiting.push(item.done),
            _ => rows.push(Row {
                update_id: item.update_id,
                chat_id: item.chat_id,
                payload: item.payload,
                trace_parent: item.trace_parent,
                waiting: vec![item.done],
            }),
        }
    }
    rows
}

/// Splits rows into INSERTs of at most `CHUNK_BYTES` of JSON each (a bigger update goes alone), in order.
fn chunks(rows: Vec<Row>) -> Vec<Vec<Row>> {
    let mut chunks = Vec::new();
    let (mut chunk, mut bytes) = (Vec::new(), 0);
    for row in rows {
        let size = row.payload.len();
        if !chunk.is_empty() && bytes + size > CHUNK_BYTES {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(row);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Stores one chunk with one multi-row INSERT, then answers each of its requests.
async fn store(pool: &PgPool, chunk: Vec<Row>) {
    let n = chunk.len();
    let requests: u64 = chunk.iter().map(|r| r.waiting.len() as u64).sum();
    let (mut ids, mut chats, mut payloads, mut traces, mut waiting) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for row in chunk {
        ids.push(row.update_id);
        chats.push(row.chat_id);
        payloads.push(row.payload);
        traces.push(row.trace_parent);
        waiting.push(row.waiting);
    }
    let results = match inbox::store(pool, &ids, &chats, &payloads, &traces).await {
        Ok(new) => {
            counted(requests, new);
            vec![Ok(()); n]
        }
        // one update the database will not take (bad JSON escapes): store the others one by one so it alone
        // is refused
        Err(e) if is_bad_data(&e) && n > 1 => {
            let mut results = Vec::with_capacity(n);
            for i in 0..n {
                let one = inbox::store(pool, &ids[i..=i], &chats[i..=i], &payloads[i..=i], &traces[i..=i]).await;
                results.push(match one {
                    Ok(new) => {
                        counted(waiting[i].len() as u64, new);
                        Ok(())
                    }
                    Err(e) if is_bad_data(&e) => Err(IntakeError::Invalid),
                    Err(e) => {
                        tracing::error!(error = %e, "could not store a Telegram update");
                        Err(IntakeError::Store)
                    }
                });
            }
            results
        }
        Err(e) if is_bad_data(&e) => vec![Err(IntakeError::Invalid)],
        Err(e) => {
            tracing::error!(error = %e, updates = n, "could not store Telegram updates");
            vec![Err(IntakeError::Store); n]
        }
    };
    for (row, result) in waiting.into_iter().zip(results) {
        for done in row {
            let _ = done.send(result);
        }
    }
}

fn counted(total: u64, new: u64) {
    metrics::counter!("vpnshop_telegram_updates_total", "result" => "stored").increment(new);
    metrics::counter!("vpnshop_telegram_updates_total", "result" => "duplicate").increment(total - new);
}

/// A data exception (class 22) or a broken constraint (class 23): the input's fault, not the database's.
fn is_bad_data(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(update: serde_json::Value) -> Option<i64> {
        serde_json::from_str::<UpdateHead>(&update.to_string()).unwrap().chat()
    }

    #[test]
    fn updates_are_ordered_by_their_chat() {
        let msg = serde_json::json!({"update_id": 5, "message": {"message_id": 1, "chat": {"id": 42, "type": "private"},
            "from": {"id": 42}, "text": "hi"}});
        assert_eq!(chat(msg), Some(42));
        let private = serde_json::json!({"update_id": 6, "callback_query": {"id": "x", "from": {"id": 7},
            "message": {"message_id": 3, "chat": {"id": 7}}}});
        assert_eq!(chat(private), Some(7));
        let group = serde_json::json!({"update_id": 7, "callback_query": {"id": "x", "from": {"id": 7},
            "message": {"message_id": 3, "chat": {"id": -100123}}}});
        assert_eq!(chat(group), Some(-100123), "a press in a group is ordered with the group's messages");
        let old = serde_json::json!({"update_id": 8, "callback_query": {"id": "x", "from": {"id": 9}, "inline_message_id": "i"}});
        assert_eq!(chat(old), Some(9));
        let inline = serde_json::json!({"update_id": 9, "inline_query": {"id": "q", "from": {"id": 11}, "query": ""}});
        assert_eq!(chat(inline), Some(11));
        assert_eq!(chat(serde_json::json!({"update_id": 10, "poll": {"id": "p"}})), None);
        for junk in ["{}", r#"{"update_id": "7"}"#, r#"{"update_id": 1} trailing"#] {
            assert!(serde_json::from_str::<UpdateHead>(junk).is_err(), "{junk}");
        }
    }

    fn item(update_id: i64, text_len: usize) -> Item {
        let payload =
            serde_json::json!({"update_id": update_id, "message": {"text": "x".repeat(text_len)}}).to_string();
        Item { update_id, chat_id: 1, payload, trace_parent: None, done: oneshot::channel().0 }
    }

    #[test]
    fn batches_are_split_into_inserts_of_at_most_256_kib_of_json() {
        let one = item(0, 10_000).payload.len();
        let batch: Vec<Item> = (0..64).map(|i| item(i, 10_000)).collect();
        let chunks = chunks(rows(batch));
        assert!(
            chunks.iter().all(|c| c.len() * one <= CHUNK_BYTES),
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(chunks.len(), 64_usize.div_ceil(CHUNK_BYTES / one));
        let ids: Vec<i64> = chunks.iter().flatten().map(|r| r.update_id).collect();
        assert_eq!(ids, (0..64).collect::<Vec<_>>(), "every update once, in order");
        // an update bigger than the limit goes alone; small batches stay one INSERT
        let sizes: Vec<usize> = chunks_of(vec![item(1, 10), item(2, 300_000), item(3, 10)]);
        assert_eq!(sizes, vec![1, 1, 1]);
        assert_eq!(chunks_of((0..64).map(|i| item(i, 300)).collect()), vec![64]);
    }

    fn chunks_of(batch: Vec<Item>) -> Vec<usize> {
        chunks(rows(batch)).iter().map(Vec::len).collect()
    }

    #[test]
    fn a_batch_is_stored_in_update_id_order_with_each_update_once() {
        let batch = [5, 3, 9, 3, 1, 5, 5].into_iter().map(|id| item(id, 10)).collect();
        let rows = rows(batch);
        let ids: Vec<i64> = rows.iter().map(|r| r.update_id).collect();
        assert_eq!(ids, vec![1, 3, 5, 9]);
        let waiting: Vec<usize> = rows.iter().map(|r| r.waiting.len()).collect();
        assert_eq!(waiting, vec![1, 2, 3, 1], "every request gets the answer of its update's row");
    }
}
