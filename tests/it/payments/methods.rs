//! Which methods a customer is offered, and how the admins hear of online payments.

use sqlx::PgPool;
use vpnshop::db::payments::ProcessorRefs;
use vpnshop::domain::Currency;
use vpnshop::services::payments::online::{self, Report, Settled};

use super::*;

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn card_to_card_is_offered_only_in_the_currencies_its_card_takes(pool: PgPool) {
    let shop = card_shop_with(pool, |s| s.payments.card.currencies = vec!["IRR".into()]).await;
    let (order, summary) = walk_to_summary(&shop, &customer(4601)).await;
    assert!(
        !summary.buttons.iter().any(|(_, d)| d == &format!("p:{order}:card")),
        "a USD customer is not offered a card that takes rials: {summary:#?}"
    );
    assert!(summary.text.contains("not available"), "{}", summary.text);

    let fa = user(4602, "fa");
    let (order, summary) = walk_to_summary(&shop, &fa).await;
    let pay = crate::bot::press(&shop, &fa, &summary.data(&format!("p:{order}:card"))).await;
    assert!(pay.text.contains(crate::bot::CARD), "{}", pay.text);
}

/// A pending online payment of a fresh order of this customer (as a gateway checkout leaves it).
async fn online_payment(shop: &BotShop, u: &TgUser) -> (i64, i64, i64) {
    let pool = &shop.app.state.pool;
    let (order, _) = walk_to_summary(shop, u).await;
    let (amount,): (i64,) = sqlx::query_as(
        "UPDATE orders SET status = 'awaiting_payment', amount_minor = 299, currency = 'USD',
                plan_id = (SELECT id FROM plans WHERE location_code = 'de' AND NOT is_trial LIMIT 1)
          WHERE id = $1 RETURNING amount_minor",
    )
    .bind(order)
    .fetch_one(pool)
    .await
    .unwrap();
    let payment: i64 = sqlx::query_scalar(
        "INSERT INTO payments (order_id, method, amount_minor, currency) VALUES ($1, 'stripe', $2, 'USD') RETURNING id",
    )
    .bind(order)
    .bind(amount)
    .fetch_one(pool)
    .await
    .unwrap();
    (order, payment, amount)
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_admins_hear_of_online_payments_in_one_digest_and_each_once(pool: PgPool) {
    let shop = card_shop(pool).await;
    let (state, pool) = (&shop.app.state, &shop.app.state.pool);
    let mut paid = Vec::new();
    for id in [4611, 4612, 4613] {
        let (_, payment, amount) = online_payment(&shop, &customer(id)).await;
        paid.push((payment, amount));
    }
    let before = texts_to(&shop, ADMIN).len();
    for (payment, amount) in &paid {
        let report = Report::Paid { amount_minor: *amount, currency: Currency::Usd, refs: ProcessorRefs::default() };
        assert_eq!(online::settle(pool, &state.settings, *payment, &report).await.unwrap(), Settled::Fulfilled);
        // the same report again changes nothing
        assert_eq!(online::settle(pool, &state.settings, *payment, &report).await.unwrap(), Settled::Unchanged);
    }
    let digest = wait_text(&shop, ADMIN, "Online payments received").await;
    for (payment, _) in &paid {
        assert!(digest.contains(&format!("payment #{payment}: $2.99")), "{digest}");
    }
    // and nothing more: every payment announced once
    let (queued,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM payments WHERE status = 'succeeded' AND announced_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(queued, 0);
    let digests = texts_to(&shop, ADMIN)[before..].iter().filter(|t| t.contains("Online payments received")).count();
    assert_eq!(digests, 1, "one message for the three");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn money_for_an_order_that_cannot_take_it_is_held_for_an_admin_and_grants_nothing(pool: PgPool) {
    let shop = card_shop(pool).await;
    let (state, pool) = (&shop.app.state, &shop.app.state.pool);
    let u = customer(4621);
    crate::bot::command(&shop, &u, "/start").await;
    // a renewal whose subscription was revoked while the customer was on the payment page
    let sub = crate::bot::subscription(pool, u.id, "revoked", 1, false).await;
    let (order,): (i64,) = sqlx::query_as(
        "INSERT INTO orders (user_id, kind, subscription_id, plan_id, amount_minor, currency, status)
         SELECT user_id, 'renewal', id, plan_id, 299, 'USD', 'awaiting_payment' FROM subscriptions WHERE id = $1
         RETURNING id",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .unwrap();
    let payment: i64 = sqlx::query_scalar(
        "INSERT INTO payments (order_id, method, amount_minor, currency) VALUES ($1, 'stripe', 299, 'USD') RETURNING id",
    )
    .bind(order)
    .fetch_one(pool)
    .await
    .unwrap();
    let report = Report::Paid { amount_minor: 299, currency: Currency::Usd, refs: ProcessorRefs::default() };
    let settled = online::settle(pool, &state.settings, payment, &report).await.unwrap();
    assert!(matches!(settled, Settled::Flagged(ref why) if why.contains("cannot be renewed")), "{settled:?}");
    assert_eq!(payment_status(pool, payment).await, "pending", "not taken as done");
    let (status, flagged): (String, bool) = sqlx::query_as(
        "SELECT (SELECT status FROM orders WHERE id = $1), (SELECT flagged_at IS NOT NULL FROM payments WHERE id = $2)",
    )
    .bind(order)
    .bind(payment)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), flagged), ("awaiting_payment", true));
    wait_text(&shop, ADMIN, &format!("Payment #{payment} (stripe) was paid but not fulfilled")).await;
    // the same report again: still held, the admins told once
    online::settle(pool, &state.settings, payment, &report).await.unwrap();
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM job_keys WHERE key = $1")
        .bind(format!("alert:flagged:{payment}"))
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(alerts, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_order_with_an_open_payment_page_can_be_cancelled_and_late_money_still_counts(pool: PgPool) {
    let shop = card_shop(pool).await;
    let (state, pool) = (&shop.app.state, &shop.app.state.pool);
    let u = customer(4631);
    let (order, payment, amount) = online_payment(&shop, &u).await;
    let user_id: i64 =
        sqlx::query_scalar("SELECT user_id FROM orders WHERE id = $1").bind(order).fetch_one(pool).await.unwrap();
    let cancelled = vpnshop::services::orders::cancel(pool, user_id, order).await.unwrap();
    assert_eq!(cancelled, vpnshop::services::orders::Cancel::Cancelled, "an open payment page does not hold the order");
    assert_eq!(crate::bot::order_row(pool, order).await.0, "cancelled");
    assert_eq!(payment_status(pool, payment).await, "failed");
    // the customer paid on the page anyway: they get what they paid for
    let report = Report::Paid { amount_minor: amount, currency: Currency::Usd, refs: ProcessorRefs::default() };
    assert_eq!(online::settle(pool, &state.settings, payment, &report).await.unwrap(), Settled::Fulfilled);
    assert_eq!(crate::bot::order_row(pool, order).await.0, "fulfilled");
}
