//! The card payment walk through the bot: receipt → review by the admins → accept (a working config on a real
//! node) or reject (the customer told why, in their language, and able to send a new receipt); and cancelling an
//! order, allowed until its receipt is being checked.

use sqlx::PgPool;
use vpnshop::domain::status::SubscriptionStatus;

use super::*;
use crate::bot::{bot_settings, last_toast, order_row, press, user};
use crate::helpers::spawn_app_with;
use crate::provisioning::{register_node, wait_status};
use crate::support::{Origin, TestNode, TestV2rayClient, message_update, node_tools_present};

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

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_accepted_card_payment_gives_a_config_that_works_on_a_real_node(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let origin = Origin::start().await;
    let tg = crate::support::FakeTelegram::start().await;
    let key = node.key_path();
    let app = spawn_app_with(pool, |s| {
        bot_settings(s, &tg);
        card_settings(s);
        s.provision.allow_private_destinations.push(origin.allowance());
        s.provision.ssh_key_path = Some(key);
    })
    .await;
    vpnshop::services::users::add_admin(&app.state.pool, "second", Some(ADMIN2), "admin").await.unwrap();
    register_node(&app.state.pool, &node).await;
    let shop = BotShop { app, tg };
    let pool = &shop.app.state.pool;
    let u = customer(4102);

    let (order, _) = order_by_card(&shop, &u).await;
    let answer = send_receipt(&shop, &u, "rcpt-node", "uniq-node", jpeg("node")).await;
    assert!(answer.contains(&format!("order <b>#{order}</b> is under review")), "{answer}");
    let payment = payment_of(pool, order).await;
    let first = wait_review(&shop, ADMIN, payment).await;
    let second = wait_review(&shop, ADMIN2, payment).await;
    for (chat, message) in [(ADMIN, first), (ADMIN2, second)] {
        let caption = shown(&shop, chat, message);
        assert!(caption.contains("under review") && caption.contains("$2.99"), "{caption}");
        assert!(caption.contains("@sam4102"), "the customer is named: {caption}");
        assert_eq!(buttons_now(&shop, chat, message), [format!("ra:{payment}"), format!("rr:{payment}")]);
    }
    let subs = "SELECT count(*) FROM subscriptions WHERE order_id = $1";
    assert_eq!(scalar(pool, subs, order).await, 0, "nothing before the decision");

    admin_press(&shop, &admin(ADMIN), first, &format!("ra:{payment}")).await;
    assert_eq!(payment_status(pool, payment).await, "accepted");
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
    let sub = scalar(pool, "SELECT id FROM subscriptions WHERE order_id = $1", order).await;
    assert_eq!(scalar(pool, subs, order).await, 1);
    let place =
        "SELECT count(*) FROM jobs WHERE kind = 'subscription.place' AND payload->>'subscription_id' = $1::text";
    assert_eq!(scalar(pool, place, sub).await, 1, "one placement");
    let accepted = wait_text(&shop, u.id, "accepted").await;
    assert!(accepted.contains(&format!("order <b>#{order}</b> accepted")), "{accepted}");

    // the link from the "ready" message carries traffic through the real node
    wait_status(pool, sub, SubscriptionStatus::Active).await;
    let ready = wait_text(&shop, u.id, "is ready").await;
    let start = ready.find("vmess://").expect("a vmess link in the ready message");
    let link: String = ready[start..].chars().take_while(|c| !c.is_whitespace() && *c != '<').collect();
    let client = TestV2rayClient::start(link.as_str()).await;
    assert_eq!(client.fetch(&origin.url("/")).await.unwrap(), crate::support::GREETING);

    // the second admin's late Accept changes nothing and says who decided
    admin_press(&shop, &admin(ADMIN2), second, &format!("ra:{payment}")).await;
    let late = last_toast(&shop);
    assert!(late.contains(&format!("Payment #{payment} is already accepted by @ada{ADMIN} at")), "{late}");
    assert_eq!(scalar(pool, subs, order).await, 1);
    assert_eq!(scalar(pool, place, sub).await, 1, "still one placement");
    let readies = texts_to(&shop, u.id).iter().filter(|t| t.contains("is ready")).count();
    assert_eq!(readies, 1, "one ready message");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_rejected_receipt_is_explained_and_a_new_one_can_pay_the_same_order(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = user(4103, "ru");
    let (order, _) = order_by_card(&shop, &u).await;
    send_receipt(&shop, &u, "rcpt-r1", "uniq-r1", jpeg("blurry")).await;
    let first = payment_of(pool, order).await;
    let copy = wait_review(&shop, ADMIN, first).await;
    let other_copy = wait_review(&shop, ADMIN2, first).await;

    // Reject shows the reasons on that copy; nothing is decided yet
    admin_press(&shop, &admin(ADMIN), copy, &format!("rr:{first}")).await;
    let reasons = buttons_now(&shop, ADMIN, copy);
    assert!(reasons.contains(&format!("rx:{first}:wrong_amount")) && reasons.contains(&format!("rb:{first}")));
    assert!(!reasons.contains(&format!("ra:{first}")), "{reasons:?}");
    assert_eq!(payment_status(pool, first).await, "under_review");
    admin_press(&shop, &admin(ADMIN), copy, &format!("rx:{first}:wrong_amount")).await;
    assert_eq!(payment_status(pool, first).await, "rejected");
    let (code, decided_by): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT reason_code, decided_by FROM payments WHERE id = $1")
            .bind(first)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((code.as_deref(), decided_by), (Some("wrong_amount"), Some(format!("@ada{ADMIN}"))));

    // the customer is told why, in Russian, with the way back to the payment details
    let notice = wait_message(&shop, u.id, "не принят").await;
    let text = notice.params["text"].as_str().unwrap();
    assert!(text.contains("неверная сумма") && !text.contains("wrong"), "{text}");
    assert_eq!(buttons(&notice), [format!("o:{order}")]);
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");
    assert_eq!(scalar(pool, "SELECT count(*) FROM subscriptions WHERE order_id = $1", order).await, 0);
    // both copies now say who rejected it and why, and offer nothing more
    wait_message(&shop, ADMIN2, "rejected by").await;
    for (chat, message) in [(ADMIN, copy), (ADMIN2, other_copy)] {
        let caption = shown(&shop, chat, message);
        assert!(caption.contains(&format!("rejected by @ada{ADMIN}")) && caption.contains("the amount is wrong"));
        assert!(buttons_now(&shop, chat, message).is_empty(), "{chat}: no buttons once decided");
    }

    // a new receipt for the same order goes to review and, accepted, pays it
    let answer = send_receipt(&shop, &u, "rcpt-r2", "uniq-r2", jpeg("sharp")).await;
    assert!(answer.contains("на проверке"), "{answer}");
    let second = payment_of(pool, order).await;
    assert_ne!(second, first);
    let copy = wait_review(&shop, ADMIN2, second).await;
    admin_press(&shop, &admin(ADMIN2), copy, &format!("ra:{second}")).await;
    assert_eq!(payment_status(pool, second).await, "accepted");
    assert_eq!(payment_status(pool, first).await, "rejected", "the first stays rejected");
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
    assert_eq!(scalar(pool, "SELECT count(*) FROM subscriptions WHERE order_id = $1", order).await, 1);
    wait_message(&shop, u.id, "подтверждена").await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_receipt_rejected_after_the_deadline_can_still_be_replaced(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4106);
    let (order, _) = order_by_card(&shop, &u).await;
    send_receipt(&shop, &u, "rcpt-d1", "uniq-d1", jpeg("in time")).await;
    let first = payment_of(pool, order).await;
    // the review outlasts the time to pay; the order waits for it
    sqlx::query("UPDATE orders SET pay_by = now() - interval '1 minute' WHERE id = $1")
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
    vpnshop::services::payments::expire_unpaid(pool).await.unwrap();
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");
    let copy = wait_review(&shop, ADMIN, first).await;
    admin_press(&shop, &admin(ADMIN), copy, &format!("rx:{first}:unreadable")).await;
    let notice = wait_message(&shop, u.id, "was not accepted").await;
    assert!(notice.params["text"].as_str().unwrap().contains("send a new receipt for this order"));

    // asked for a new receipt, the customer has the time to send one
    vpnshop::services::payments::expire_unpaid(pool).await.unwrap();
    let details = press(&shop, &u, &format!("o:{order}")).await;
    assert!(details.text.contains(crate::bot::CARD), "{}", details.text);
    let answer = send_receipt(&shop, &u, "rcpt-d2", "uniq-d2", jpeg("readable")).await;
    assert!(answer.contains("under review"), "{answer}");
    let second = payment_of(pool, order).await;
    assert_ne!(second, first);
    let copy = wait_review(&shop, ADMIN, second).await;
    admin_press(&shop, &admin(ADMIN), copy, &format!("ra:{second}")).await;
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_typed_reason_reaches_the_customer_verbatim(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4104);
    let (order, _) = order_by_card(&shop, &u).await;
    send_receipt(&shop, &u, "rcpt-t", "uniq-t", jpeg("typed")).await;
    let payment = payment_of(pool, order).await;
    let copy = wait_review(&shop, ADMIN, payment).await;
    admin_press(&shop, &admin(ADMIN), copy, &format!("rt:{payment}")).await;
    assert!(last_toast(&shop).contains(&format!("Send /reject {payment} followed by the reason")));

    let said = says(&shop, &admin(ADMIN), &format!("/reject {payment} sent 2.90 <not 2.99> & from a card")).await;
    assert!(said.iter().any(|t| t.contains(&format!("Payment #{payment} rejected"))), "{said:?}");
    assert_eq!(payment_status(pool, payment).await, "rejected");
    let notice = wait_message(&shop, u.id, "was not accepted").await;
    let text = notice.params["text"].as_str().unwrap();
    assert!(text.contains("not accepted: sent 2.90 &lt;not 2.99&gt; &amp; from a card\n"), "{text}");
    assert_eq!(notice.params["parse_mode"], "HTML");
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM payments WHERE id = $1").bind(payment).fetch_one(pool).await.unwrap();
    assert_eq!(reason, "sent 2.90 <not 2.99> & from a card");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_order_is_cancelled_before_its_receipt_but_not_while_the_receipt_is_checked(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4105);

    // before a receipt: Cancel order on the payment screen ends it; a receipt then has no order to pay
    let (order, pay) = order_by_card(&shop, &u).await;
    press(&shop, &u, &pay.data(&format!("x:{order}"))).await;
    assert_eq!(last_toast(&shop), "Purchase cancelled.");
    assert_eq!(order_row(pool, order).await.0, "cancelled");
    let answer = send_receipt(&shop, &u, "rcpt-c0", "uniq-c0", jpeg("late")).await;
    assert!(answer.contains("no order waiting for a card payment"), "{answer}");
    assert_eq!(scalar(pool, "SELECT count(*) FROM payments WHERE order_id = $1", order).await, 0);

    // with the receipt under review the order stays, and the customer is told why
    let (order, pay) = order_by_card(&shop, &u).await;
    let cancel = pay.data(&format!("x:{order}"));
    send_receipt(&shop, &u, "rcpt-c1", "uniq-c1", jpeg("checked")).await;
    let payment = payment_of(pool, order).await;
    let screen = press(&shop, &u, &cancel).await;
    assert!(!last_toast(&shop).contains("Purchase cancelled"));
    assert!(screen.text.contains(&format!("The receipt for order <b>#{order}</b> is being checked")), "{screen:#?}");
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");
    assert_eq!(payment_status(pool, payment).await, "under_review");
    // and the reviewers can still accept it
    let copy = wait_review(&shop, ADMIN, payment).await;
    admin_press(&shop, &admin(ADMIN), copy, &format!("ra:{payment}")).await;
    assert_eq!(order_row(pool, order).await.0, "fulfilled");

    // anything but a receipt at the payment step gets a hint with the way back to the details
    let (order, _) = order_by_card(&shop, &u).await;
    shop.deliver(&message_update(next_id(), &u, "I paid, thanks")).await;
    let hint = shop.screen(&u);
    assert!(hint.text.contains("send the receipt of your transfer as a <b>photo</b>"), "{}", hint.text);
    hint.data(&format!("o:{order}"));
}
