//! Renewals and data top-ups paid by card, from the bot's Renew / Buy more data buttons: accepting the receipt
//! extends the subscription once (from the later of now and its end) or raises its cap once, brings a limited or
//! expired one back, and a second Accept (button or command) changes nothing and says who accepted it.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

use super::*;
use crate::bot::{command, last_toast, order_row, press, subscription};

const GB: i64 = 1 << 30;

/// A subscription's (status, end, data cap).
async fn sub_row(pool: &PgPool, sub: i64) -> (String, DateTime<Utc>, Option<i64>) {
    sqlx::query_as("SELECT status, expires_at, data_cap_bytes FROM subscriptions WHERE id = $1")
        .bind(sub)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()").fetch_one(pool).await.unwrap()
}

/// Pays the summary's order by card and sends a receipt; returns the order and its payment under review.
async fn pay_by_card(shop: &BotShop, u: &TgUser, summary: &Screen, seed: &str) -> (i64, i64) {
    let pay = summary.data("p:");
    let order: i64 = pay[2..pay.rfind(':').unwrap()].parse().unwrap();
    let details = press(shop, u, &format!("p:{order}:card")).await;
    assert!(details.text.contains(crate::bot::CARD), "{}", details.text);
    let answer = send_receipt(shop, u, &format!("rcpt-{seed}"), &format!("uniq-{seed}"), jpeg(seed)).await;
    assert!(answer.contains("under review"), "{answer}");
    (order, payment_of(&shop.app.state.pool, order).await)
}

/// A second acceptance, by button and by command, is refused with who accepted it.
async fn accept_again(shop: &BotShop, payment: i64, by: i64) {
    let copy = wait_review(shop, ADMIN2, payment).await;
    admin_press(shop, &admin(ADMIN2), copy, &format!("ra:{payment}")).await;
    let already = format!("Payment #{payment} is already accepted by @ada{by} at ");
    assert!(last_toast(shop).starts_with(&already), "{}", last_toast(shop));
    let said = says(shop, &admin(ADMIN), &format!("/accept {payment}")).await;
    assert!(said.len() == 1 && said[0].starts_with(&already), "{said:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_renewal_paid_by_card_extends_the_subscription_from_its_end_once(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4401);
    command(&shop, &u, "/start").await;
    let sub = subscription(pool, u.id, "active", 1, false).await;
    let (_, end, cap) = sub_row(pool, sub).await;

    let summary = press(&shop, &u, &format!("rn:{sub}")).await;
    assert!(summary.text.contains("Renewal"), "{}", summary.text);
    let (order, payment) = pay_by_card(&shop, &u, &summary, "renew").await;
    assert_eq!(sub_row(pool, sub).await, ("active".into(), end, cap), "nothing before the decision");
    let copy = wait_review(&shop, ADMIN, payment).await;
    assert!(shown(&shop, ADMIN, copy).contains("renewal"), "the reviewer sees what it pays for");
    admin_press(&shop, &admin(ADMIN), copy, &format!("ra:{payment}")).await;

    let renewed = ("active".to_owned(), end + Duration::days(30), cap.map(|c| c + 50 * GB));
    assert_eq!(sub_row(pool, sub).await, renewed, "30 days after the old end, and the period's data");
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
    let count = "SELECT count(*) FROM subscriptions WHERE user_id = (SELECT user_id FROM orders WHERE id = $1)";
    assert_eq!(scalar(pool, count, order).await, 1, "the same subscription, no new one");
    let notice = wait_text(&shop, u.id, "is renewed until").await;
    assert!(notice.contains(&format!("order <b>#{order}</b>")), "{notice}");

    accept_again(&shop, payment, ADMIN).await;
    assert_eq!(sub_row(pool, sub).await, renewed, "extended once");
    assert_eq!(scalar(pool, count, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_expired_subscription_renewed_by_card_runs_again_from_now(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4402);
    command(&shop, &u, "/start").await;
    let sub = subscription(pool, u.id, "expired", 1, false).await;
    sqlx::query(
        "UPDATE subscriptions SET starts_at = now() - interval '32 days', expires_at = now() - interval '2 days'
          WHERE id = $1",
    )
    .bind(sub)
    .execute(pool)
    .await
    .unwrap();
    // its client was taken off the node when it expired
    sqlx::query("UPDATE clients SET desired = 'absent', node_state = 'absent' WHERE subscription_id = $1")
        .bind(sub)
        .execute(pool)
        .await
        .unwrap();

    let summary = press(&shop, &u, &format!("rn:{sub}")).await;
    let (_, payment) = pay_by_card(&shop, &u, &summary, "expired").await;
    let copy = wait_review(&shop, ADMIN, payment).await;
    let before = db_now(pool).await;
    admin_press(&shop, &admin(ADMIN), copy, &format!("ra:{payment}")).await;
    let after = db_now(pool).await;

    let (status, end, _) = sub_row(pool, sub).await;
    assert_eq!(status, "active", "back in service");
    assert!(end >= before + Duration::days(30) && end <= after + Duration::days(30), "30 days from now: {end}");
    let wanted = "SELECT count(*) FROM clients WHERE subscription_id = $1 AND desired = 'present'";
    assert_eq!(scalar(pool, wanted, sub).await, 1, "its client is wanted on the node again");
    wait_text(&shop, u.id, "is renewed until").await;

    accept_again(&shop, payment, ADMIN).await;
    assert_eq!(sub_row(pool, sub).await.1, end, "extended once");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_top_up_paid_by_card_raises_the_cap_once_and_lifts_the_limit(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4403);
    command(&shop, &u, "/start").await;
    let sub = subscription(pool, u.id, "limited", 1, false).await;
    // it used its 50 GB
    sqlx::query(
        "UPDATE traffic SET down_bytes = $2 WHERE client_id IN (SELECT id FROM clients WHERE subscription_id = $1)",
    )
    .bind(sub)
    .bind(50 * GB)
    .execute(pool)
    .await
    .unwrap();
    let (_, end, cap) = sub_row(pool, sub).await;
    assert_eq!(cap, Some(50 * GB));

    let data = press(&shop, &u, &format!("tu:{sub}")).await;
    let tier = data.data(&format!("dm:{}:102400", {
        let d = data.data("dm:");
        d[3..d.rfind(':').unwrap()].to_owned()
    }));
    let summary = press(&shop, &u, &tier).await;
    let (order, payment) = pay_by_card(&shop, &u, &summary, "topup").await;
    wait_review(&shop, ADMIN2, payment).await;
    let said = says(&shop, &admin(ADMIN2), &format!("/accept {payment}")).await;
    assert_eq!(said, [format!("✅ Payment #{payment} accepted.")]);

    let topped = ("active".to_owned(), end, Some(150 * GB));
    assert_eq!(sub_row(pool, sub).await, topped, "100 GB more, the same end, and in service again");
    let granted: Option<i64> =
        sqlx::query_scalar("SELECT granted_bytes FROM orders WHERE id = $1").bind(order).fetch_one(pool).await.unwrap();
    assert_eq!(granted, Some(100 * GB));
    let notice = wait_text(&shop, u.id, "added to").await;
    assert!(notice.contains("100 GB"), "{notice}");

    let copy = wait_review(&shop, ADMIN, payment).await;
    admin_press(&shop, &admin(ADMIN), copy, &format!("ra:{payment}")).await;
    let already = format!("Payment #{payment} is already accepted by @ada{ADMIN2} at ");
    assert!(last_toast(&shop).starts_with(&already), "{}", last_toast(&shop));
    assert_eq!(sub_row(pool, sub).await, topped, "raised once");
}
