//! The paid path: placement, activation, links that work, the feed, seat resets, revocation.

use base64::Engine;
use sqlx::PgPool;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::provision::links;
use vpnshop::services::subscriptions;

use super::{browses, links_of, notices, shop, subscribe, wait_node_synced, wait_status};
use crate::support::{TestV2rayClient, node_tools_present};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_paid_subscription_goes_live_and_revocation_cuts_it(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let sub = subscribe(&shop, 501, "de-30d-2dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    assert_eq!(notices(shop.pool(), sub, "subscription_ready").await, 1, "the customer is told once");

    let links = links_of(&shop, sub).await;
    assert_eq!(links.len(), 2, "one link per device");
    assert_ne!(links[0], links[1]);
    for link in &links {
        assert!(browses(&shop, link).await, "a real client with {link} gets through");
    }
    wait_node_synced(shop.pool(), shop.server_id).await;
    let file = std::fs::read_to_string(shop.node.config_path()).unwrap();
    let on_file = vpnshop::provision::render::clients_in(&file, "proxy").unwrap();
    assert_eq!(on_file.len(), 2, "the node's config file carries both clients");

    let jobs = &shop.app.state.settings.jobs;
    assert!(subscriptions::end(shop.pool(), sub, SubscriptionStatus::Revoked, "test", jobs).await.unwrap());
    assert!(!subscriptions::end(shop.pool(), sub, SubscriptionStatus::Revoked, "again", jobs).await.unwrap(), "once");
    wait_node_synced(shop.pool(), shop.server_id).await;
    for link in &links {
        assert!(!browses(&shop, link).await, "a new connection after revocation fails");
    }
    let file = std::fs::read_to_string(shop.node.config_path()).unwrap();
    assert!(vpnshop::provision::render::clients_in(&file, "proxy").unwrap().is_empty(), "and the file forgot them");
    assert_eq!(notices(shop.pool(), sub, "subscription_revoked").await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_feed_decodes_to_working_links_and_carries_the_numbers(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let sub = subscribe(&shop, 502, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let link = links_of(&shop, sub).await.remove(0);
    let client = TestV2rayClient::start(link.as_str()).await;
    client.fetch(&shop.origin.url("/bytes/20000")).await.unwrap();
    super::meter(&shop).await;

    let (token, cap, expires): (String, i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT token, data_cap_bytes, expires_at FROM subscriptions WHERE id = $1")
            .bind(sub)
            .fetch_one(shop.pool())
            .await
            .unwrap();
    let (up, down): (i64, i64) = sqlx::query_as(
        "SELECT sum(up_bytes)::int8, sum(down_bytes)::int8 FROM traffic t JOIN clients c ON c.id = t.client_id
          WHERE c.subscription_id = $1",
    )
    .bind(sub)
    .fetch_one(shop.pool())
    .await
    .unwrap();
    assert!(down >= 20_000 && up > 0, "metered: up {up}, down {down}");

    let res = shop.app.http.get(shop.app.url(&format!("/sub/{token}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(
        h["subscription-userinfo"].to_str().unwrap(),
        format!("upload={up}; download={down}; total={cap}; expire={}", expires.timestamp())
    );
    assert_eq!(h["profile-update-interval"], "12");
    let title = h["profile-title"].to_str().unwrap().strip_prefix("base64:").unwrap().to_owned();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(title).unwrap(), b"vpnshop");
    let body = res.text().await.unwrap();
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body.trim()).unwrap()).unwrap();
    let feed_links: Vec<&str> = decoded.lines().collect();
    assert_eq!(feed_links.len(), 1);
    let parsed = links::parse_link(feed_links[0]).unwrap();
    assert_eq!(parsed.port, shop.node.proxy_port);
    assert!(browses(&shop, feed_links[0]).await, "the feed's link works");

    let missing = shop.app.http.get(shop.app.url(&format!("/sub/{}", "A".repeat(43)))).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let junk = shop.app.http.get(shop.app.url("/sub/..%2F..%2Fetc")).send().await.unwrap();
    assert_eq!(junk.status(), 404);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn resetting_one_seat_leaves_the_others_alone(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let sub = subscribe(&shop, 503, "de-30d-2dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    let before = links_of(&shop, sub).await;
    let token = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT token FROM subscriptions WHERE id = $1")
                .bind(sub)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let old_feed = token(shop.pool()).await;
    let jobs = &shop.app.state.settings.jobs;
    let fresh = subscriptions::reset_seat(shop.pool(), sub, 1, jobs).await.unwrap();
    let new_feed = token(shop.pool()).await;
    assert_ne!(new_feed, old_feed, "a leaked link usually leaked with its feed URL: it is replaced too");
    let status = |t: String| shop.app.http.get(shop.app.url(&format!("/sub/{t}"))).send();
    assert_eq!(status(old_feed).await.unwrap().status(), 404);
    assert_eq!(status(new_feed).await.unwrap().status(), 200);
    assert_eq!(fresh.seat, 1);
    wait_node_synced(shop.pool(), shop.server_id).await;
    let after = links_of(&shop, sub).await;
    assert_ne!(after[0], before[0], "seat 1 has a new link");
    assert_eq!(after[1], before[1], "seat 2 keeps its link");
    assert!(!browses(&shop, &before[0]).await, "the old seat-1 link stopped");
    assert!(browses(&shop, &after[0]).await, "the new seat-1 link works");
    assert!(browses(&shop, &after[1]).await, "seat 2 still works");
    let err = subscriptions::reset_seat(shop.pool(), sub, 7, jobs).await.unwrap_err();
    assert!(err.to_string().contains("no device 7"), "{err}");
}
