//! Fixed-window rate limits shared by every instance through Redis (an atomic INCR + PEXPIRE script), or
//! kept in this process when no Redis is configured (one instance only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Increments the window's counter, starting its expiry on the first hit; returns (count, ms left).
const SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

#[derive(Clone)]
pub struct RateLimiter {
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
    script: Arc<redis::Script>,
    local: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

/// A refused hit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl RateLimiter {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> RateLimiter {
        RateLimiter {
            redis,
            prefix: prefix.to_owned(),
            script: Arc::new(redis::Script::new(SCRIPT)),
            local: Arc::default(),
        }
    }

    /// Counts one hit on `key` and allows it when at most `max` hits happened in the current `window`.
    /// If Redis cannot be reached the limit is kept in this process rather than failing the customer.
    pub async fn hit(&self, key: &str, max: u32, window: Duration) -> Result<(), Limited> {
        let window_ms = window.as_millis().max(1) as u64;
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let mut call = self.script.key(format!("{}:rl:{key}", self.prefix));
            call.arg(window_ms);
            match call.invoke_async::<(u64, i64)>(&mut conn).await {
                Ok((n, _)) if n <= u64::from(max) => return Ok(()),
                Ok((_, ttl)) => {
                    return Err(Limited { retry_after: Duration::from_millis(ttl.max(1) as u64) });
                }
                Err(e) => tracing::warn!(error = %e, "rate limit store unavailable; limiting in this process"),
            }
        }
        self.hit_local(key, max, window)
    }

    fn hit_local(&self, key: &str, max: u32, window: Duration) -> Result<(), Limited> {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 <= max {
            Ok(())
        } else {
            Err(Limited {
                retry_after: window.saturating_sub(now.duration_since(entry.1)).max(Duration::from_millis(1)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_window_trips_and_recovers() {
        let limiter = RateLimiter::new(None, "test");
        let window = Duration::from_millis(200);
        assert!(limiter.hit("k", 2, window).await.is_ok());
        assert!(limiter.hit("k", 2, window).await.is_ok());
        let refused = limiter.hit("k", 2, window).await.unwrap_err();
        assert!(refused.retry_after <= window);
        assert!(limiter.hit("other", 2, window).await.is_ok(), "keys are separate");
        tokio::time::sleep(window).await;
        assert!(limiter.hit("k", 2, window).await.is_ok(), "a new window");
    }
}
