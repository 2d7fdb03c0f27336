//! Stripe through the bot when Stripe misbehaves (500s, hangs, a lost answer), what Stripe refuses, a whole
//! purchase ending in a working link on a real node, and two instances receiving the same event at once.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::domain::{Currency, Money};
use vpnshop::payments::{CheckoutRequest, Gateway, GatewayError};

use super::stripe::{SUBS, deliver, order_by_stripe, order_status, pay_links, stripe_settings, stripe_shop_with};
use crate::bot::{BotShop, bot_settings, press, walk_to_summary};
use crate::helpers::{TestApp, database_url, spawn_app_with, test_settings};
use crate::payments::{customer, number, payment_of, payment_status, scalar, texts_to, wait_text};
use crate::provisioning::{register_node, wait_status};
use crate::support::stripe::{Failure, FakeStripe, STRIPE_KEY};
use crate::support::{GREETING, Origin, TestNode, TestV2rayClient, node_tools_present};

const UNAVAILABLE: &str = "is not answering right now";

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_stripe_answering_500_leaves_the_order_payable_and_trying_again_pays(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let u = customer(6201);
    let (order, summary) = walk_to_summary(&shop, &u).await;
    fake.fail_next(Failure::Status500);
    let screen = press(&shop, &u, &summary.data(&format!("p:{order}:stripe"))).await;
    assert!(screen.text.contains(UNAVAILABLE) && screen.text.contains("$2.99"), "{}", screen.text);
    assert_eq!(screen.data("o:"), format!("o:{order}"), "a Try again button");
    assert!(pay_links(&shop, &u).is_empty(), "no page to pay on");
    assert_eq!(fake.calls().len(), 1, "a 500 is not retried with its key (Stripe would replay it)");
    let first = payment_of(pool, order).await;
    assert_eq!(payment_status(pool, first).await, "failed");
    assert_eq!(order_status(pool, order).await, "awaiting_payment", "still payable");

    // Try again: a new attempt with a new key, and a page to pay on
    press(&shop, &u, &format!("o:{order}")).await;
    let second = payment_of(pool, order).await;
    assert_ne!(second, first);
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let key = super::stripe::idempotency_key(pool, second).await;
    assert_eq!(calls[1].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(pay_links(&shop, &u), [fake.sessions()[0].json["url"].as_str().unwrap().to_owned()]);
    let session = fake.sessions()[0].id.clone();
    assert_eq!(deliver(&shop.app, &fake.completed_event(&session)).await, 200);
    assert_eq!(order_status(pool, order).await, "fulfilled");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_stripe_that_hangs_leaves_the_order_payable_and_the_customer_told(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |s| s.stripe.timeout_secs = 1).await;
    let pool = &shop.app.state.pool;
    let u = customer(6202);
    let (order, summary) = walk_to_summary(&shop, &u).await;
    fake.fail_next(Failure::Hang);
    fake.fail_next(Failure::Hang);
    let started = std::time::Instant::now();
    let screen = press(&shop, &u, &summary.data(&format!("p:{order}:stripe"))).await;
    assert!(screen.text.contains(UNAVAILABLE), "{}", screen.text);
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the timeouts: {:?}", started.elapsed());
    let first = payment_of(pool, order).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "one retry (stripe.max_retries = 1)");
    let key = super::stripe::idempotency_key(pool, first).await;
    assert!(calls.iter().all(|c| c.idempotency_key.as_ref() == Some(&key)), "the same key");
    assert!(fake.sessions().is_empty());
    assert_eq!(order_status(pool, order).await, "awaiting_payment");

    press(&shop, &u, &format!("o:{order}")).await;
    assert_eq!(pay_links(&shop, &u).len(), 1, "Stripe is back: a page to pay on");
    assert_eq!(fake.sessions().len(), 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_answer_lost_to_a_timeout_is_recovered_by_the_same_idempotency_key(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |s| s.stripe.timeout_secs = 1).await;
    let u = customer(6203);
    let (order, summary) = walk_to_summary(&shop, &u).await;
    // Stripe makes the session, but its answer comes too late for us
    fake.fail_next(Failure::SlowAfterCreate(Duration::from_secs(5)));
    press(&shop, &u, &summary.data(&format!("p:{order}:stripe"))).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].idempotency_key, calls[1].idempotency_key);
    assert_eq!(fake.sessions().len(), 1, "one session, not two");
    let session = fake.sessions().remove(0);
    assert_eq!(pay_links(&shop, &u), [session.json["url"].as_str().unwrap().to_owned()]);
    let payment = payment_of(&shop.app.state.pool, order).await;
    let stored: Option<String> = sqlx::query_scalar("SELECT stripe_session_id FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    assert_eq!(stored, Some(session.id));
}

