//! The free trial: once per account, rate-limited across customers (in Redis), granted through the normal
//! subscription path.

use std::time::Duration;

use sqlx::PgPool;

use super::{BotShop, bot_shop_with, next_id};
use crate::helpers::redis_url;
use crate::support::{TgUser, callback_update, command_update};

async fn take_trial(shop: &BotShop, u: &TgUser) -> String {
    shop.deliver(&command_update(next_id(), u, "/trial")).await;
    let offer = shop.screen(u);
    let de = offer.data("tl:de");
    shop.deliver(&callback_update(next_id(), u, shop.last_message_id(u), &de)).await;
    shop.screen(u).text
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_second_trial_is_refused(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| s.redis.url = Some(redis_url().into())).await;
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(31, "Tia") };
    let first = take_trial(&shop, &u).await;
    assert!(first.contains("trial is being set up"), "{first}");
    let (trials, place_jobs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM subscriptions WHERE is_trial), (SELECT count(*) FROM jobs WHERE kind = 'subscription.place')",
    )
    .fetch_one(&shop.app.state.pool)
    .await
    .unwrap();
    assert_eq!((trials, place_jobs), (1, 1), "granted through the normal subscription path");

    shop.deliver(&command_update(next_id(), &u, "/trial")).await;
    assert!(shop.screen(&u).text.contains("already used"), "{}", shop.screen(&u).text);
    // pressing an old trial button again changes nothing either
    shop.deliver(&callback_update(next_id(), &u, shop.last_message_id(&u), "tl:de")).await;
    assert!(shop.screen(&u).text.contains("already used"));
    let trials: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE is_trial")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    assert_eq!(trials, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_trial_rate_limit_trips_and_recovers(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| {
        s.redis.url = Some(redis_url().into());
        s.trial.global_max = 2;
        s.trial.global_window_secs = 2;
    })
    .await;
    let users: Vec<TgUser> =
        (0..4).map(|i| TgUser { language_code: Some("en".into()), ..TgUser::new(40 + i, "Wave") }).collect();
    assert!(take_trial(&shop, &users[0]).await.contains("being set up"));
    assert!(take_trial(&shop, &users[1]).await.contains("being set up"));
    let third = take_trial(&shop, &users[2]).await;
    assert!(third.contains("Too many trial requests"), "{third}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(take_trial(&shop, &users[3]).await.contains("being set up"), "the window passed");
    let trials: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE is_trial")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    assert_eq!(trials, 3);
}
