//! The Bot API client as the bot uses it: teloxide's `Bot` for the calls, with our limits (`limits`) in front of
//! every call that puts something in a chat. A message within the limits goes out at once; one over them waits
//! only as long as needed. A 429 holds its chat for `retry_after` and, when that is short, the call is made again
//! after it; a longer one is returned to the caller (an update or a job is retried later).

use std::time::Duration;

use futures::StreamExt;
use teloxide::RequestError;
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::requests::{Output, Request};

use super::limits::{Kind, Limits};

/// The longest 429 wait served in place (a handler has 30 s in all).
const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);
/// How many 429s one call waits out before giving up.
const MAX_TRIES: u32 = 3;

/// Cheap to clone.
#[derive(Clone)]
pub struct TgBot {
    api: Bot,
    limits: Limits,
}

impl TgBot {
    pub fn new(api: Bot, limits: Limits) -> TgBot {
        TgBot { api, limits }
    }

    /// teloxide's client, for calls that put nothing in a chat (`getMe`, `setWebhook`, `answerCallbackQuery`,
    /// `getFile`, …). Messages go through [`send`](Self::send).
    pub fn api(&self) -> &Bot {
        &self.api
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes a call that sends (`Kind::Send`) or edits (`Kind::Edit`) a message in `chat`, within the limits.
    pub async fn send<R>(&self, chat: ChatId, kind: Kind, request: R) -> Result<Output<R>, RequestError>
    where
        R: Request<Err = RequestError>,
    {
        let mut tries = 0;
        loop {
            self.limits.wait(chat.0, kind).await;
            match request.send_ref().await {
                Err(RequestError::RetryAfter(secs)) => {
                    metrics::counter!("vpnshop_telegram_rate_limited_total").increment(1);
                    let after = secs.duration();
                    self.limits.hold(chat.0, after).await;
                    tries += 1;
                    if after > MAX_INLINE_WAIT || tries >= MAX_TRIES {
                        return Err(RequestError::RetryAfter(secs));
                    }
                    tracing::info!(chat.id = chat.0, retry_after_secs = secs.seconds(), "Telegram asked us to wait");
                }
                done => return done,
            }
        }
    }

    /// A file the bot received (a receipt, say), by its `file_id`: `getFile`, then the download, at most `max`
    /// bytes. Telegram refusing the id or the path (expired, deleted, not ours) is `Missing`, not an error.
    pub async fn fetch_file(&self, file_id: &str, max: u64) -> Result<FetchedFile, RequestError> {
        let file = match self.api.get_file(teloxide::types::FileId(file_id.to_owned())).await {
            Ok(f) => f,
            Err(RequestError::Api(_)) => return Ok(FetchedFile::Missing),
            Err(e) => return Err(e),
        };
        if u64::from(file.meta.size) > max {
            return Ok(FetchedFile::TooBig);
        }
        let mut stream = self.api.download_file_stream(&file.path);
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) if e.status().is_some_and(|s| s.is_client_error()) => return Ok(FetchedFile::Missing),
                Err(e) => return Err(RequestError::Network(std::sync::Arc::new(e))),
            };
            if (bytes.len() + chunk.len()) as u64 > max {
                return Ok(FetchedFile::TooBig);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(FetchedFile::Bytes(bytes))
    }
}

/// What [`TgBot::fetch_file`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchedFile {
    Bytes(Vec<u8>),
    /// Over the size asked for (nothing more was read).
    TooBig,
    /// Telegram no longer has it (or never gave it to this bot).
    Missing,
}
