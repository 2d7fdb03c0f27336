//! Reviewing in Telegram: the admin commands (/pending, /accept, /reject, /payment, /stats) and the review
//! buttons work for admins only — anyone else gets the ordinary answers and changes nothing; decided payments
//! say who decided them; every admin's copy shows the decision; an admin group takes the reviews instead.

use serde_json::{Value, json};
use sqlx::PgPool;

use super::*;
use crate::bot::{command, last_toast, press, user};

/// The admin group of these tests.
const GROUP: i64 = -100_200_300_400;

fn in_group(mut update: Value) -> Value {
    let chat = json!({"id": GROUP, "type": "supergroup", "title": "Shop reviews"});
    if update.get("message").is_some() {
        update["message"]["chat"] = chat;
    } else {
        update["callback_query"]["message"]["chat"] = chat;
        update["callback_query"]["chat_instance"] = json!("ci-group");
    }
    update
}

/// A customer's order paid by a receipt now under review; returns the payment.
async fn under_review(shop: &BotShop, u: &TgUser) -> i64 {
    let (order, _) = order_by_card(shop, u).await;
    let answer =
        send_receipt(shop, u, &format!("rcpt-{}", u.id), &format!("uniq-{}", u.id), jpeg(&u.id.to_string())).await;
    assert!(answer.contains("under review") || answer.contains("در حال بررسی"), "{answer}");
    payment_of(&shop.app.state.pool, order).await
}

