//! What customers see of locations and services: links only once they work, named in the customer's
//! language; server counts only for admins; Persian buttons that point the right-to-left way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::PgPool;

use super::{bot_shop, bot_shop_with, command, press, subscription, user};

/// The names (`ps`) of the VMess links in a text.
fn link_names(text: &str) -> Vec<String> {
    text.split("vmess://")
        .skip(1)
        .map(|rest| {
            let b64: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || "+/=".contains(*c)).collect();
            let json: serde_json::Value = serde_json::from_slice(&STANDARD.decode(b64).unwrap()).unwrap();
            json["ps"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_service_shows_its_links_only_once_it_is_active(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let db = &shop.app.state.pool;
    let u = user(111, "en");
    command(&shop, &u, "/start").await;
    let sub = subscription(db, u.id, "pending", 1, false).await;
    let pending = press(&shop, &u, &format!("v:{sub}")).await;
    assert!(!pending.text.contains("vmess://"), "no link that does not work yet: {}", pending.text);
    assert!(pending.text.contains("as soon as the service is set up"), "{}", pending.text);
    assert!(!pending.buttons.iter().any(|(_, d)| d.starts_with("q:")), "no QR codes either");
    sqlx::query(
        "UPDATE subscriptions SET status = 'active', starts_at = now(), expires_at = now() + interval '30 days'
          WHERE id = $1",
    )
    .bind(sub)
    .execute(db)
    .await
    .unwrap();
    let active = press(&shop, &u, "m").await;
    assert!(active.text.contains("Hi Sam"));
    let active = press(&shop, &u, &format!("v:{sub}")).await;
    assert_eq!(link_names(&active.text).len(), 1, "{}", active.text);
    active.data(&format!("q:{sub}"));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn link_names_follow_the_customers_language(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let db = &shop.app.state.pool;
    let fa = user(112, "fa");
    command(&shop, &fa, "/start").await;
    let sub = subscription(db, fa.id, "active", 2, false).await;
    let detail = press(&shop, &fa, &format!("v:{sub}")).await;
    assert_eq!(link_names(&detail.text), ["vpnshop 🇩🇪 آلمان #1", "vpnshop 🇩🇪 آلمان #2"], "{}", detail.text);
    // the feed apps import names them the same way
    let token: String =
        sqlx::query_scalar("SELECT token FROM subscriptions WHERE id = $1").bind(sub).fetch_one(db).await.unwrap();
    let body = shop.app.http.get(shop.app.url(&format!("/sub/{token}"))).send().await.unwrap().text().await.unwrap();
    let feed = String::from_utf8(STANDARD.decode(body.trim()).unwrap()).unwrap();
    assert_eq!(link_names(&feed), ["vpnshop 🇩🇪 آلمان #1", "vpnshop 🇩🇪 آلمان #2"], "{feed}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn only_admins_see_how_many_servers_a_location_has(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| s.telegram.admin_ids = vec![114]).await;
    let customer = command(&shop, &user(113, "en"), "/buy").await;
    let de = customer.data("l:");
    assert_eq!(customer.label_of(&de), "🇩🇪 Germany");
    let admin = command(&shop, &user(114, "en"), "/buy").await;
    let de = admin.data("l:");
    assert_eq!(admin.label_of(&de), "🇩🇪 Germany · 1 server");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn persian_back_and_continue_point_the_right_to_left_way(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let fa = user(115, "fa");
    let locations = command(&shop, &fa, "/buy").await;
    let durations = press(&shop, &fa, &locations.data("l:")).await;
    let back = durations.buttons.iter().find(|(_, d)| d.starts_with("k:")).unwrap().0.clone();
    assert!(back.contains('➡') && !back.contains('⬅'), "back points right in a right-to-left layout: {back}");
    let resume = command(&shop, &fa, "/start").await;
    let go_on = resume.buttons.iter().find(|(_, d)| d.starts_with("r:")).unwrap().0.clone();
    assert!(go_on.contains('◀') && !go_on.contains('▶'), "continue points left: {go_on}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_customer_replaces_a_leaked_subscription_url_and_the_old_one_stops_working(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let db = &shop.app.state.pool;
    let u = user(115, "en");
    command(&shop, &u, "/start").await;
    let sub = subscription(db, u.id, "active", 1, false).await;
    let token = || async {
        sqlx::query_scalar::<_, String>("SELECT token FROM subscriptions WHERE id = $1")
            .bind(sub)
            .fetch_one(db)
            .await
            .unwrap()
    };
    let old = token().await;
    let detail = press(&shop, &u, &format!("v:{sub}")).await;
    assert!(detail.text.contains(&format!("/sub/{old}")), "{}", detail.text);
    let button = format!("nf:{sub}");
    assert!(detail.buttons.iter().any(|(_, d)| *d == button), "a button for a new URL: {:?}", detail.buttons);

    let after = press(&shop, &u, &button).await;
    let new = token().await;
    assert_ne!(new, old);
    assert!(after.text.contains(&format!("/sub/{new}")), "the details show the new URL: {}", after.text);
    let feed = |t: String| shop.app.http.get(shop.app.url(&format!("/sub/{t}"))).send();
    assert_eq!(feed(old).await.unwrap().status(), 404, "the leaked URL is dead");
    assert_eq!(feed(new.clone()).await.unwrap().status(), 200);

    // someone else's subscription is not theirs to change
    let other = user(116, "en");
    command(&shop, &other, "/start").await;
    press(&shop, &other, &button).await;
    assert_eq!(token().await, new, "unchanged by a stranger's button");
}

/// A node with several inbounds: one link per inbound for the one device, each line naming its inbound in the
/// customer's language, and the link names (what apps list) ending with the inbound's label.
#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_node_with_several_inbounds_lists_one_named_link_per_inbound(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let db = &shop.app.state.pool;
    sqlx::query(
        r#"UPDATE servers SET inbounds = '[{"tag": "proxy", "protocol": "vmess", "port": 443},
             {"tag": "ws", "protocol": "vmess", "transport": "ws", "security": "tls", "port": 8443, "path": "/ws",
              "sni": "de1.example.com", "cert_path": "/etc/v2ray/tls/fullchain.pem",
              "key_path": "/etc/v2ray/tls/privkey.pem"}]'
            WHERE location_code = 'de'"#,
    )
    .execute(db)
    .await
    .unwrap();
    let ru = user(116, "ru");
    command(&shop, &ru, "/start").await;
    let sub = subscription(db, ru.id, "active", 1, false).await;
    let detail = press(&shop, &ru, &format!("v:{sub}")).await;
    assert_eq!(
        link_names(&detail.text),
        ["vpnshop 🇩🇪 Германия · VMess TCP", "vpnshop 🇩🇪 Германия · VMess WS TLS"],
        "{}",
        detail.text
    );
    assert!(detail.text.contains("Устройство 1 · VMess TCP: <code>vmess://"), "{}", detail.text);
    assert!(detail.text.contains("Устройство 1 · VMess WS TLS: <code>vmess://"), "{}", detail.text);
}
