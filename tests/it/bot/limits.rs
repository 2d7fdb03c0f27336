//! Sending within Telegram's limits: at once when under them, waiting only as long as needed when over, the
//! overall limit shared by every instance through Redis, and kept in the process when Redis is missing or fails.

use std::time::{Duration, Instant};

use vpnshop::bot::limits::{Kind, Limits, Rules};

use crate::helpers::redis_url;

fn rules(per_second: u32) -> Rules {
    Rules {
        chat: Duration::from_millis(1000),
        group: Duration::from_millis(3000),
        overall: Duration::from_secs_f64(1.0 / f64::from(per_second)),
        edit_burst: 3,
    }
}

async fn redis() -> redis::aio::ConnectionManager {
    let client = redis::Client::open(redis_url()).unwrap();
    redis::aio::ConnectionManager::new(client).await.expect("the test Redis")
}

fn prefix() -> String {
    format!("vpnshop-test-{}", uuid::Uuid::new_v4().simple())
}

/// Waits for `n` messages to distinct chats (from `first`), all at once; returns how long the last one waited.
async fn burst(limits: &Limits, first: i64, n: i64) -> Duration {
    let start = Instant::now();
    let waits: Vec<_> = (first..first + n)
        .map(|chat| {
            let limits = limits.clone();
            tokio::spawn(async move { limits.wait(chat, Kind::Send).await })
        })
        .collect();
    for w in waits {
        w.await.unwrap();
    }
    start.elapsed()
}

async fn messages_within_the_limits_go_at_once(limits: Limits) {
    let at_once = Duration::from_millis(20);
    let timed = |chat: i64, kind: Kind| {
        let limits = limits.clone();
        async move {
            let start = Instant::now();
            limits.wait(chat, kind).await;
            start.elapsed()
        }
    };
    let first = Instant::now();
    assert!(timed(1, Kind::Send).await < at_once);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(timed(2, Kind::Send).await < at_once, "another chat, within the overall limit");
    // a second new message to chat 1 waits until a second after its first, and no longer
    timed(1, Kind::Send).await;
    let waited = first.elapsed();
    assert!(waited >= Duration::from_millis(1000) && waited < Duration::from_millis(1100), "{waited:?}");
    // the screen edited a moment later: within the chat's burst of edits
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(timed(1, Kind::Edit).await < at_once, "an edit within its chat's burst");
}

#[tokio::test]
async fn messages_within_the_limits_go_at_once_and_a_chat_gets_one_a_second() {
    messages_within_the_limits_go_at_once(Limits::new(rules(30), None, &prefix())).await;
    messages_within_the_limits_go_at_once(Limits::new(rules(30), Some(redis().await), &prefix())).await;
}

#[tokio::test]
async fn the_overall_limit_is_shared_by_every_instance_through_redis() {
    let prefix = prefix();
    let (a, b) =
        (Limits::new(rules(20), Some(redis().await), &prefix), Limits::new(rules(20), Some(redis().await), &prefix));
    // 2 × 20 messages at once at 20 a second overall: about 2 s when the instances share one limit (each alone
    // would be done in 1 s)
    let (ta, tb) = tokio::join!(burst(&a, 1, 20), burst(&b, 101, 20));
    let last = ta.max(tb);
    assert!(last >= Duration::from_millis(1850), "the instances share the limit: the last waited {last:?}");
    assert!(last < Duration::from_millis(3000), "{last:?}");
    // and one chat's limit too: instance b may not send to a chat instance a just sent to
    a.wait(500, Kind::Send).await;
    let start = Instant::now();
    b.wait(500, Kind::Send).await;
    assert!(start.elapsed() >= Duration::from_millis(900), "{:?}", start.elapsed());
}

#[tokio::test]
async fn without_a_working_redis_the_limits_are_kept_in_the_process() {
    // nothing listens there: every Redis call fails
    let port = crate::support::free_port();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_number_of_retries(0);
    let broken = redis::aio::ConnectionManager::new_lazy_with_config(client, config).unwrap();
    let limits = Limits::new(rules(20), Some(broken), &prefix());
    let took = burst(&limits, 1, 30).await;
    // 30 at 20 a second: ~1.45 s, plus at most one failed Redis call before the process takes over
    assert!(took >= Duration::from_millis(1350) && took < Duration::from_millis(3000), "{took:?}");
    let start = Instant::now();
    limits.wait(1, Kind::Edit).await;
    assert!(start.elapsed() < Duration::from_millis(2000), "an edit of a chat within its burst");
}
