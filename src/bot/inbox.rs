//! The inbox worker: claims the oldest unhandled update of each chat (never two of one chat at once, so a
//! chat's updates are handled in order), runs the handlers, and marks them handled. An update whose
//! handling fails is retried with backoff and given up (logged) after a few tries so one bad update cannot
//! block its chat. Updates left by a crash are picked up when their lease ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Telegram;
use super::handlers;
use crate::app::AppState;
use crate::services::inbox::{self as telegram_updates, StoredUpdate, WAKE_CHANNEL};

const LEASE_SECS: f64 = 60.0;
/// The longest one update may take; then its handler is stopped and the update retried. Well inside the lease,
/// so no other worker takes the update while it is still being handled.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: i32 = 5;

/// Handles updates until cancelled: up to `telegram.handlers` at once, claiming more as soon as one is done
/// (a slow update holds up only its own chat).
pub async fn run(app: AppState, tg: Telegram, cancel: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(app.clone(), wake.clone(), cancel.clone()));
    let worker: Arc<str> = format!("{}/inbox", app.instance).into();
    let limit = app.settings.telegram.handlers.max(1);
    let mut running = JoinSet::new();
    while !cancel.is_cancelled() {
        let free = limit.saturating_sub(running.len());
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match telegram_updates::claim(&app.pool, &worker, LEASE_SECS, free as i64).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Telegram inbox");
                    Vec::new()
                }
            }
        };
        if !claimed.is_empty() {
            for stored in claimed {
                running.spawn(handle_one(app.clone(), tg.clone(), worker.clone(), stored));
            }
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    // finish what is in hand; anything else waits in the inbox for the next start
    while running.join_next().await.is_some() {}
    listener.abort();
}

async fn handle_one(app: AppState, tg: Telegram, worker: Arc<str>, stored: StoredUpdate) {
    let span = tracing::info_span!("update", update.id = stored.update_id, chat.id = stored.chat_id);
    async {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(HANDLER_TIMEOUT, handlers::handle(&app, &tg.bot, &stored.payload)).await
        {
            Ok(done) => done.map_err(|e| format!("{e:#}")),
            Err(_) => Err(format!("not handled within {} s", HANDLER_TIMEOUT.as_secs())),
        };
        metrics::histogram!("vpnshop_telegram_update_duration_seconds").record(started.elapsed().as_secs_f64());
        let recorded = match result {
            Ok(()) => {
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "ok").increment(1);
                telegram_updates::finish(&app.pool, stored.update_id, &worker, None).await
            }
            Err(e) if stored.attempts >= MAX_ATTEMPTS => {
                tracing::error!(error = %e, "giving up on a Telegram update");
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "failed").increment(1);
                telegram_updates::finish(&app.pool, stored.update_id, &worker, Some(&e)).await
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt = stored.attempts, "Telegram update failed; will retry");
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "retry").increment(1);
                let delay = f64::from(2_u32.pow(stored.attempts.clamp(0, 6) as u32));
                telegram_updates::retry_later(&app.pool, stored.update_id, &worker, &e, delay).await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the update's lease had passed to another worker; it may be handled twice"),
            Err(e) => {
                tracing::warn!(error = %e, "could not record how a Telegram update went; it will be handled again")
            }
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
