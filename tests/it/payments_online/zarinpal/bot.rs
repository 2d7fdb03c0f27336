//! Zarinpal through the bot: who is offered it, a gateway that is down, two instances settling one callback, and
//! a whole purchase ending in a link that works on a real node.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::domain::{Currency, Language, Money};

use super::*;
use crate::bot::{bot_settings, order_row};
use crate::helpers::{database_url, spawn_app_with};
use crate::payments::{number, wait_text};
use crate::provisioning::{register_node, wait_status};
use crate::support::zarinpal::Failure;
use crate::support::{FakeTelegram, Origin, TestNode, TestV2rayClient, node_tools_present};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn rial_customers_are_offered_zarinpal_once_it_is_configured_and_dollar_customers_never(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (order, summary) = walk_to_summary(&z.shop, &persian(7301)).await;
    assert!(summary.buttons.iter().any(|(_, d)| d == &format!("p:{order}:zarinpal")), "{summary:#?}");
    let (order, summary) = walk_to_summary(&z.shop, &user(7302, "en")).await;
    assert!(!summary.buttons.iter().any(|(_, d)| d == &format!("p:{order}:zarinpal")), "{summary:#?}");

    // the shop again without a merchant id: it offers Zarinpal to nobody
    let ZarinpalShop { shop: BotShop { app, tg }, zp } = z;
    let url = database_url(&app.state.pool);
    app.stop().await.unwrap();
    let pool = PgPoolOptions::new().max_connections(10).connect(&url).await.unwrap();
    let app = spawn_app_with(pool, |s| {
        bot_settings(s, &tg);
        zarinpal_settings(s, &zp);
        s.zarinpal.merchant_id = None;
    })
    .await;
    let bare = BotShop { app, tg };
    let (order, summary) = walk_to_summary(&bare, &persian(7303)).await;
    assert!(!summary.buttons.iter().any(|(_, d)| d.ends_with(":zarinpal")), "{summary:#?}");
    assert!(summary.buttons.iter().any(|(_, d)| d == &format!("p:{order}:card")), "{summary:#?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_gateway_that_hangs_or_fails_leaves_the_order_payable_and_the_customer_can_try_again(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let u = persian(7304);
    let (order, summary) = walk_to_summary(shop, &u).await;
    let failed = "SELECT count(*) FROM payments WHERE order_id = $1 AND status = 'failed'";

    // no answer within the timeout, twice (the try and its retry)
    z.zp.fail_next("request", 2, Failure::Hang(Duration::from_secs(3)));
    let screen = press(shop, &u, &summary.data(&format!("p:{order}:zarinpal"))).await;
    let (_, amount, _) = order_row(pool, order).await;
    let price = Money::from_minor(amount.unwrap(), Currency::Irr).unwrap().format(Language::Fa);
    let unavailable = vpnshop::i18n::t_args(
        Language::Fa,
        "pay-online-unavailable",
        &[("order", vpnshop::i18n::number(Language::Fa, order).into()), ("price", price.into())],
    );
    assert_eq!(screen.text, unavailable);
    assert_eq!(url_button(shop, &u), None);
    let retry = screen.data(&format!("o:{order}"));
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");
    assert_eq!(scalar(pool, failed, order).await, 1);

    // a 500, twice
    z.zp.fail_next("request", 2, Failure::Status500);
    let screen = press(shop, &u, &retry).await;
    assert_eq!(screen.text, unavailable);
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");
    assert_eq!(scalar(pool, failed, order).await, 2);

    // Zarinpal is back: the button to pay
    press(shop, &u, &retry).await;
    let (payment, authority) = payment_of(pool, order).await;
    assert_eq!(url_button(shop, &u), Some(format!("{}pg/StartPay/{authority}", z.zp.url())));
    assert_eq!(z.zp.calls("request").len(), 5);
    assert_eq!(status_of(pool, payment).await.0, "pending");
    let (status, page) = callback(&shop.app, &z.zp.pay(&authority)).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);
}

