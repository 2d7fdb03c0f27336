//! Metering that loses nothing across restarts (ours or the core's own), however much a client moves after
//! one, and caps that hold: a node near a cap is metered sooner on its own, a client that reaches its cap
//! while moving data is cut off at once, and every cap reached is told.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::services::subscriptions;

use super::{Shop, links_of, meter, notices, shop, slow_download, status_of, subscribe, wait_node_synced, wait_status};
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

async fn download(shop: &Shop, client: &TestV2rayClient, bytes: usize) {
    let body = client.fetch(&shop.origin.url(&format!("/bytes/{bytes}"))).await.expect("download through the node");
    assert_eq!(body.len(), bytes);
}

/// A one-device plan in `de` with this data cap; returns its code.
async fn plan_with_cap(pool: &PgPool, code: &str, cap: i64) -> String {
    sqlx::query(
        "INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes) VALUES ($1, 'de', 30, 1, $2)",
    )
    .bind(code)
    .bind(cap)
    .execute(pool)
    .await
    .unwrap();
    code.to_owned()
}

/// Restarts the node's core as a crash or an operator would (not through the shop).
async fn outside_restart(shop: &Shop) {
    shop.node.kill_core().await;
    shop.node.start_core().await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn usage_after_a_core_restart_counts_in_full_even_when_more_than_before(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let sub = subscribe(&shop, 611, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let link = links_of(&shop, sub).await.remove(0);
    // a core that has run a couple of seconds (its uptime has whole seconds)
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let client = TestV2rayClient::start(link.as_str()).await;
    download(&shop, &client, 100_000).await;
    meter(&shop).await;
    let (up1, down1) = used(shop.pool(), sub).await;
    assert!((100_000..110_000).contains(&down1), "payload plus headers: {down1}");

    // the core restarts on its own; the client then moves three times what it had before
    outside_restart(&shop).await;
    let client = TestV2rayClient::start(link.as_str()).await;
    download(&shop, &client, 300_000).await;
    meter(&shop).await;
    let (up2, down2) = used(shop.pool(), sub).await;
    assert!(
        (300_000..310_000).contains(&(down2 - down1)),
        "all 300 kB after the restart counted (not 300 kB minus the 100 kB before it): {down1} then {down2}"
    );
    assert!(up2 - up1 >= up1 / 2, "the upload after the restart counts too: {up1} then {up2}");

    // short sessions, each after a restart of its own, each counted
    let mut up = up2;
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        outside_restart(&shop).await;
        let client = TestV2rayClient::start(link.as_str()).await;
        download(&shop, &client, 1_000).await;
        meter(&shop).await;
        let (now, _) = used(shop.pool(), sub).await;
        assert!(now - up >= up1 / 2, "round {round}: this session's upload counted: {up} then {now}");
        up = now;
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_neighbours_of_a_hard_cut_lose_nothing_before_or_after_it(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let neighbour = subscribe(&shop, 621, "de-30d-1dev-50gb").await;
    let leaver = subscribe(&shop, 622, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), neighbour, SubscriptionStatus::Active).await;
    wait_status(shop.pool(), leaver, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let leaver_client = TestV2rayClient::start(links_of(&shop, leaver).await[0].as_str()).await;
    let open = slow_download(&shop, &leaver_client, 400, 25);
    let neighbour_link = links_of(&shop, neighbour).await.remove(0);
    let client = TestV2rayClient::start(neighbour_link.as_str()).await;
    download(&shop, &client, 100_000).await; // not metered yet when the core is restarted

    let jobs = &shop.app.state.settings.jobs;
    assert!(subscriptions::end(shop.pool(), leaver, SubscriptionStatus::Revoked, "test", jobs).await.unwrap());
    wait_node_synced(shop.pool(), shop.server_id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // past the removal grace: its traffic is a live session
    let report = meter(&shop).await;
    assert!(report.restarted, "the revoked client's open download forced a restart: {report:?}");
    assert!(open.await.unwrap().is_err(), "and it was cut");
    shop.node.wait_core().await;

    let client = TestV2rayClient::start(neighbour_link.as_str()).await;
    download(&shop, &client, 300_000).await; // more than before the restart
    meter(&shop).await;
    let (_, down) = used(shop.pool(), neighbour).await;
    assert!((400_000..420_000).contains(&down), "100 kB before and 300 kB after the restart: {down}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_fast_client_near_its_cap_is_metered_sooner_and_cut_off_at_the_cap(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let cap: i64 = 3 * 1024 * 1024;
    let plan = plan_with_cap(shop.pool(), "de-3mb", cap).await;
    let sub = subscribe(&shop, 631, &plan).await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let client = TestV2rayClient::start(links_of(&shop, sub).await[0].as_str()).await;
    meter(&shop).await; // the pass before: from here the node knows how fast its clients move

    // ~1.6 MB/s for ~16 MB: far past the cap unless it is enforced; no scheduler runs in tests, so only the
    // passes the metering schedules for itself can stop it
    let started = Instant::now();
    let stream = slow_download(&shop, &client, 1000, 10);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let report = meter(&shop).await;
    assert_eq!(report.limited, 0, "still under the cap after 0.7 s: {report:?}");
    wait_status(shop.pool(), sub, SubscriptionStatus::Limited).await;
    let got = stream.await.unwrap();
    assert!(got.is_err(), "the open download was cut at the cap: {got:?}");
    let (up, down) = used(shop.pool(), sub).await;
    let overrun = up + down - cap;
    assert!(
        overrun < cap / 2,
        "cut within half the cap's size past it: {overrun} bytes over, after {:?}",
        started.elapsed()
    );
    assert_eq!(notices(shop.pool(), sub, "data_cap_reached").await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_capped_client_is_cut_the_moment_the_core_may_restart_again(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let cap: i64 = 2 * 1024 * 1024;
    let plan = plan_with_cap(shop.pool(), "de-2mb", cap).await;
    let sub = subscribe(&shop, 635, &plan).await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let client = TestV2rayClient::start(links_of(&shop, sub).await[0].as_str()).await;
    meter(&shop).await;
    // the core was (as far as the shop knows) restarted a moment ago: the next restart may come in 4 s
    sqlx::query("UPDATE servers SET last_restart_at = now() + interval '4 seconds' WHERE id = $1")
        .bind(shop.server_id)
        .execute(shop.pool())
        .await
        .unwrap();

    // ~1.6 MB/s for ~48 MB (30 s): only a restart ends this open download
    let started = Instant::now();
    let stream = slow_download(&shop, &client, 3000, 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    meter(&shop).await; // from here the metering schedules its own passes (no scheduler runs in tests)
    wait_status(shop.pool(), sub, SubscriptionStatus::Limited).await;
    let got = stream.await.unwrap();
    assert!(got.is_err(), "the open download was cut: {got:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "cut soon after the restart was allowed, not at the end");
    let (restarted_after_limit,): (bool,) = sqlx::query_as(
        "SELECT s.last_restart_at > sub.ended_at FROM servers s, subscriptions sub WHERE s.id = $1 AND sub.id = $2",
    )
    .bind(shop.server_id)
    .bind(sub)
    .fetch_one(shop.pool())
    .await
    .unwrap();
    assert!(restarted_after_limit, "the core restarted after the cap, once it was allowed to");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn reaching_the_cap_again_after_a_top_up_is_told_again(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let plan = plan_with_cap(shop.pool(), "de-400kb", 400_000).await;
    let sub = subscribe(&shop, 641, &plan).await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let link = links_of(&shop, sub).await.remove(0);
    let client = TestV2rayClient::start(link.as_str()).await;
    download(&shop, &client, 450_000).await;
    assert_eq!(meter(&shop).await.limited, 1);
    assert_eq!(notices(shop.pool(), sub, "data_cap_reached").await, 1);

    let mut tx = shop.pool().begin().await.unwrap();
    subscriptions::top_up(&mut tx, sub, 1_000_000, &shop.app.state.settings.jobs).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status_of(shop.pool(), sub).await, SubscriptionStatus::Active);
    wait_node_synced(shop.pool(), shop.server_id).await;
    shop.node.wait_core().await;
    let client = TestV2rayClient::start(link.as_str()).await;
    download(&shop, &client, 1_100_000).await;
    assert_eq!(meter(&shop).await.limited, 1);
    assert_eq!(notices(shop.pool(), sub, "data_cap_reached").await, 2, "the second cap is told as well");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn removal_grace_and_restart_spacing_are_judged_on_the_database_clock(pool: PgPool) {
    // a placed subscription with one client, removed from its node 5 s ago by the database's clock
    let app = crate::helpers::spawn_app(pool.clone()).await;
    let server = vpnshop::services::servers::add(
        &pool,
        &crate::helpers::server_input("de-1", "de"),
        vpnshop::services::servers::Actor::CLI,
    )
    .await
    .unwrap()
    .id;
    let user: i64 =
        sqlx::query_scalar("INSERT INTO users (telegram_id) VALUES (650) RETURNING id").fetch_one(&pool).await.unwrap();
    let plan: i64 =
        sqlx::query_scalar("SELECT id FROM plans WHERE code = 'de-30d-1dev-50gb'").fetch_one(&pool).await.unwrap();
    let sub: i64 = sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, plan_id, location_code, server_id, is_trial, seats, duration_days, token)
         VALUES ($1, $2, 'de', $3, true, 1, 30, repeat('t', 43)) RETURNING id",
    )
    .bind(user)
    .bind(plan)
    .bind(server)
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    vpnshop::db::clients::insert(&mut tx, sub, 1, server, uuid::Uuid::new_v4(), "s1-1-aaaa").await.unwrap();
    tx.commit().await.unwrap();
    sqlx::query("UPDATE clients SET desired = 'absent', node_state = 'absent', removed_from_node_at = now() - interval '5 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    let removed = |grace: f64| {
        let pool = pool.clone();
        async move { vpnshop::db::clients::metered_on(&pool, server, grace).await.unwrap()[0].removed_before_grace }
    };
    assert!(!removed(10.0).await, "still within a 10 s grace");
    assert!(removed(2.0).await, "past a 2 s grace");

    sqlx::query("UPDATE servers SET last_restart_at = now() - interval '30 seconds' WHERE id = $1")
        .bind(server)
        .execute(&pool)
        .await
        .unwrap();
    let wait = vpnshop::db::servers::restart_wait(&pool, server, 60.0).await.unwrap();
    assert!((29.0..=31.0).contains(&wait), "30 s more to wait: {wait}");
    assert_eq!(vpnshop::db::servers::restart_wait(&pool, server, 20.0).await.unwrap(), 0.0);
    app.stop().await.unwrap();
}