fn request(minor: i64, currency: Currency, key: &str) -> CheckoutRequest {
    CheckoutRequest {
        payment_id: 1,
        order_id: 1,
        amount: Money::from_minor(minor, currency).unwrap(),
        description: "vpnshop order #1".into(),
        idempotency_key: key.into(),
        reference: format!("ref-{key}"),
        success_url: "https://t.me/shop_bot?start=paid_1".into(),
        cancel_url: "https://t.me/shop_bot?start=paid_1".into(),
        callback_url: String::new(),
        expires_in: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn what_stripe_refuses_is_refused_and_not_retried() {
    let fake = FakeStripe::start().await;
    let mut settings = test_settings();
    stripe_settings(&mut settings, &fake);
    let stripe = vpnshop::payments::stripe::Stripe::new(&settings.stripe).unwrap();

    let small = stripe.checkout(&request(30, Currency::Usd, "k-small")).await.unwrap_err();
    assert!(matches!(&small, GatewayError::Refused(m) if m.contains("amount_too_small")), "{small:?}");
    let euro = stripe.checkout(&request(450, Currency::Eur, "k-euro")).await.unwrap();
    assert_eq!(fake.session(&euro.processor_id)["currency"], "eur");
    // the same key with other parameters
    let reused = stripe.checkout(&request(460, Currency::Eur, "k-euro")).await.unwrap_err();
    assert!(matches!(&reused, GatewayError::Refused(m) if m.contains("idempotency_error")), "{reused:?}");
    // the same request again: the same session
    assert_eq!(stripe.checkout(&request(450, Currency::Eur, "k-euro")).await.unwrap(), euro);
    assert_eq!(fake.calls().len(), 4, "nothing retried");

    settings.stripe.secret_key = Some("sk_test_wrong".to_owned().into());
    let wrong = vpnshop::payments::stripe::Stripe::new(&settings.stripe).unwrap();
    let denied = wrong.checkout(&request(450, Currency::Usd, "k-denied")).await.unwrap_err();
    assert!(matches!(&denied, GatewayError::Refused(m) if m.contains("401")), "{denied:?}");
    assert!(!format!("{denied:?}").contains(STRIPE_KEY), "no key in errors");
    // nothing listening: unavailable
    settings.stripe.api_url = format!("http://127.0.0.1:{}/", crate::support::free_port()).parse().unwrap();
    settings.stripe.secret_key = Some(STRIPE_KEY.to_owned().into());
    let gone = vpnshop::payments::stripe::Stripe::new(&settings.stripe).unwrap();
    let down = gone.checkout(&request(450, Currency::Usd, "k-down")).await.unwrap_err();
    assert!(matches!(down, GatewayError::Unavailable(_)), "{down:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_stripe_purchase_through_the_bot_ends_with_a_working_link(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let origin = Origin::start().await;
    let tg = crate::support::FakeTelegram::start().await;
    let fake = FakeStripe::start().await;
    let key = node.key_path();
    let app = spawn_app_with(pool, |s| {
        bot_settings(s, &tg);
        stripe_settings(s, &fake);
        s.provision.allow_private_destinations.push(origin.allowance());
        s.provision.ssh_key_path = Some(key);
    })
    .await;
    register_node(&app.state.pool, &node).await;
    let shop = BotShop { app, tg };
    let pool = &shop.app.state.pool;
    let u = customer(6204);

    let o = order_by_stripe(&shop, &u).await;
    assert_eq!(pay_links(&shop, &u).len(), 1);
    assert_eq!(deliver(&shop.app, &fake.completed_event(&o.session)).await, 200);
    assert_eq!(order_status(pool, o.order).await, "fulfilled");
    let sub = scalar(pool, "SELECT id FROM subscriptions WHERE order_id = $1", o.order).await;
    wait_status(pool, sub, SubscriptionStatus::Active).await;
    let ready = wait_text(&shop, u.id, "is ready").await;
    let start = ready.find("vmess://").expect("a vmess link in the ready message");
    let link: String = ready[start..].chars().take_while(|c| !c.is_whitespace() && *c != '<').collect();
    let client = TestV2rayClient::start(link.as_str()).await;
    assert_eq!(client.fetch(&origin.url("/")).await.unwrap(), GREETING, "the link from the message works");

    // back from Stripe's page through the deep link: the order is paid
    crate::bot::command(&shop, &u, &format!("/start paid_{}", o.order)).await;
    wait_text(&shop, u.id, &format!("Order <b>#{}</b> is paid", o.order)).await;
    let readies = texts_to(&shop, u.id).iter().filter(|t| t.contains("is ready")).count();
    assert_eq!(readies, 1);
}

/// The same app again on its own pool, against the same database, fake Telegram and fake Stripe.
async fn second_instance(shop: &BotShop, fake: &FakeStripe) -> TestApp {
    let pool = PgPoolOptions::new().max_connections(10).connect(&database_url(&shop.app.state.pool)).await.unwrap();
    spawn_app_with(pool, |s| {
        bot_settings(s, &shop.tg);
        stripe_settings(s, fake);
    })
    .await
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn two_instances_receiving_the_same_event_at_once_fulfil_it_once(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let other = second_instance(&shop, &fake).await;
    let pool = &shop.app.state.pool;
    let u = customer(6205);
    let o = order_by_stripe(&shop, &u).await;
    let completed: Value = fake.completed_event(&o.session);

    let deliveries = (0..12).map(|i| {
        let app = if i % 2 == 0 { &shop.app } else { &other };
        let event = completed.clone();
        async move { deliver(app, &event).await }
    });
    let statuses = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(scalar(pool, SUBS, o.order).await, 1, "one subscription");
    let succeeded = "SELECT count(*) FROM audit_log WHERE entity = 'payment' AND entity_id = $1::text
                      AND action = 'payment.succeeded'";
    assert_eq!(scalar(pool, succeeded, o.payment).await, 1, "one fulfilment");
    assert_eq!(number(pool, "SELECT count(*) FROM webhook_events").await, 1);
    let notices = "SELECT count(*) FROM jobs WHERE kind = 'notify.payment' AND payload->>'payment_id' = $1::text";
    assert_eq!(scalar(pool, notices, o.payment).await, 1, "one notice to the customer");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_order_paid_on_two_sessions_is_fulfilled_once_and_the_second_payment_held(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let u = customer(6206);
    let first = order_by_stripe(&shop, &u).await;
    // the first session expires; the customer opens a new one
    assert_eq!(deliver(&shop.app, &fake.expired_event(&first.session)).await, 200);
    press(&shop, &u, &format!("o:{}", first.order)).await;
    let second = payment_of(pool, first.order).await;
    assert_ne!(second, first.payment);
    let session = fake.sessions()[1].id.clone();
    // … and yet both are paid
    assert_eq!(deliver(&shop.app, &fake.completed_event(&first.session)).await, 200);
    assert_eq!(deliver(&shop.app, &fake.completed_event(&session)).await, 200, "answered: retrying cannot help");
    assert_eq!(order_status(pool, first.order).await, "fulfilled");
    assert_eq!(scalar(pool, SUBS, first.order).await, 1, "one subscription");
    assert_eq!(payment_status(pool, first.payment).await, "succeeded");
    assert_eq!(payment_status(pool, second).await, "pending");
    let held = "SELECT count(*) FROM payments WHERE id = $1 AND flagged_at IS NOT NULL";
    assert_eq!(scalar(pool, held, second).await, 1, "held for an admin to refund");
    wait_text(&shop, crate::payments::ADMIN, &format!("Payment #{second} (stripe) was not fulfilled")).await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_attempt_left_without_its_page_does_not_block_the_order(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let u = customer(6290);
    let (order, summary) = walk_to_summary(&shop, &u).await;
    let pay = summary.data(&format!("p:{order}:stripe"));
    press(&shop, &u, &pay).await;
    let first = payment_of(pool, order).await;
    // as if an instance died between creating the attempt and storing its page
    sqlx::query("UPDATE payments SET checkout_url = NULL, stripe_session_id = NULL WHERE id = $1")
        .bind(first)
        .execute(pool)
        .await
        .unwrap();
    // a moment later: another tap may still be talking to Stripe, so the customer is asked to try again
    let screen = press(&shop, &u, &format!("o:{order}")).await;
    assert!(screen.text.contains(UNAVAILABLE), "{}", screen.text);
    assert_eq!(payment_of(pool, order).await, first, "no second attempt yet");
    // a minute on, the attempt is replaced and the customer gets a page
    sqlx::query("UPDATE payments SET created_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(first)
        .execute(pool)
        .await
        .unwrap();
    press(&shop, &u, &format!("o:{order}")).await;
    let second = payment_of(pool, order).await;
    assert_ne!(second, first);
    assert_eq!(payment_status(pool, first).await, "failed");
    assert_eq!(pay_links(&shop, &u).len(), 1, "a page to pay on");
    assert_eq!(fake.sessions().len(), 2);
    // and /start shows it too, without an error
    let start = crate::bot::command(&shop, &u, "/start").await;
    assert!(start.text.contains("secure payment page"), "{}", start.text);
}
