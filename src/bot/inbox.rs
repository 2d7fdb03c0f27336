//! The inbox worker: claims the oldest unhandled update of each chat (never two of one chat at once, so a
//! chat's updates are handled in order), runs the handlers, and marks them handled. An update whose
//! handling fails is retried with backoff and given up (logged) after a few tries so one bad update cannot
//! block its chat. Updates left by a crash are picked up when their lease ends.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Telegram;
use super::handlers;
use crate::app::AppState;
use crate::services::inbox::{self as telegram_updates, StoredUpdate, WAKE_CHANNEL};

const LEASE_SECS: f64 = 60.0;
const MAX_ATTEMPTS: i32 = 5;

/// Handles updates until cancelled.
pub async fn run(app: AppState, tg: Telegram, cancel: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(app.clone(), wake.clone(), cancel.clone()));
    let worker = format!("{}/inbox", app.instance);
    let limit = i64::try_from(app.settings.telegram.handlers).unwrap_or(16);
    while !cancel.is_cancelled() {
        let claimed = match telegram_updates::claim(&app.pool, &worker, LEASE_SECS, limit).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Telegram inbox");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        join_all(claimed.into_iter().map(|u| handle_one(&app, &tg, &worker, u))).await;
    }
    listener.abort();
}

async fn handle_one(app: &AppState, tg: &Telegram, worker: &str, stored: StoredUpdate) {
    let span = tracing::info_span!("update", update.id = stored.update_id, chat.id = stored.chat_id);
    async {
        let started = std::time::Instant::now();
        let result = handlers::handle(app, &tg.bot, &stored.payload).await;
        metrics::histogram!("vpnshop_telegram_update_duration_seconds").record(started.elapsed().as_secs_f64());
        let recorded = match result {
            Ok(()) => {
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "ok").increment(1);
                telegram_updates::finish(&app.pool, stored.update_id, worker, None).await.map(|_| ())
            }
            Err(e) if stored.attempts >= MAX_ATTEMPTS => {
                tracing::error!(error = format!("{e:#}"), "giving up on a Telegram update");
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "failed").increment(1);
                telegram_updates::finish(&app.pool, stored.update_id, worker, Some(&format!("{e:#}"))).await.map(|_| ())
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempt = stored.attempts,
                    "Telegram update failed; will retry"
                );
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "retry").increment(1);
                let delay = f64::from(2_u32.pow(stored.attempts.clamp(0, 6) as u32));
                telegram_updates::retry_later(&app.pool, stored.update_id, worker, &format!("{e:#}"), delay).await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record how a Telegram update went; it will be handled again");
        }
    }
    .instrument(span)
    .await
}

async fn listen(app: AppState, wake: Arc<Notify>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&app.pool).await?;
            listener.listen(WAKE_CHANNEL).await?;
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        if let Err(e) = listening.await {
            tracing::debug!(error = %e, "inbox wake-up listener lost its connection; polling meanwhile");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
