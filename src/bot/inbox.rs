//! The inbox worker: claims the oldest unhandled update of each chat (never two of one chat at once, so a
//! chat's updates are handled in order), runs the handlers, and marks them handled. An update whose handling
//! fails — an error, a panic, or the time limit — is retried with backoff, continuing after the messages it already
//! sent, and given up (logged) after a few tries so one bad update cannot block its chat. Updates left by a crash
//! are picked up when their lease ends; one that has used up its attempts that way (it takes the process down,
//! say) is given up without being handled again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handlers::{self, HandlerResult};
use super::ui::Progress;
use super::{Telegram, TgBot};
use crate::app::AppState;
use crate::services::inbox::{self as telegram_updates, StoredUpdate, WAKE_CHANNEL};

/// Attempts an update gets (counted when claimed, so a crash counts too).
pub const MAX_ATTEMPTS: i32 = 5;

/// What handles one update: the bot's handlers (tests put their own in).
pub type Handler = Arc<
    dyn Fn(AppState, TgBot, StoredUpdate, Arc<Progress>) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>>
        + Send
        + Sync,
>;

/// The bot's handlers.
pub fn handlers() -> Handler {
    Arc::new(|app, bot, stored, progress| {
        Box::pin(async move { handlers::handle(&app, &bot, &stored.payload, &progress).await })
    })
}

/// Handles updates with the bot's handlers until cancelled.
pub async fn run(app: AppState, tg: Telegram, cancel: CancellationToken) {
    run_with(app, tg, handlers(), cancel).await
}

/// Handles updates until cancelled: up to `telegram.handlers` at once, claiming more as soon as one is done
/// (a slow update holds up only its own chat).
pub async fn run_with(app: AppState, tg: Telegram, handler: Handler, cancel: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(app.clone(), wake.clone(), cancel.clone()));
    let worker: Arc<str> = telegram_updates::worker_of(&app.instance).into();
    let limit = app.settings.telegram.handlers.max(1);
    // well beyond the time limit, so no other worker takes an update while it is still being handled
    let lease = (app.settings.telegram.handler_timeout_secs as f64 * 2.0).max(60.0);
    let mut running = JoinSet::new();
    while !cancel.is_cancelled() {
        let free = limit.saturating_sub(running.len());
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match telegram_updates::claim(&app.pool, &worker, lease, free as i64).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Telegram inbox");
                    Vec::new()
                }
            }
        };
        if !claimed.is_empty() {
            for stored in claimed {
                running.spawn(handle_one(app.clone(), tg.bot.clone(), handler.clone(), worker.clone(), stored));
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

async fn handle_one(app: AppState, bot: TgBot, handler: Handler, worker: Arc<str>, stored: StoredUpdate) {
    let span = tracing::info_span!("update", update.id = stored.update_id, chat.id = stored.chat_id);
    // the trace of the webhook request that delivered it (a long-polled update starts its own)
    crate::telemetry::continue_trace(&span, stored.trace_parent.as_deref());
    async {
        let (id, attempts) = (stored.update_id, stored.attempts);
        if attempts > MAX_ATTEMPTS {
            // every attempt ended without a word (the process died, say): do not try again
            tracing::error!(attempts, "giving up on a Telegram update whose attempts all ended without a result");
            metrics::counter!("vpnshop_telegram_handled_total", "result" => "failed").increment(1);
            let error = format!("given up after {MAX_ATTEMPTS} attempts that ended without a result");
            let recorded = telegram_updates::finish(&app.pool, id, &worker, Some(&error)).await;
            return report(recorded);
        }
        let started = std::time::Instant::now();
        let timeout = Duration::from_secs(app.settings.telegram.handler_timeout_secs);
        let progress = Arc::new(Progress::new(app.pool.clone(), id, worker.clone(), stored.sent));
        let run = AssertUnwindSafe(handler(app.clone(), bot, stored, progress)).catch_unwind();
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(done)) => done.map_err(|e| format!("{e:#}")),
            Ok(Err(panic)) => Err(format!("the handler panicked: {}", panic_message(panic.as_ref()))),
            Err(_) => Err(format!("not handled within {} s", timeout.as_secs())),
        };
        metrics::histogram!("vpnshop_telegram_update_duration_seconds").record(started.elapsed().as_secs_f64());
        let recorded = match result {
            Ok(()) => {
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "update handled");
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "ok").increment(1);
                telegram_updates::finish(&app.pool, id, &worker, None).await
            }
            Err(e) if attempts >= MAX_ATTEMPTS => {
                tracing::error!(error = %e, "giving up on a Telegram update");
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "failed").increment(1);
                telegram_updates::finish(&app.pool, id, &worker, Some(&e)).await
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt = attempts, "Telegram update failed; will retry");
                metrics::counter!("vpnshop_telegram_handled_total", "result" => "retry").increment(1);
                let delay = f64::from(2_u32.pow(attempts.clamp(0, 6) as u32));
                telegram_updates::retry_later(&app.pool, id, &worker, &e, delay).await
            }
        };
        report(recorded)
    }
    .instrument(span)
    .await
}

fn report(recorded: sqlx::Result<bool>) {
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!("the update's lease had passed to another worker; it may be handled twice"),
        Err(e) => tracing::warn!(error = %e, "could not record how a Telegram update went; it will be handled again"),
    }
}

/// The text a panic was raised with, when it was text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
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
