//! The public listener's limits, driven over real sockets against the real app: slow and idle clients are cut,
//! oversized bodies are refused unread, floods are limited per client address while Telegram's deliveries go
//! on, the connection cap holds, and public routes keep to their share of the database. Also where the
//! webhook is registered.

mod bodies;
mod capacity;
mod public_url;
mod rate_limits;
mod serving;
mod timeouts;

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, header names lowercased.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| line.strip_prefix(&format!("{name}: ")).map(str::trim))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; `None` when the connection closes (or breaks)
/// first or `limit` passes.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<RawResponse> {
    tokio::time::timeout(limit, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head: String = String::from_utf8_lossy(&buf[..head_end])
            .lines()
            .map(|l| match l.split_once(':') {
                Some((name, value)) => format!("{}:{value}\n", name.to_ascii_lowercase()),
                None => format!("{l}\n"),
            })
            .collect();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let mut response = RawResponse { status, head, body: buf[head_end..].to_vec() };
        let length: usize = response.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while response.body.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => response.body.extend_from_slice(&chunk[..n]),
            }
        }
        Some(response)
    })
    .await
    .ok()
    .flatten()
}

/// Reads (and drops) whatever comes until the server closes the connection (end of stream or reset); returns
/// when that happened, or `None` if it is still open at `deadline`.
pub async fn closed_by(stream: &mut (impl AsyncRead + Unpin), deadline: Instant) -> Option<Instant> {
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Rows in the webhook's durable inbox.
pub async fn stored_updates(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM telegram_updates").fetch_one(pool).await.unwrap()
}

/// A well-formed feed token no subscription has (so the feed looks it up, and answers 404).
pub fn unknown_token() -> String {
    let raw = uuid::Uuid::new_v4().simple().to_string();
    format!("{raw}{}", &raw[..11])
}
