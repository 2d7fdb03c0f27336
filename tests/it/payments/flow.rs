//! The card payment walk through the bot.

use sqlx::PgPool;

use super::*;

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_receipt_is_reviewed_by_the_admins_and_accepting_it_fulfils_the_order_once(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4101);
    let (order, pay) = order_by_card(&shop, &u).await;
    assert!(pay.text.contains(crate::bot::CARD) && pay.text.contains("Pay by"), "{}", pay.text);

    let answer = send_receipt(&shop, &u, "rcpt-1", "uniq-1", jpeg("one")).await;
    assert!(answer.contains("under review"), "{answer}");
    let payment = payment_of(pool, order).await;
    assert_eq!(payment_status(pool, payment).await, "under_review");

    // both admins get the receipt with Accept / Reject
    let posted = wait_calls_to(&shop, "sendPhoto", ADMIN, 1).await;
    wait_calls_to(&shop, "sendPhoto", ADMIN2, 1).await;
    assert!(buttons(&posted[0]).contains(&format!("ra:{payment}")), "{:?}", posted[0].params);
    let message_id = shop.tg.messages_to(ADMIN).last().unwrap().message_id;
    admin_press(&shop, &admin(ADMIN), message_id, &format!("ra:{payment}")).await;
    assert_eq!(payment_status(pool, payment).await, "accepted");
    let subs: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE order_id = $1")
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(subs, 1);
    wait_text(&shop, u.id, "accepted").await;
    // every admin's copy shows the decision
    let edited = wait_calls_to(&shop, "editMessageCaption", ADMIN2, 1).await;
    assert!(edited[0].params["caption"].as_str().unwrap().contains("accepted by @ada"), "{:?}", edited[0].params);
}