/// Waits until a message in `chat` shows `needle`; returns what it shows.
async fn wait_shown(shop: &BotShop, chat: i64, message: i32, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let now = shown(shop, chat, message);
        if now.contains(needle) {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "message {message} in {chat} never showed {needle:?}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The message in `chat` with this text (not a caption) about `payment`: a copy /pending or /payment sent.
fn text_copy(shop: &BotShop, chat: i64, payment: i64) -> i32 {
    let needle = format!("Payment #{payment}</b>");
    let copies: Vec<i32> = shop
        .tg
        .messages_to(chat)
        .into_iter()
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains(&needle)))
        .map(|m| m.message_id)
        .collect();
    *copies.last().unwrap_or_else(|| panic!("no text copy of payment {payment} in {chat}"))
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn customers_get_no_admin_powers_from_commands_or_buttons(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let payer = customer(4501);
    let payment = under_review(&shop, &payer).await;
    let stranger = customer(4502);
    command(&shop, &stranger, "/start").await;

    for text in [format!("/accept {payment}"), format!("/reject {payment} no"), format!("/payment {payment}")]
        .into_iter()
        .chain(["/pending".to_owned(), "/stats".to_owned()])
    {
        let answer = admin_says(&shop, &stranger, &text).await;
        assert!(answer.starts_with("Sorry, I did not understand that."), "{text}: {answer}");
        assert!(!answer.contains("Payment #") && !answer.contains("Sales"), "{text}: {answer}");
    }
    // review buttons, by a stranger and by the payer themself
    for (who, data) in [(&stranger, format!("ra:{payment}")), (&payer, format!("rx:{payment}:wrong_amount"))] {
        press(&shop, who, &data).await;
        assert_eq!(last_toast(&shop), "This menu is out of date; here is the current one.");
    }
    assert_eq!(payment_status(pool, payment).await, "under_review");
    let decided = "SELECT count(*) FROM audit_log WHERE entity = 'payment' AND entity_id = $1::text
                     AND action <> 'payment.receipt'";
    assert_eq!(scalar(pool, decided, payment).await, 0, "nothing decided");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn commands_on_unknown_or_decided_payments_say_so(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let ada = admin(ADMIN);
    for text in ["/accept 999999", "/reject 999999 why not", "/payment 999999"] {
        assert_eq!(says(&shop, &ada, text).await, ["There is no payment #999999."], "{text}");
    }
    assert_eq!(says(&shop, &ada, "/accept").await, ["Usage: /accept &lt;payment id&gt;"]);

    let accepted = under_review(&shop, &customer(4503)).await;
    let rejected = under_review(&shop, &customer(4504)).await;
    assert_eq!(says(&shop, &ada, &format!("/accept #{accepted}")).await, [format!("✅ Payment #{accepted} accepted.")]);
    assert_eq!(says(&shop, &ada, &format!("/reject {rejected}")).await, [format!("❌ Payment #{rejected} rejected.")]);
    for (text, status) in [
        (format!("/accept {accepted}"), "accepted"),
        (format!("/reject {accepted} too late"), "accepted"),
        (format!("/accept {rejected}"), "rejected"),
    ] {
        let said = says(&shop, &admin(ADMIN2), &text).await;
        let already = format!("is already {status} by @ada{ADMIN} at ");
        assert!(said.len() == 1 && said[0].contains(&already), "{text}: {said:?}");
    }
    assert_eq!(payment_status(pool, accepted).await, "accepted");
    assert_eq!(payment_status(pool, rejected).await, "rejected");
    let reason = "SELECT count(*) FROM payments WHERE id = $1 AND reason IS NULL AND reason_code IS NULL";
    assert_eq!(scalar(pool, reason, accepted).await, 1, "the late reject left no reason behind");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn pending_lists_the_queue_oldest_first_and_its_buttons_decide(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let ada = admin(ADMIN);
    assert_eq!(says(&shop, &ada, "/pending").await, ["No receipts are waiting for review."]);
    let mut queue = vec![];
    for id in [4511, 4512, 4513] {
        queue.push(under_review(&shop, &customer(id)).await);
    }
    for &p in &queue {
        wait_review(&shop, ADMIN, p).await;
        wait_review(&shop, ADMIN2, p).await;
    }

    let said = says(&shop, &ada, "/pending").await;
    assert_eq!(said.len(), 4, "{said:#?}");
    assert_eq!(said[0], "3 waiting for review, oldest first:");
    for (text, p) in said[1..].iter().zip(&queue) {
        assert!(text.contains(&format!("Payment #{p}</b> · ⏳ under review")), "oldest first: {said:#?}");
    }
    let copies: Vec<i32> = queue.iter().map(|&p| text_copy(&shop, ADMIN, p)).collect();
    for (&copy, &p) in copies.iter().zip(&queue) {
        assert_eq!(buttons_now(&shop, ADMIN, copy), [format!("ra:{p}"), format!("rr:{p}")]);
    }

    // Accept on the middle one's copy decides it; every copy of it (both admins' photos too) shows who did
    let (first, middle) = (queue[0], queue[1]);
    admin_press(&shop, &ada, copies[1], &format!("ra:{middle}")).await;
    assert_eq!(payment_status(pool, middle).await, "accepted");
    let by = format!("accepted by @ada{ADMIN}");
    wait_shown(&shop, ADMIN, copies[1], &by).await;
    assert!(buttons_now(&shop, ADMIN, copies[1]).is_empty());
    for chat in [ADMIN, ADMIN2] {
        let photo = wait_review(&shop, chat, middle).await;
        wait_shown(&shop, chat, photo, &by).await;
        assert!(buttons_now(&shop, chat, photo).is_empty(), "{chat}: no Accept once decided");
    }

    // Reject shows the reasons, Back brings Accept / Reject back, and nothing is decided by that
    admin_press(&shop, &ada, copies[0], &format!("rr:{first}")).await;
    assert!(buttons_now(&shop, ADMIN, copies[0]).contains(&format!("rx:{first}:unreadable")));
    admin_press(&shop, &ada, copies[0], &format!("rb:{first}")).await;
    assert_eq!(buttons_now(&shop, ADMIN, copies[0]), [format!("ra:{first}"), format!("rr:{first}")]);
    assert_eq!(payment_status(pool, first).await, "under_review");

    // /payment shows one, as it stands
    let said = says(&shop, &ada, &format!("/payment {middle}")).await;
    assert!(said.len() == 1 && said[0].contains(&by), "{said:?}");
    assert!(buttons_now(&shop, ADMIN, text_copy(&shop, ADMIN, middle)).is_empty());
    let said = says(&shop, &ada, &format!("/payment {}", queue[2])).await;
    assert!(said.len() == 1 && said[0].contains("under review") && said[0].contains("@sam4513"), "{said:?}");
    assert_eq!(says(&shop, &admin(ADMIN2), "/pending").await[0], "2 waiting for review, oldest first:");
}

/// `1234567` → `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn stats_count_revenue_per_currency_orders_and_new_customers(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let ada = admin(ADMIN);
    // three $2.99 sales (today, 3 days ago, 20 days ago), one in rials today, and one receipt still waiting
    let mut sold = vec![];
    for u in [customer(4521), customer(4522), customer(4523), user(4524, "fa")] {
        let p = under_review(&shop, &u).await;
        says(&shop, &ada, &format!("/accept {p}")).await;
        sold.push((u.id, p));
    }
    under_review(&shop, &customer(4525)).await;
    command(&shop, &customer(4526), "/start").await;
    let back = |days: i32, telegram_id: i64, payment: i64| async move {
        for (sql, id) in [
            ("UPDATE payments SET decided_at = now() - make_interval(days => $1) WHERE id = $2", payment),
            (
                "UPDATE orders SET paid_at = now() - make_interval(days => $1)
                  WHERE id = (SELECT order_id FROM payments WHERE id = $2)",
                payment,
            ),
            ("UPDATE users SET created_at = now() - make_interval(days => $1) WHERE telegram_id = $2", telegram_id),
        ] {
            let done = sqlx::query(sql).bind(days).bind(id).execute(pool).await.unwrap();
            assert!(done.rows_affected() <= 1);
        }
    };
    back(3, sold[1].0, sold[1].1).await;
    back(20, sold[2].0, sold[2].1).await;
    // long-known: the admins, and a customer who came 40 days ago
    back(100, ADMIN, 0).await;
    back(100, ADMIN2, 0).await;
    back(40, 4526, 0).await;
    let rials = scalar(pool, "SELECT amount_minor FROM payments WHERE id = $1", sold[3].1).await;
    let toman = format!("{} Toman", thousands(rials / 10));

    let said = says(&shop, &ada, "/stats").await;
    assert_eq!(said.len(), 1, "{said:#?}");
    let expected = format!(
        "📊 <b>Sales</b>\n\n\
         <b>Today</b>: {toman} + $2.99\n2 paid orders · 3 new customers · 0 trials\n\n\
         <b>Last 7 days</b>: {toman} + $5.98\n3 paid orders · 4 new customers · 0 trials\n\n\
         <b>Last 30 days</b>: {toman} + $8.97\n4 paid orders · 5 new customers · 0 trials\n\n\
         Now: 0 active subscriptions · 1 review waiting"
    );
    assert_eq!(said[0], expected);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn with_an_admin_group_reviews_go_there_and_only_admins_act_there(pool: PgPool) {
    let shop = card_shop_with(pool, |s| s.payments.card.review_chat_id = Some(GROUP)).await;
    let pool = &shop.app.state.pool;
    let payer = customer(4531);
    let payment = under_review(&shop, &payer).await;
    let photo = wait_review(&shop, GROUP, payment).await;
    assert_eq!(buttons_now(&shop, GROUP, photo), [format!("ra:{payment}"), format!("rr:{payment}")]);
    let posted: Vec<i64> = shop.tg.calls_of("sendPhoto").iter().filter_map(|c| c.params["chat_id"].as_i64()).collect();
    assert_eq!(posted, [GROUP], "not to the admins' private chats");

    // a member who is no admin: commands and buttons are ignored
    let member = customer(4532);
    let command = in_group(command_update(next_id(), &member, &format!("/accept {payment}")));
    assert!(answers(&shop, &command, GROUP).await.is_empty(), "no answer in the group");
    shop.deliver(&in_group(callback_update(next_id(), &member, photo, &format!("ra:{payment}")))).await;
    assert_eq!(last_toast(&shop), "This menu is out of date; here is the current one.");
    assert_eq!(payment_status(pool, payment).await, "under_review");
    // an admin chatting in the group is not answered either: only admin commands are taken there
    let chat = in_group(crate::support::message_update(next_id(), &admin(ADMIN), "hi all"));
    assert!(answers(&shop, &chat, GROUP).await.is_empty());

    // an admin's command in the group is answered there
    let pending = in_group(command_update(next_id(), &admin(ADMIN), "/pending@vpnshop_test_bot"));
    let said = answers(&shop, &pending, GROUP).await;
    assert_eq!(said[0], "1 waiting for review, oldest first:", "{said:#?}");
    let copy = text_copy(&shop, GROUP, payment);

    // an admin's button in the group decides it; both copies there show who did
    shop.deliver(&in_group(callback_update(next_id(), &admin(ADMIN2), photo, &format!("ra:{payment}")))).await;
    assert_eq!(payment_status(pool, payment).await, "accepted");
    let by = format!("accepted by @ada{ADMIN2}");
    for message in [photo, copy] {
        wait_shown(&shop, GROUP, message, &by).await;
        assert!(buttons_now(&shop, GROUP, message).is_empty());
    }
    wait_text(&shop, payer.id, "accepted").await;
    let private = |chat: i64| shop.tg.messages_to(chat).iter().any(|m| m.caption.is_some());
    assert!(!private(ADMIN) && !private(ADMIN2), "no review copies in private chats");
}
