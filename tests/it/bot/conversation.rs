//! The shop conversation: menu → location → duration → devices → data → summary → payment method, in
//! English, Persian and Russian; Back; resume after /start and after a restart; stale buttons.

use sqlx::PgPool;

use super::{BotShop, CARD, Screen, bot_settings, bot_shop, next_id, press, user};
use crate::helpers::spawn_app_with;
use crate::support::{callback_update, command_update};

async fn walk_to_payment(pool: PgPool, lang: &str, place: &str, price: &str) {
    let shop = bot_shop(pool).await;
    let u = user(4242, lang);
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    let menu = shop.screen(&u);
    assert!(menu.text.contains("Sam"), "{}", menu.text);
    let locations = press(&shop, &u, &menu.data("b")).await;
    let de = locations.data("l:");
    assert!(locations.label_of(&de).contains(place), "{locations:#?}");
    let order: i64 = de[2..de.rfind(':').unwrap()].parse().unwrap();
    let durations = press(&shop, &u, &de).await;
    let devices = press(&shop, &u, &durations.data(&format!("d:{order}:30"))).await;
    let data = press(&shop, &u, &devices.data(&format!("s:{order}:1"))).await;
    let fifty = data.data(&format!("dm:{order}:51200"));
    assert!(data.label_of(&fifty).contains(price), "the price is shown per data option: {data:#?}");
    let summary = press(&shop, &u, &fifty).await;
    assert!(summary.text.contains(price), "{}", summary.text);
    let pay = press(&shop, &u, &summary.data(&format!("p:{order}:card"))).await;
    assert!(pay.text.contains(CARD) && pay.text.contains(price), "{}", pay.text);

    let (status, amount, currency): (String, i64, String) =
        sqlx::query_as("SELECT status, amount_minor, currency FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&shop.app.state.pool)
            .await
            .unwrap();
    assert_eq!(status, "awaiting_payment");
    let expected = if lang == "fa" { ("IRR", 2_700_000) } else { ("USD", 299) };
    assert_eq!((currency.as_str(), amount), expected, "the price snapshot");
    let callbacks = shop.tg.calls_of("answerCallbackQuery").len();
    assert_eq!(callbacks, 6, "every button press was answered");
    for call in shop.tg.calls() {
        for (_, data) in Screen::from(&call).buttons {
            assert!(data.len() <= 64, "{data}");
        }
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_english_customer_walks_to_the_payment_step(pool: PgPool) {
    walk_to_payment(pool, "en-US", "Germany", "$2.99").await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_persian_customer_walks_to_the_payment_step_in_toman(pool: PgPool) {
    walk_to_payment(pool, "fa", "آلمان", "۲۷۰٬۰۰۰ تومان").await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_russian_customer_walks_to_the_payment_step(pool: PgPool) {
    walk_to_payment(pool, "ru", "Германия", "2,99\u{a0}$").await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn back_goes_one_step_back(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(7, "en");
    shop.deliver(&command_update(next_id(), &u, "/buy")).await;
    let locations = shop.screen(&u);
    let de = locations.data("l:");
    let order = de[2..de.rfind(':').unwrap()].to_owned();
    let durations = press(&shop, &u, &de).await;
    let devices = press(&shop, &u, &durations.data(&format!("d:{order}:90"))).await;
    assert!(devices.text.contains("90 days"), "{}", devices.text);
    let back = press(&shop, &u, &format!("k:{order}")).await;
    assert!(back.buttons.iter().any(|(_, d)| d.starts_with(&format!("d:{order}:"))), "back at durations: {back:#?}");
    assert_eq!(shop.tg.calls_of("editMessageText").len(), 3, "screens are edited in place, not sent anew");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn start_offers_to_resume_an_unfinished_purchase(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = user(8, "en");
    shop.deliver(&command_update(next_id(), &u, "/buy")).await;
    let de = shop.screen(&u).data("l:");
    let order = de[2..de.rfind(':').unwrap()].to_owned();
    press(&shop, &u, &de).await;
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    let offer = shop.screen(&u);
    assert!(offer.text.contains("Germany"), "{}", offer.text);
    let resumed = press(&shop, &u, &offer.data(&format!("r:{order}"))).await;
    assert!(resumed.buttons.iter().any(|(_, d)| d.starts_with(&format!("d:{order}:"))), "{resumed:#?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_unfinished_purchase_survives_a_restart_of_the_service(pool: PgPool) {
    let shop = bot_shop(pool.clone()).await;
    let u = user(9, "ru");
    shop.deliver(&command_update(next_id(), &u, "/buy")).await;
    let de = shop.screen(&u).data("l:");
    let order = de[2..de.rfind(':').unwrap()].to_owned();
    let durations = press(&shop, &u, &de).await;
    press(&shop, &u, &durations.data(&format!("d:{order}:180"))).await;
    let BotShop { app, tg } = shop;
    app.stop().await.unwrap();

    // a new process: new connections to the same database
    let pool = PgPool::connect_with((*pool.connect_options()).clone()).await.unwrap();
    let app = spawn_app_with(pool, |s| bot_settings(s, &tg)).await;
    let shop = BotShop { app, tg };
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    let offer = shop.screen(&u);
    assert!(offer.text.contains("Германия") && offer.text.contains("180"), "{}", offer.text);
    let resumed = press(&shop, &u, &offer.data(&format!("r:{order}"))).await;
    assert!(resumed.buttons.iter().any(|(_, d)| d.starts_with(&format!("s:{order}:"))), "at devices: {resumed:#?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn stale_foreign_and_junk_buttons_get_a_friendly_answer(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let (u, other) = (user(10, "en"), user(11, "en"));
    shop.deliver(&command_update(next_id(), &u, "/buy")).await;
    let old = shop.screen(&u).data("l:");
    shop.deliver(&command_update(next_id(), &u, "/buy")).await; // starts over: the old buttons are stale
    let current = shop.screen(&u).data("l:");
    assert_ne!(current, old);
    let msg = shop.last_message_id(&u);
    for data in [old.as_str(), "zzz", "l:1:de:x"] {
        shop.deliver(&callback_update(next_id(), &u, msg, data)).await;
        let answer = shop.tg.calls_of("answerCallbackQuery").pop().unwrap();
        assert!(answer.params["text"].as_str().unwrap_or("").contains("out of date"), "{data}: {:?}", answer.params);
    }
    // another customer pressing a forwarded button of this purchase
    shop.deliver(&command_update(next_id(), &other, "/start")).await;
    shop.deliver(&callback_update(next_id(), &other, shop.last_message_id(&other), &current)).await;
    let answer = shop.tg.calls_of("answerCallbackQuery").pop().unwrap();
    assert!(answer.params["text"].as_str().unwrap_or("").contains("out of date"), "{:?}", answer.params);
    let (drafts,): (i64,) = sqlx::query_as("SELECT count(*) FROM orders WHERE status = 'draft'")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    assert_eq!(drafts, 1, "nothing changed for the other customer");
}
