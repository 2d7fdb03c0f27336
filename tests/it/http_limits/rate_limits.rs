//! Per-client-IP rate limits on the public routes: a flood is answered 429 (a problem with `Retry-After`) while
//! Telegram's deliveries, health probes and other clients go on; forwarding headers count only from trusted
//! proxies.

use std::net::IpAddr;

use sqlx::PgPool;
use vpnshop::config::Settings;

use super::{stored_updates, unknown_token};
use crate::bot::{bot_shop_with, next_id};
use crate::helpers::{TestApp, spawn_app_with};
use crate::support::{TgUser, command_update};

const BURST: u32 = 10;

/// A burst of 10, then one request per 2 s.
fn tight(s: &mut Settings) {
    s.http.rate_limit_per_second = 0.5;
    s.http.rate_limit_burst = BURST;
}

/// A client whose connections come from `from` (any 127/8 address reaches the app on Linux).
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(from.parse::<IpAddr>().unwrap()).build().unwrap()
}

/// `count` feed requests one after another (as fast as they are answered), each with `headers`; the statuses.
async fn flood(
    app: &TestApp,
    client: &reqwest::Client,
    count: usize,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(count);
    for i in 0..count {
        let mut req = client.get(app.url(&format!("/sub/{}", unknown_token())));
        for (name, value) in headers(i) {
            req = req.header(name, value);
        }
        statuses.push(req.send().await.unwrap().status().as_u16());
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_feed_flood_from_one_address_gets_429s_while_webhook_deliveries_are_answered_and_stored(pool: PgPool) {
    let shop = bot_shop_with(pool, tight).await;
    let app = &shop.app;
    let flooder = client_from("127.0.0.1");
    let (statuses, delivered) = tokio::join!(flood(app, &flooder, 300, |_| vec![]), async {
        // Telegram's deliveries, from the same address, during the flood
        let mut answers = Vec::new();
        for i in 0..10 {
            answers.push(shop.post(&command_update(next_id(), &TgUser::new(900 + i, "Ana"), "/start")).await);
        }
        answers
    });
    assert_eq!(delivered, vec![200; 10], "webhook deliveries during the flood");
    assert_eq!(stored_updates(&app.state.pool).await, 10);
    let (served, limited) = (count(&statuses, 404), count(&statuses, 429));
    assert_eq!(served + limited, statuses.len(), "only 404s and 429s: {statuses:?}");
    assert!((BURST as usize..BURST as usize + 10).contains(&served), "{served} served of {}", statuses.len());

    let res = flooder.get(app.url(&format!("/sub/{}", unknown_token()))).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    // unknown paths share the limit; health probes are exempt
    assert_eq!(flooder.get(app.url("/wp-login.php")).send().await.unwrap().status(), 429);
    assert_eq!(flooder.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(flooder.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    // another address is not limited by the first one's flood
    let other = client_from("127.0.0.2");
    let statuses = flood(app, &other, 3, |_| vec![]).await;
    assert_eq!(statuses, vec![404; 3]);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored(pool: PgPool) {
    let app = spawn_app_with(pool, tight).await;
    assert!(app.state.settings.http.trusted_proxies.is_empty());
    let client = client_from("127.0.0.1");
    // a new "client" on every request, claimed in both headers
    let statuses = flood(&app, &client, 60, |i| {
        vec![("x-forwarded-for", format!("198.51.100.{i}")), ("forwarded", format!("for=203.0.113.{i}"))]
    })
    .await;
    assert!(count(&statuses, 404) < BURST as usize + 5, "{statuses:?}");
    assert!(count(&statuses, 429) > 60 - BURST as usize - 5, "{statuses:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_trusted_proxy_is_believed_about_its_clients(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        tight(s);
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let proxy = client_from("127.0.0.1");
    let one_client = |_| vec![("x-forwarded-for", "198.51.100.7".to_owned())];
    let statuses = flood(&app, &proxy, 40, one_client).await;
    assert!(count(&statuses, 429) > 40 - BURST as usize - 5, "{statuses:?}");
    // a client that forges the header in front of the proxy's entry is still itself
    let forged = |i| vec![("x-forwarded-for", format!("10.0.0.{i}, 198.51.100.7"))];
    assert_eq!(flood(&app, &proxy, 3, forged).await, vec![429; 3]);
    // the proxy's other clients, and the proxy itself, are not limited by that one
    let statuses = flood(&app, &proxy, 3, |_| vec![("x-forwarded-for", "198.51.100.8".to_owned())]).await;
    assert_eq!(statuses, vec![404; 3]);
    let statuses = flood(&app, &proxy, 3, |_| vec![("forwarded", "for=198.51.100.9".to_owned())]).await;
    assert_eq!(statuses, vec![404; 3]);
    assert_eq!(flood(&app, &proxy, 3, |_| vec![]).await, vec![404; 3]);
}
