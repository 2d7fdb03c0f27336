//! Long polling (local use, when there is no public URL): `getUpdates` fetched as raw JSON (so an update is
//! stored exactly as Telegram sent it, and one the typed parse cannot read does not fail its whole batch), each
//! update stored through the intake, then confirmed to Telegram with the next offset. A crash between storing and
//! confirming only repeats updates, which the inbox ignores.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::Telegram;
use super::intake::IntakeError;

/// How long Telegram holds a `getUpdates` open when there is nothing to send.
const LONG_POLL_SECS: u64 = 25;
const ALLOWED_UPDATES: [&str; 2] = ["message", "callback_query"];

#[derive(Deserialize)]
struct Answer<'a> {
    ok: bool,
    #[serde(borrow, default)]
    result: Vec<&'a RawValue>,
    #[serde(default)]
    description: Option<String>,
}

/// Just the id of an update: the offset that confirms it is that plus one.
#[derive(Deserialize)]
struct Id {
    update_id: i64,
}

/// Polls until cancelled. An update the intake refuses as unreadable is skipped (logged) and confirmed like the
/// others; when the intake is busy or cannot store, the round stops there and the rest is fetched again later.
pub async fn poll(tg: Telegram, cancel: CancellationToken) {
    // Telegram's update ids are u32, beyond what an i32 offset (teloxide's) can carry
    let mut offset: i64 = 0;
    while !cancel.is_cancelled() {
        let body = tokio::select! {
            _ = cancel.cancelled() => return,
            r = fetch(&tg, offset) => r,
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "Telegram getUpdates failed; retrying");
                if pause(&cancel, Duration::from_secs(2)).await {
                    return;
                }
                continue;
            }
        };
        let updates = match serde_json::from_str::<Answer>(&body) {
            Ok(Answer { ok: true, result, .. }) => result,
            Ok(Answer { description, .. }) => {
                tracing::warn!(error = description.unwrap_or_default(), "Telegram refused getUpdates; retrying");
                if pause(&cancel, Duration::from_secs(2)).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Telegram's getUpdates answer is not what the Bot API describes; retrying");
                if pause(&cancel, Duration::from_secs(2)).await {
                    return;
                }
                continue;
            }
        };
        for update in updates {
            let id = serde_json::from_str::<Id>(update.get()).ok().map(|u| u.update_id);
            match tg.intake.accept_raw(update.get().as_bytes()).await {
                Ok(()) => {}
                Err(IntakeError::Invalid) => {
                    tracing::warn!(update.id = id, "skipping a Telegram update we cannot read");
                }
                Err(e @ (IntakeError::Busy | IntakeError::Store)) => {
                    tracing::warn!(error = %e, "cannot store Telegram updates now; fetching them again shortly");
                    if pause(&cancel, Duration::from_secs(1)).await {
                        return;
                    }
                    break;
                }
            }
            if let Some(id) = id {
                offset = offset.max(id.saturating_add(1));
            }
        }
    }
}

/// Sleeps unless cancelled first; true when cancelled.
async fn pause(cancel: &CancellationToken, how_long: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(how_long) => false,
    }
}

/// One `getUpdates` call; the body as text. Errors never carry the URL (it holds the token).
async fn fetch(tg: &Telegram, offset: i64) -> anyhow::Result<String> {
    let api = tg.bot.api();
    let mut url = api.api_url();
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("telegram.api_url cannot take a path"))?
        .pop_if_empty()
        .push(&format!("bot{}", api.token()))
        .push("getUpdates");
    let params = serde_json::json!({"offset": offset, "timeout": LONG_POLL_SECS, "allowed_updates": ALLOWED_UPDATES});
    let send = async {
        api.client()
            .post(url)
            .json(&params)
            // the client's own timeout (17 s) is shorter than a long poll
            .timeout(Duration::from_secs(LONG_POLL_SECS + 10))
            .send()
            .await?
            .text()
            .await
    };
    send.await.map_err(|e| anyhow::Error::new(e.without_url()))
}
