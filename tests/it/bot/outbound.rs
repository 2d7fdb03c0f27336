//! What the bot sends: 429s are waited out and the message still arrives; banned customers hear once.

use std::time::Duration;

use sqlx::PgPool;

use super::{bot_shop, bot_shop_with, next_id};
use crate::support::{Failure, TgUser, command_update};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_429_is_retried_after_retry_after_and_the_message_arrives(pool: PgPool) {
    let shop = bot_shop(pool).await;
    shop.tg.fail_next("sendMessage", 1, Failure::RetryAfter(1));
    let u = TgUser::new(51, "Rae");
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    let calls = shop.tg.wait_for("sendMessage", 2, Duration::from_secs(10)).await;
    let gap = calls[1].at.duration_since(calls[0].at);
    assert!(gap >= Duration::from_millis(950), "waited retry_after before retrying: {gap:?}");
    assert_eq!(shop.tg.messages_to(51).len(), 1, "the message arrived once");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn messages_to_one_chat_are_spaced_to_telegrams_limit(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = TgUser::new(52, "Lu");
    for _ in 0..3 {
        shop.deliver(&command_update(next_id(), &u, "/help")).await;
    }
    let calls = shop.tg.wait_for("sendMessage", 3, Duration::from_secs(10)).await;
    let spread = calls[2].at.duration_since(calls[0].at);
    assert!(spread >= Duration::from_millis(1900), "about one message per second per chat: {spread:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_banned_customer_gets_one_clear_message_and_nothing_else(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = TgUser::new(53, "Ban");
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    sqlx::query("UPDATE users SET banned_at = now() WHERE telegram_id = 53")
        .execute(&shop.app.state.pool)
        .await
        .unwrap();
    shop.tg.clear();
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    shop.deliver(&command_update(next_id(), &u, "/buy")).await;
    let sent = shop.tg.calls_of("sendMessage");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].params["text"].as_str().unwrap().contains("blocked"));
    assert!(sent[0].params.get("reply_markup").is_none_or(|m| m.is_null()), "no menu");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn customers_writing_one_after_another_are_answered_at_once(pool: PgPool) {
    let shop = bot_shop(pool).await;
    shop.tg.wait_for("setWebhook", 1, Duration::from_secs(10)).await;
    // each customer writes when the previous one got their answer (the bot is never idle long)
    let mut latencies = Vec::new();
    for i in 0..10 {
        let u = TgUser::new(600 + i, "Next");
        let posted = std::time::Instant::now();
        assert_eq!(shop.post(&command_update(next_id(), &u, "/start")).await, 200);
        let deadline = posted + Duration::from_secs(10);
        let answered = loop {
            if let Some(call) = shop.tg.calls_of("sendMessage").into_iter().find(|c| c.params["chat_id"] == u.id) {
                break call.at;
            }
            assert!(std::time::Instant::now() < deadline, "customer {i} got no answer");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        latencies.push(answered.duration_since(posted));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(median < Duration::from_millis(120), "no fixed tick between replies: median {median:?} of {latencies:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_crowd_of_customers_is_answered_within_telegrams_limits(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| {
        s.telegram.handlers = 64;
        // well under the 30 a second the fake enforces, as a test run on a busy machine wakes senders late
        s.telegram.limits.per_second = 20;
    })
    .await;
    shop.tg.enforce_limits();
    let users: Vec<TgUser> = (0..45).map(|i| TgUser::new(700 + i, "Crowd")).collect();
    let updates: Vec<_> = users.iter().map(|u| command_update(next_id(), u, "/start")).collect();
    let posts = updates.iter().map(|update| shop.post(update));
    assert!(futures::future::join_all(posts).await.iter().all(|s| *s == 200));
    let sent = shop.tg.wait_for("sendMessage", 45, Duration::from_secs(20)).await;
    assert_eq!(shop.tg.rate_limited(), 0, "no 429: the bot kept Telegram's limits itself");
    let span = sent[44].at.duration_since(sent[0].at);
    assert!(span >= Duration::from_millis(2100), "45 replies at 20 a second: {span:?}");
}
