//! Renewals and top-ups: refused at once (with the reason) when the subscription cannot take them, so nobody
//! pays for what would be refused; a plan taken off sale is renewed at the price paid for it.

use sqlx::PgPool;

use super::{bot_shop, drafts, order_row, press, subscription, user};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_revoked_subscription_is_neither_renewed_nor_topped_up(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(91, "en");
    super::command(&shop, &u, "/start").await;
    let sub = subscription(&shop.app.state.pool, u.id, "revoked", 1, false).await;
    for button in [format!("rn:{sub}"), format!("tu:{sub}")] {
        let screen = press(&shop, &u, &button).await;
        assert!(screen.text.contains("ended by the shop"), "{button}: {}", screen.text);
        assert!(screen.text.contains("@vpnshop_support"), "{}", screen.text);
        assert_eq!(drafts(&shop.app.state.pool).await, 0, "{button}: no purchase started");
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_expired_subscription_is_renewed_but_not_topped_up(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(92, "en");
    super::command(&shop, &u, "/start").await;
    let sub = subscription(&shop.app.state.pool, u.id, "expired", 1, false).await;
    let screen = press(&shop, &u, &format!("tu:{sub}")).await;
    assert!(screen.text.contains("renew it first"), "{}", screen.text);
    assert_eq!(drafts(&shop.app.state.pool).await, 0);
    let summary = press(&shop, &u, &screen.data(&format!("rn:{sub}"))).await;
    assert!(summary.text.contains("Renewal") && summary.text.contains("$2.99"), "{}", summary.text);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_pending_subscription_cannot_be_renewed_yet(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(93, "ru");
    super::command(&shop, &u, "/start").await;
    let sub = subscription(&shop.app.state.pool, u.id, "pending", 1, false).await;
    let screen = press(&shop, &u, &format!("rn:{sub}")).await;
    assert!(screen.text.contains("ещё настраивается"), "in the customer's language: {}", screen.text);
    assert_eq!(drafts(&shop.app.state.pool).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_subscription_that_ends_before_payment_is_not_submitted(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(94, "en");
    super::command(&shop, &u, "/start").await;
    let sub = subscription(&shop.app.state.pool, u.id, "active", 1, false).await;
    let summary = press(&shop, &u, &format!("rn:{sub}")).await;
    let pay = summary.data("p:");
    let order: i64 = pay[2..pay.rfind(':').unwrap()].parse().unwrap();
    sqlx::query("UPDATE subscriptions SET status = 'revoked' WHERE id = $1")
        .bind(sub)
        .execute(&shop.app.state.pool)
        .await
        .unwrap();
    let screen = press(&shop, &u, &pay).await;
    assert!(screen.text.contains("ended by the shop"), "{}", screen.text);
    assert_eq!(order_row(&shop.app.state.pool, order).await.0, "draft", "nothing to pay");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_plan_taken_off_sale_is_renewed_at_the_price_paid_for_it(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let db = &shop.app.state.pool;
    let u = user(95, "en");
    super::command(&shop, &u, "/start").await;
    let sub = subscription(db, u.id, "active", 1, false).await;
    // it was bought for $7.77; the plan is no longer sold
    sqlx::query("UPDATE orders SET amount_minor = 777 WHERE id = (SELECT order_id FROM subscriptions WHERE id = $1)")
        .bind(sub)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("UPDATE plans SET active = FALSE WHERE id = (SELECT plan_id FROM subscriptions WHERE id = $1)")
        .bind(sub)
        .execute(db)
        .await
        .unwrap();
    let summary = press(&shop, &u, &format!("rn:{sub}")).await;
    assert!(summary.text.contains("$7.77"), "{}", summary.text);
    let pay = summary.data("p:");
    let order: i64 = pay[2..pay.rfind(':').unwrap()].parse().unwrap();
    press(&shop, &u, &pay).await;
    assert_eq!(order_row(db, order).await, ("awaiting_payment".into(), Some(777), Some("USD".into())));
}
