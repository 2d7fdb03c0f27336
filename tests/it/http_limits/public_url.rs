//! URLs under the shop's public base URL keep its path (a shop behind a reverse proxy under a path): where the
//! webhook is registered, and the feed links customers import.

use std::time::Duration;

use sqlx::PgPool;

use crate::bot::bot_shop_with;
use crate::helpers::test_settings;

#[test]
fn the_webhook_url_keeps_the_public_urls_path_with_or_without_a_trailing_slash() {
    let mut settings = test_settings();
    assert_eq!(vpnshop::bot::webhook_url(&settings), None, "no public URL: long polling");
    for (public, webhook) in [
        ("https://shop.example.com/vpn", "https://shop.example.com/vpn/telegram/webhook"),
        ("https://shop.example.com/vpn/", "https://shop.example.com/vpn/telegram/webhook"),
        ("https://shop.example.com/a/b/", "https://shop.example.com/a/b/telegram/webhook"),
        ("https://shop.example.com", "https://shop.example.com/telegram/webhook"),
        ("https://shop.example.com/", "https://shop.example.com/telegram/webhook"),
        ("https://shop.example.com:8443/vpn?x=1#top", "https://shop.example.com:8443/vpn/telegram/webhook"),
    ] {
        settings.telegram.public_url = Some(public.parse().unwrap());
        let url = vpnshop::bot::webhook_url(&settings).expect("a webhook URL");
        assert_eq!(url.as_str(), webhook, "public_url = {public}");
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_shop_under_a_path_registers_its_webhook_under_that_path(pool: PgPool) {
    let shop =
        bot_shop_with(pool, |s| s.telegram.public_url = Some("https://shop.example.com/vpn".parse().unwrap())).await;
    let calls = shop.tg.wait_for("setWebhook", 1, Duration::from_secs(10)).await;
    assert_eq!(calls[0].params["url"], "https://shop.example.com/vpn/telegram/webhook");
}

#[test]
fn feed_links_keep_the_public_urls_path_with_or_without_a_trailing_slash() {
    let mut settings = test_settings();
    for (public, feed) in [
        ("https://shop.example.com/vpn", "https://shop.example.com/vpn/sub/tok-1"),
        ("https://shop.example.com/vpn/", "https://shop.example.com/vpn/sub/tok-1"),
        ("https://shop.example.com", "https://shop.example.com/sub/tok-1"),
    ] {
        settings.http.public_url = Some(public.parse().unwrap());
        assert_eq!(vpnshop::services::access::feed_url(&settings, "tok-1"), feed, "http.public_url = {public}");
    }
}