/// Waits until every customer notice and Telegram send is done.
async fn messages_done(pool: &PgPool) {
    let busy = "SELECT count(*) FROM jobs WHERE kind IN ('notify.payment', 'telegram.send') AND status IN ('queued', 'running')";
    eventually("the messages are sent", || async { number(pool, busy).await == 0 }).await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn two_instances_receiving_the_same_callback_at_once_fulfil_it_once(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let other_pool = PgPoolOptions::new().max_connections(10).connect(&database_url(pool)).await.unwrap();
    let other = spawn_app_with(other_pool, |s| {
        bot_settings(s, &shop.tg);
        zarinpal_settings(s, &z.zp);
    })
    .await;
    let u = persian(7305);
    let (order, payment, query) = paid_order(&z, &u).await;

    let hits = (0..8).map(|i| {
        let app = if i % 2 == 0 { &shop.app } else { &other };
        callback(app, &query)
    });
    for (status, page) in futures::future::join_all(hits).await {
        assert_eq!(status, 200);
        assert_persian_page(&page, "zarinpal-paid", order);
    }
    let codes: Vec<Option<i64>> = z.zp.calls("verify").iter().map(|c| c.code).collect();
    assert_eq!(codes.iter().filter(|c| **c == Some(100)).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Some(101)).count(), 7, "{codes:?}");
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(subscriptions_of(pool, order).await, 1);
    let settled = "SELECT count(*) FROM audit_log WHERE entity = 'payment' AND entity_id = $1::text
                     AND action = 'payment.succeeded'";
    assert_eq!(scalar(pool, settled, payment).await, 1, "settled once");
    let accepted = said(Language::Fa, "payment-accepted-new", order);
    wait_text(shop, u.id, &accepted).await;
    messages_done(pool).await;
    let told = shop.tg.messages_to(u.id).iter().filter(|m| m.text.as_deref() == Some(accepted.as_str())).count();
    assert_eq!(told, 1, "the customer is told once");
    drop(other);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_purchase_paid_with_zarinpal_gives_a_link_that_works_on_a_real_node(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let origin = Origin::start().await;
    let tg = FakeTelegram::start().await;
    let zp = crate::support::zarinpal::FakeZarinpal::start().await;
    let key = node.key_path();
    let app = spawn_app_with(pool, |s| {
        bot_settings(s, &tg);
        zarinpal_settings(s, &zp);
        s.provision.allow_private_destinations.push(origin.allowance());
        s.provision.ssh_key_path = Some(key);
    })
    .await;
    register_node(&app.state.pool, &node).await;
    let z = ZarinpalShop { shop: BotShop { app, tg }, zp };
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let u = persian(7306);

    let (order, pay) = order_by_zarinpal(shop, &u).await;
    assert!(pay.text.contains(&vpnshop::i18n::number(Language::Fa, order)), "{}", pay.text);
    let button = url_button(shop, &u).expect("a button to Zarinpal");
    assert_eq!(reqwest::get(&button).await.unwrap().status(), 200, "the StartPay page opens");
    let authority = button.rsplit('/').next().unwrap().to_owned();
    let (status, page) = callback(&shop.app, &z.zp.pay(&authority)).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);

    // the customer follows the page's link back to the bot: it knows the order is paid
    crate::bot::command(shop, &u, &format!("/start paid_{order}")).await;
    let back = shop.screen(&u).text;
    assert!(back.contains(&said(Language::Fa, "paid-order-paid", order)), "{back}");

    let sub = scalar(pool, "SELECT id FROM subscriptions WHERE order_id = $1", order).await;
    wait_status(pool, sub, SubscriptionStatus::Active).await;
    let ready = wait_text(shop, u.id, "vmess://").await;
    let start = ready.find("vmess://").unwrap();
    let link: String = ready[start..].chars().take_while(|c| !c.is_whitespace() && *c != '<').collect();
    let client = TestV2rayClient::start(link.as_str()).await;
    assert_eq!(client.fetch(&origin.url("/")).await.unwrap(), crate::support::GREETING);
    assert_eq!(subscriptions_of(pool, order).await, 1);
}
