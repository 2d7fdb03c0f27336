//! The `telegram_updates` table: the durable inbox. Updates are stored before Telegram gets its 200, then
//! handled in order per chat under a lease (so a crash leaves them for another worker, or the next start).

use sqlx::PgExecutor;

/// An update as stored: its id, the chat that orders it, and the raw JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUpdate {
    pub update_id: i64,
    pub chat_id: i64,
    /// The update's JSON text as stored (parsed by the handler, so an update we cannot read fails alone).
    pub payload: String,
    pub attempts: i32,
    /// Messages its handler sent on earlier attempts.
    pub sent: i32,
    /// The W3C `traceparent` of the webhook request that delivered it, if any.
    pub trace_parent: Option<String>,
}

/// Channel notified when updates arrive.
pub const WAKE_CHANNEL: &str = "vpnshop_updates";

/// Inserts many updates (their JSON text, and the trace that delivered each) in one statement; repeated update
/// ids are ignored. Returns how many were new.
pub async fn insert_many(
    db: impl PgExecutor<'_>,
    ids: &[i64],
    chats: &[i64],
    payloads: &[String],
    trace_parents: &[Option<String>],
) -> sqlx::Result<u64> {
    let row = sqlx::query!(
        r#"WITH ins AS (
               INSERT INTO telegram_updates (update_id, chat_id, payload, trace_parent)
               SELECT u.id, u.chat, u.payload::json, u.trace
                 FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[]) AS u(id, chat, payload, trace)
               ON CONFLICT (update_id) DO NOTHING
               RETURNING 1),
           -- one wake-up per statement, and only when something new arrived
           wake AS (SELECT pg_notify('vpnshop_updates', '') WHERE EXISTS (SELECT 1 FROM ins))
           SELECT (SELECT count(*) FROM ins) AS "n!", (SELECT count(*) FROM wake) AS "woke!""#,
        ids,
        chats,
        payloads,
        trace_parents as &[Option<String>]
    )
    .fetch_one(db)
    .await?;
    Ok(row.n as u64)
}

/// Claims the oldest unhandled update of up to `limit` chats that have no update in progress, for `lease_secs`,
/// looking at the oldest `window` unhandled updates only (all of them when `None`). A chat is in progress when
/// any of its updates in the window is leased (also a newer one: an older update can commit late).
pub async fn claim(
    db: impl PgExecutor<'_>,
    worker: &str,
    lease_secs: f64,
    limit: i64,
    window: Option<i64>,
) -> sqlx::Result<Vec<StoredUpdate>> {
    sqlx::query_as!(
        StoredUpdate,
        r#"WITH window_ AS (
               -- a chat's oldest pending update is always its first row in any prefix of this order
               SELECT update_id, chat_id, locked_until FROM telegram_updates
                WHERE handled_at IS NULL
                ORDER BY update_id LIMIT $4),
           busy AS (
               SELECT DISTINCT chat_id FROM window_ WHERE locked_until >= now()),
           heads AS (
               SELECT DISTINCT ON (chat_id) update_id, chat_id FROM window_ ORDER BY chat_id, update_id),
           due AS (
               SELECT update_id FROM heads WHERE chat_id NOT IN (SELECT chat_id FROM busy)
                ORDER BY update_id LIMIT $3)
           UPDATE telegram_updates u
              SET locked_by = $1, locked_until = now() + make_interval(secs => $2), attempts = u.attempts + 1
             FROM due
            WHERE u.update_id = due.update_id AND u.handled_at IS NULL
              AND (u.locked_until IS NULL OR u.locked_until < now())
        RETURNING u.update_id, u.chat_id, u.payload::text AS "payload!", u.attempts, u.sent, u.trace_parent"#,
        worker,
        lease_secs,
        limit,
        window
    )
    .fetch_all(db)
    .await
}

/// Whether more than `window` updates are unhandled (a claim over the oldest `window` did not see them all).
pub async fn pending_beyond(db: impl PgExecutor<'_>, window: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM telegram_updates WHERE handled_at IS NULL ORDER BY update_id OFFSET $1)
               AS "beyond!""#,
        window
    )
    .fetch_one(db)
    .await
}

/// Marks an update handled (with the error that made us give up on it, if any).
pub async fn finish(db: impl PgExecutor<'_>, update_id: i64, worker: &str, error: Option<&str>) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE telegram_updates SET handled_at = now(), last_error = $3, locked_by = NULL, locked_until = NULL
            WHERE update_id = $1 AND locked_by = $2"#,
        update_id,
        worker,
        error
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the handler has sent `sent` messages of this update (never fewer than recorded before); false
/// when the lease had passed to another worker.
pub async fn record_sent(db: impl PgExecutor<'_>, update_id: i64, worker: &str, sent: i32) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE telegram_updates SET sent = GREATEST(sent, $3) WHERE update_id = $1 AND locked_by = $2",
        update_id,
        worker,
        sent
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases an update for another try after `delay_secs`, keeping the error.
pub async fn retry_later(
    db: impl PgExecutor<'_>,
    update_id: i64,
    worker: &str,
    error: &str,
    delay_secs: f64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE telegram_updates SET last_error = $3, locked_by = NULL,
                  locked_until = now() + make_interval(secs => $4)
            WHERE update_id = $1 AND locked_by = $2"#,
        update_id,
        worker,
        error,
        delay_secs
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases the updates a worker holds (its instance is starting again: it is not handling them any more).
pub async fn release_worker(db: impl PgExecutor<'_>, worker: &str) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE telegram_updates SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1 AND handled_at IS NULL",
        worker
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Unhandled updates (for readiness and metrics).
pub async fn backlog(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM telegram_updates WHERE handled_at IS NULL"#).fetch_one(db).await
}

/// Deletes updates handled more than `days` ago.
pub async fn delete_handled_before(db: impl PgExecutor<'_>, days: i32) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM telegram_updates WHERE handled_at < now() - make_interval(days => $1)", days)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// What a customer sent, as the inbox still holds it (handled updates are pruned after a while).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatUpdate {
    pub update_id: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// `text`, `photo`, `document`, `button` (a pressed inline button) or `other`.
    pub kind: String,
    /// The text, the caption or the button's data.
    pub text: Option<String>,
}

/// The newest updates of one chat (at most `limit`), newest first.
pub async fn of_chat(db: impl PgExecutor<'_>, chat_id: i64, limit: i64) -> sqlx::Result<Vec<ChatUpdate>> {
    sqlx::query_as!(
        ChatUpdate,
        r#"SELECT update_id, received_at,
                  CASE WHEN payload->'message'->>'text' IS NOT NULL THEN 'text'
                       WHEN payload->'message'->'photo' IS NOT NULL THEN 'photo'
                       WHEN payload->'message'->'document' IS NOT NULL THEN 'document'
                       WHEN payload->'callback_query' IS NOT NULL THEN 'button'
                       ELSE 'other' END AS "kind!",
                  COALESCE(payload->'message'->>'text', payload->'message'->>'caption',
                           payload->'callback_query'->>'data') AS text
             FROM telegram_updates WHERE chat_id = $1 ORDER BY update_id DESC LIMIT $2"#,
        chat_id,
        limit
    )
    .fetch_all(db)
    .await
}
