//! The free trial: once per account, rate-limited across customers (in Redis), granted through the normal
//! subscription path.

use std::time::Duration;

use sqlx::PgPool;

use super::{BotShop, bot_shop_with, next_id};
use crate::helpers::redis_url;
use crate::support::run;
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
    assert!(first.contains("Your trial is"), "{first}");
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
    assert!(take_trial(&shop, &users[0]).await.contains("Your trial is"));
    assert!(take_trial(&shop, &users[1]).await.contains("Your trial is"));
    let third = take_trial(&shop, &users[2]).await;
    assert!(third.contains("Too many trial requests"), "{third}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(take_trial(&shop, &users[3]).await.contains("Your trial is"), "the window passed");
    let trials: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE is_trial")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    assert_eq!(trials, 3);
}

/// An SSH key for `provision.ssh_key_path` (provisioning on; the nodes here are never reached).
fn ssh_key(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("id_ed25519");
    run(std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&path));
    path
}

async fn admin_alerts(shop: &BotShop) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'notify.admins'")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_trial_is_promised_in_a_moment_only_when_a_node_can_set_it_up(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_key(&dir);
    let shop = bot_shop_with(pool, |s| s.provision.ssh_key_path = Some(key)).await;
    let u = |id| TgUser { language_code: Some("en".into()), ..TgUser::new(id, "Tri") };
    let first = take_trial(&shop, &u(35)).await;
    assert!(first.contains("arrives here in a moment"), "{first}");
    assert_eq!(admin_alerts(&shop).await, 0);
    // the location's only node is down: the trial waits, and the customer is told so
    sqlx::query("UPDATE servers SET health = 'down'").execute(&shop.app.state.pool).await.unwrap();
    let second = take_trial(&shop, &u(36)).await;
    assert!(second.contains("queued") && !second.contains("in a moment"), "{second}");
    let third = take_trial(&shop, &u(37)).await;
    assert!(third.contains("queued"), "{third}");
    assert_eq!(admin_alerts(&shop).await, 1, "the admins are alerted once");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn with_provisioning_off_a_trial_is_queued_and_the_admins_are_alerted(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| s.telegram.admin_ids = vec![4242]).await;
    let fa = TgUser { language_code: Some("fa".into()), ..TgUser::new(38, "Tri") };
    let text = take_trial(&shop, &fa).await;
    assert!(text.contains("در صف انتظار"), "told in the customer's language: {text}");
    assert_eq!(admin_alerts(&shop).await, 1);
    let trials: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE is_trial AND status = 'pending'")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    assert_eq!(trials, 1, "granted, waiting to be placed; its link comes with the usual ready message");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_trial_offer_says_how_many_devices_it_covers(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| s.trial.devices = 2).await;
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(39, "Duo") };
    shop.deliver(&command_update(next_id(), &u, "/trial")).await;
    let offer = shop.screen(&u).text;
    assert!(offer.contains("2 devices") && !offer.contains("one device"), "{offer}");
}
