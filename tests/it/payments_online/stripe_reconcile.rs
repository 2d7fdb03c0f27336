//! The `stripe_reconcile` sweep, for webhooks that never came: pending Stripe payments a few minutes old are read
//! back from Stripe (`GET /v1/checkout/sessions/{id}`) — paid ones fulfilled once, expired or unknown ones failed
//! (the order stays payable), open and fresh ones left alone; while Stripe does not answer nothing changes.

use sqlx::PgPool;

use super::stripe::{Ordered, SUBS, deliver, order_by_stripe, order_status, stripe_shop_with};
use crate::bot::{BotShop, press};
use crate::payments::{customer, payment_of, payment_status, scalar, wait_text};
use crate::support::stripe::{Failure, FakeStripe};

/// Runs the sweep once, as the scheduler would; returns how many payments it settled.
async fn sweep(shop: &BotShop) -> u64 {
    let sweeps = vpnshop::app::sweeps(&shop.app.state);
    sweeps["stripe_reconcile"].run().await.unwrap()
}

/// Makes a payment ten minutes old (past the sweep's five).
async fn make_old(pool: &PgPool, payment: i64) {
    sqlx::query("UPDATE payments SET created_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(payment)
        .execute(pool)
        .await
        .unwrap();
}

async fn old_order(shop: &BotShop, user: i64) -> Ordered {
    let o = order_by_stripe(shop, &customer(user)).await;
    make_old(&shop.app.state.pool, o.payment).await;
    o
}

fn read(fake: &FakeStripe) -> Vec<String> {
    fake.retrieved().into_iter().map(|(id, _)| id).collect()
}

async fn failure_reason(pool: &PgPool, payment: i64) -> Option<String> {
    sqlx::query_scalar("SELECT failure_reason FROM payments WHERE id = $1").bind(payment).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_paid_session_whose_webhook_never_came_is_fulfilled_once(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let o = old_order(&shop, 6301).await;
    let open = old_order(&shop, 6302).await;
    let paid = fake.pay(&o.session);

    assert_eq!(sweep(&shop).await, 1);
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(order_status(pool, o.order).await, "fulfilled");
    assert_eq!(scalar(pool, SUBS, o.order).await, 1);
    let intent: Option<String> = sqlx::query_scalar("SELECT stripe_payment_intent_id FROM payments WHERE id = $1")
        .bind(o.payment)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(intent.as_deref(), paid["payment_intent"].as_str());
    wait_text(&shop, 6301, &format!("Payment for order <b>#{}</b> accepted", o.order)).await;
    // the open one was asked about and left alone
    assert_eq!(read(&fake), [o.session.clone(), open.session.clone()]);
    assert_eq!(payment_status(pool, open.payment).await, "pending");
    assert_eq!(order_status(pool, open.order).await, "awaiting_payment");

    // a second run reads only the open one; a late webhook changes nothing
    assert_eq!(sweep(&shop).await, 0);
    assert_eq!(&read(&fake)[2..], std::slice::from_ref(&open.session));
    assert_eq!(deliver(&shop.app, &fake.completed_event(&o.session)).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(scalar(pool, SUBS, o.order).await, 1, "one subscription");
    let accepted = crate::payments::texts_to(&shop, 6301).iter().filter(|t| t.contains("accepted")).count();
    assert_eq!(accepted, 1, "the customer is told once");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_expired_or_unknown_session_fails_and_the_order_stays_payable(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let expired = old_order(&shop, 6303).await;
    let unknown = old_order(&shop, 6304).await;
    fake.expire(&expired.session);
    fake.forget(&unknown.session);

    assert_eq!(sweep(&shop).await, 2);
    for o in [&expired, &unknown] {
        assert_eq!(payment_status(pool, o.payment).await, "failed", "payment {}", o.payment);
        let reason = failure_reason(pool, o.payment).await;
        assert!(reason.as_deref().is_some_and(|r| r.starts_with("expired")), "{reason:?}");
        assert_eq!(order_status(pool, o.order).await, "awaiting_payment", "still payable");
        assert_eq!(scalar(pool, SUBS, o.order).await, 0);
    }
    assert_eq!(fake.retrieved().iter().map(|(_, s)| *s).collect::<Vec<_>>(), [200, 404]);

    // the customer pays again: a new session, a new payment
    let u = customer(6303);
    press(&shop, &u, &format!("o:{}", expired.order)).await;
    press(&shop, &u, &format!("p:{}:stripe", expired.order)).await;
    let again = payment_of(pool, expired.order).await;
    assert_ne!(again, expired.payment);
    assert_eq!(payment_status(pool, again).await, "pending");
    assert_eq!(fake.sessions().len(), 2, "the expired one and the new one (the unknown one is forgotten)");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_fresh_payment_is_left_alone_even_when_paid(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6305)).await;
    fake.pay(&o.session);
    assert_eq!(sweep(&shop).await, 0);
    assert!(fake.retrieved().is_empty(), "not asked about: its webhook is still to come");
    assert_eq!(payment_status(pool, o.payment).await, "pending");

    // a few minutes later, still no webhook: the sweep takes it
    make_old(pool, o.payment).await;
    assert_eq!(sweep(&shop).await, 1);
    assert_eq!(order_status(pool, o.order).await, "fulfilled");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn while_stripe_is_down_nothing_changes_and_the_next_run_catches_up(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |s| s.stripe.timeout_secs = 1).await;
    let pool = &shop.app.state.pool;
    let first = old_order(&shop, 6306).await;
    let second = old_order(&shop, 6307).await;
    fake.pay(&first.session);
    fake.expire(&second.session);

    // a 500: the run stops there, the second is not asked about
    fake.fail_retrieves(1, Failure::Status500);
    assert_eq!(sweep(&shop).await, 0);
    assert_eq!(fake.retrieved(), [(first.session.clone(), 500)]);
    // a hang: bounded by the client's timeout, and the run stops again
    fake.fail_retrieves(1, Failure::Hang);
    let started = std::time::Instant::now();
    assert_eq!(sweep(&shop).await, 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(fake.retrieved().len(), 2, "{:?}", fake.retrieved());
    for o in [&first, &second] {
        assert_eq!(payment_status(pool, o.payment).await, "pending");
        assert_eq!(scalar(pool, SUBS, o.order).await, 0);
    }

    // Stripe is back
    assert_eq!(sweep(&shop).await, 2);
    assert_eq!(order_status(pool, first.order).await, "fulfilled");
    assert_eq!(payment_status(pool, second.payment).await, "failed");
    assert_eq!(order_status(pool, second.order).await, "awaiting_payment");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_payment_stripe_refuses_to_show_or_that_is_held_never_blocks_the_others(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    // the oldest: Stripe refuses to show its session (a 400)
    let odd = old_order(&shop, 6308).await;
    fake.fail_retrieves(1, Failure::Status400);
    // then one paid in a currency we do not price in: held for an admin, nothing granted
    let held = old_order(&shop, 6309).await;
    fake.pay(&held.session);
    fake.edit(&held.session, |s| s["currency"] = "gbp".into());
    // and a paid one after them
    let paid = old_order(&shop, 6310).await;
    fake.pay(&paid.session);

    assert_eq!(sweep(&shop).await, 1, "the last one is fulfilled");
    let read: Vec<u16> = fake.retrieved().into_iter().map(|(_, s)| s).collect();
    assert_eq!(read, [400, 200, 200]);
    assert_eq!(order_status(pool, paid.order).await, "fulfilled");
    assert_eq!(payment_status(pool, odd.payment).await, "pending", "the odd one waits");
    assert_eq!(payment_status(pool, held.payment).await, "pending");
    let flagged: Option<String> =
        sqlx::query_scalar("SELECT failure_reason FROM payments WHERE id = $1 AND flagged_at IS NOT NULL")
            .bind(held.payment)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(flagged.as_deref().is_some_and(|r| r.contains("not an amount we price in")), "{flagged:?}");
    assert_eq!(scalar(pool, SUBS, held.order).await, 0);

    // the next run asks again about the odd one only (the held one waits for an admin)
    assert_eq!(sweep(&shop).await, 0);
    assert_eq!(fake.retrieved()[3..], [(odd.session.clone(), 200)]);
    assert_eq!(payment_status(pool, odd.payment).await, "pending", "still open at Stripe");
}
