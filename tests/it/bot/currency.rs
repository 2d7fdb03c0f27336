//! The currency is the customer's, fixed when they are first met: switching the bot's language changes the words,
//! not the prices; a plan without a price in that currency is converted through the catalogue's rates.

use sqlx::PgPool;

use super::{bot_shop, order_row, press, user, walk_to_summary};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn switching_the_language_does_not_change_the_currency(pool: PgPool) {
    let shop = bot_shop(pool).await;
    // met in Persian: prices in Toman, also after switching to English
    let fa = user(81, "fa");
    super::command(&shop, &fa, "/start").await;
    press(&shop, &fa, "lg").await;
    let menu = press(&shop, &fa, "lg:en").await;
    assert!(menu.text.contains("Hi Sam"), "the bot speaks English now: {}", menu.text);
    let (order, summary) = walk_to_summary(&shop, &fa).await;
    assert!(summary.text.contains("270,000 Toman"), "still Toman, written in English: {}", summary.text);
    press(&shop, &fa, &format!("p:{order}:card")).await;
    let row = order_row(&shop.app.state.pool, order).await;
    assert_eq!(row, ("awaiting_payment".into(), Some(2_700_000), Some("IRR".into())));

    // met in English: dollars, also after switching to Persian
    let en = user(82, "en");
    super::command(&shop, &en, "/start").await;
    press(&shop, &en, "lg").await;
    press(&shop, &en, "lg:fa").await;
    let (order, summary) = walk_to_summary(&shop, &en).await;
    assert!(summary.text.contains("۲٫۹۹ دلار"), "still dollars, written in Persian: {}", summary.text);
    press(&shop, &en, &format!("p:{order}:card")).await;
    let row = order_row(&shop.app.state.pool, order).await;
    assert_eq!(row, ("awaiting_payment".into(), Some(299), Some("USD".into())));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_plan_without_a_price_in_the_customers_currency_is_converted_through_the_rates(pool: PgPool) {
    let shop = bot_shop(pool).await;
    sqlx::query("DELETE FROM plan_prices WHERE currency = 'IRR'").execute(&shop.app.state.pool).await.unwrap();
    let fa = user(83, "fa");
    let (order, summary) = walk_to_summary(&shop, &fa).await;
    // $2.99 at 1,050,000 rials per dollar (config/plans.toml): 3,139,500 rials, shown as 313,950 Toman
    assert!(summary.text.contains("۳۱۳٬۹۵۰ تومان"), "{}", summary.text);
    press(&shop, &fa, &format!("p:{order}:card")).await;
    let row = order_row(&shop.app.state.pool, order).await;
    assert_eq!(row, ("awaiting_payment".into(), Some(3_139_500), Some("IRR".into())));
}
