//! Metering, data caps, reminders, expiry and renewal.

use sqlx::PgPool;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::services::{subscriptions, sweeps};

use super::{Shop, browses, links_of, notices, shop, status_of, subscribe, wait_node_synced, wait_status};
use crate::support::{TestV2rayClient, node_tools_present};

/// Bytes the subscription used (up, down), from Postgres.
async fn used(pool: &PgPool, sub: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COALESCE(sum(up_bytes), 0)::int8, COALESCE(sum(down_bytes), 0)::int8
           FROM traffic t JOIN clients c ON c.id = t.client_id WHERE c.subscription_id = $1",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A one-device plan in `de` with a tiny data cap.
async fn small_cap_plan(pool: &PgPool, cap: i64) {
    sqlx::query(
        "INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes) VALUES ('de-tiny', 'de', 30, 1, $1)",
    )
    .bind(cap)
    .execute(pool)
    .await
    .unwrap();
}

async fn download(shop: &Shop, client: &TestV2rayClient, bytes: usize) {
    let body = client.fetch(&shop.origin.url(&format!("/bytes/{bytes}"))).await.expect("download through the node");
    assert_eq!(body.len(), bytes);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn traffic_is_metered_across_core_restarts_and_the_cap_limits(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    small_cap_plan(shop.pool(), 400_000).await;
    let sub = subscribe(&shop, 601, "de-tiny").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let link = links_of(&shop, sub).await.remove(0);

    let client = TestV2rayClient::start(link.as_str()).await;
    download(&shop, &client, 100_000).await;
    super::meter(&shop).await;
    let (_, first) = used(shop.pool(), sub).await;
    assert!((100_000..110_000).contains(&first), "payload plus headers: {first}");
    super::meter(&shop).await;
    assert_eq!(used(shop.pool(), sub).await.1, first, "reading again adds nothing");

    // the core restarts: its counters start from zero again
    shop.node.kill_core().await;
    shop.node.start_core().await;
    let client = TestV2rayClient::start(link.as_str()).await;
    download(&shop, &client, 50_000).await;
    super::meter(&shop).await;
    let (_, second) = used(shop.pool(), sub).await;
    assert!(second - first >= 50_000 && second - first < 60_000, "nothing lost or doubled: {first} then {second}");

    download(&shop, &client, 180_000).await;
    let report = super::meter(&shop).await;
    assert_eq!(report.reminded, 1, "80% reminder");
    super::meter(&shop).await;
    assert_eq!(notices(shop.pool(), sub, "data_almost_used").await, 1, "sent once");
    assert_eq!(status_of(shop.pool(), sub).await, SubscriptionStatus::Active);

    download(&shop, &client, 100_000).await;
    let report = super::meter(&shop).await;
    assert_eq!(report.limited, 1);
    assert_eq!(status_of(shop.pool(), sub).await, SubscriptionStatus::Limited);
    assert_eq!(notices(shop.pool(), sub, "data_cap_reached").await, 1);
    wait_node_synced(shop.pool(), shop.server_id).await;
    assert!(!browses(&shop, &link).await, "over the cap, new connections fail");

    // a top-up brings it back
    let mut tx = shop.pool().begin().await.unwrap();
    subscriptions::top_up(&mut tx, sub, 1_000_000, &shop.app.state.settings.jobs).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status_of(shop.pool(), sub).await, SubscriptionStatus::Active);
    wait_node_synced(shop.pool(), shop.server_id).await;
    assert!(browses(&shop, &link).await, "after a top-up the same link works again");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn reminders_go_out_once_then_expiry_ends_it_and_renewal_brings_it_back(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let sub = subscribe(&shop, 602, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    let link = links_of(&shop, sub).await.remove(0);
    let (pool, jobs) = (shop.pool(), &shop.app.state.settings.jobs);
    let set_expiry = |interval: &'static str| async move {
        sqlx::query(
            "UPDATE subscriptions SET starts_at = now() - interval '30 days', expires_at = now() + $2::interval
              WHERE id = $1",
        )
        .bind(sub)
        .bind(interval)
        .execute(pool)
        .await
        .unwrap();
    };

    set_expiry("2 days").await;
    assert_eq!(sweeps::enqueue_expiry_reminders(pool, jobs).await.unwrap(), 1);
    assert_eq!(sweeps::enqueue_expiry_reminders(pool, jobs).await.unwrap(), 0, "once");
    set_expiry("12 hours").await;
    assert_eq!(sweeps::enqueue_expiry_reminders(pool, jobs).await.unwrap(), 1, "the 1-day reminder");
    assert_eq!(sweeps::enqueue_expiry_reminders(pool, jobs).await.unwrap(), 0);
    assert_eq!(notices(pool, sub, "expires_soon").await, 2);

    set_expiry("-1 second").await;
    assert_eq!(sweeps::enqueue_expiries(pool, jobs).await.unwrap(), 1);
    wait_status(pool, sub, SubscriptionStatus::Expired).await;
    wait_node_synced(pool, shop.server_id).await;
    assert!(!browses(&shop, &link).await, "expired: new connections fail");
    assert_eq!(notices(pool, sub, "subscription_expired").await, 1);
    assert_eq!(sweeps::enqueue_expiries(pool, jobs).await.unwrap(), 0, "nothing left to expire");

    let mut tx = pool.begin().await.unwrap();
    subscriptions::renew(&mut tx, sub, 30, Some(50 * 1024 * 1024 * 1024), jobs).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status_of(pool, sub).await, SubscriptionStatus::Active);
    wait_node_synced(pool, shop.server_id).await;
    assert!(browses(&shop, &link).await, "renewed: the same link works again");
    let days_left: f64 = sqlx::query_scalar(
        "SELECT (extract(epoch FROM expires_at - now()) / 86400)::float8 FROM subscriptions WHERE id = $1",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!((29.9..30.1).contains(&days_left), "30 days from now: {days_left}");
}
