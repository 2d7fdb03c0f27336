//! Orders awaiting payment stay in view: /start shows their payment details with Cancel, the menu and My
//! services list them, and a second tap on the payment method shows the same payment screen.

use sqlx::PgPool;

use super::{CARD, bot_shop, command, last_toast, order_row, press, user, walk_to_summary};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn start_shows_an_order_awaiting_payment_with_its_details_and_cancel(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(101, "en");
    let (order, _) = walk_to_summary(&shop, &u).await;
    press(&shop, &u, &format!("p:{order}:card")).await;
    let start = command(&shop, &u, "/start").await;
    assert!(start.text.contains(CARD) && start.text.contains("$2.99"), "{}", start.text);
    let cancelled = press(&shop, &u, &start.data(&format!("x:{order}"))).await;
    assert_eq!(last_toast(&shop), "Purchase cancelled.");
    assert_eq!(order_row(&shop.app.state.pool, order).await.0, "cancelled");
    assert!(!cancelled.buttons.iter().any(|(_, d)| d.starts_with("o:")), "nothing awaits payment now: {cancelled:#?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_second_tap_on_the_payment_method_shows_the_same_payment_screen(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(102, "en");
    let (order, summary) = walk_to_summary(&shop, &u).await;
    let card = summary.data(&format!("p:{order}:card"));
    let first = press(&shop, &u, &card).await;
    assert!(first.text.contains(CARD), "{}", first.text);
    // the same button again (the screen had not changed on the customer's phone yet)
    press(&shop, &u, &card).await;
    assert!(!last_toast(&shop).contains("out of date"), "not treated as a stale button");
    let message = shop.tg.messages_to(u.id).last().unwrap().clone();
    assert!(message.text.unwrap_or_default().contains(CARD), "the payment details stay on screen");
    assert_eq!(order_row(&shop.app.state.pool, order).await.0, "awaiting_payment");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_menu_and_my_services_list_orders_awaiting_payment(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(103, "en");
    let (order, _) = walk_to_summary(&shop, &u).await;
    press(&shop, &u, &format!("p:{order}:card")).await;
    let menu = press(&shop, &u, "m").await;
    let listed = menu.data(&format!("o:{order}"));
    assert!(menu.label_of(&listed).contains("$2.99"), "{menu:#?}");
    let details = press(&shop, &u, &listed).await;
    assert!(details.text.contains(CARD), "{}", details.text);
    details.data(&format!("x:{order}"));
    let services = command(&shop, &u, "/services").await;
    services.data(&format!("o:{order}"));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_old_cancel_button_cancels_the_order_it_belongs_to(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(104, "en");
    let (order, summary) = walk_to_summary(&shop, &u).await;
    press(&shop, &u, &summary.data(&format!("p:{order}:card"))).await;
    // Cancel from the summary, pressed after the order was submitted
    let menu = press(&shop, &u, &format!("x:{order}")).await;
    assert_eq!(last_toast(&shop), "Purchase cancelled.");
    assert_eq!(order_row(&shop.app.state.pool, order).await.0, "cancelled");
    assert!(menu.text.contains("Hi Sam"), "{}", menu.text);
}
