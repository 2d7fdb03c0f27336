//! The admins' copies of a review when several workers (of one instance or of several) post and close it at once:
//! each copy is edited once per decision, and an overruled automatic acceptance ends up shown as rejected.

use std::time::Duration;

use sqlx::PgPool;
use vpnshop::bot::review;
use vpnshop::services::payments::review::{Decision, RejectReason, Reviewer, Verdict, decide};

use crate::bot::BotShop;
use crate::payments::{ADMIN, ADMIN2, card_shop, customer, jpeg, order_by_card, payment_of, send_receipt, wait_review};
use crate::provisioning::eventually;

/// How many times each copy of `payment`'s review was edited to show `status` (a text in its caption).
fn edits(shop: &BotShop, payment: i64, status: &str) -> Vec<(i64, usize)> {
    let needle = format!("Payment #{payment}</b>");
    let calls = shop.tg.calls_of("editMessageCaption");
    [ADMIN, ADMIN2]
        .into_iter()
        .map(|chat| {
            let shown = |c: &&crate::support::Call| {
                let caption = c.params["caption"].as_str().unwrap_or_default();
                c.params["chat_id"].as_i64() == Some(chat) && caption.contains(&needle) && caption.contains(status)
            };
            (chat, calls.iter().filter(shown).count())
        })
        .collect()
}

/// Closes the review from three workers at once, as the decision's job and two more (a posting job that saw the
/// decision, another instance) would.
async fn close_thrice(shop: &BotShop, payment: i64) {
    let state = &shop.app.state;
    let bot = &state.telegram.as_ref().expect("the bot").bot;
    let close = || review::close(bot, &state.pool, &state.locks, &state.settings, payment);
    let (a, b, c) = tokio::join!(close(), close(), close());
    for closed in [a, b, c] {
        closed.expect("closed");
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn closing_a_review_at_once_from_several_workers_edits_each_copy_once(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(7401);
    let (order, _) = order_by_card(&shop, &u).await;
    send_receipt(&shop, &u, "rcpt-copies", "uniq-copies", jpeg("copies")).await;
    let payment = payment_of(pool, order).await;
    wait_review(&shop, ADMIN, payment).await;
    wait_review(&shop, ADMIN2, payment).await;

    // accepted automatically: its copies keep a Reject button
    sqlx::query("UPDATE payments SET review_deadline = now() - interval '1 second' WHERE id = $1")
        .bind(payment)
        .execute(pool)
        .await
        .unwrap();
    let settings = &shop.app.state.settings;
    let auto = decide(pool, settings, payment, &Verdict::AutoAccept, &Reviewer::scheduler()).await.unwrap();
    assert!(matches!(auto, Decision::Decided { .. }), "{auto:?}");
    close_thrice(&shop, payment).await;
    let closed = "SELECT count(*) FROM jobs WHERE kind = 'review.close' AND status = 'done'";
    eventually("the decision's own close job ran", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>(closed).fetch_one(pool).await.unwrap() == 1
    })
    .await;
    assert_eq!(edits(&shop, payment, "accepted automatically"), [(ADMIN, 1), (ADMIN2, 1)], "each copy edited once");

    // an admin overrules it: every copy shows the rejection, once
    let ada = Reviewer::telegram(pool, ADMIN, Some("ada"), "Ada").await.unwrap();
    let reject = Verdict::Reject { reason: RejectReason::WrongAmount, text: None };
    assert!(matches!(decide(pool, settings, payment, &reject, &ada).await.unwrap(), Decision::Decided { .. }));
    close_thrice(&shop, payment).await;
    eventually("the rejection's close job ran", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>(closed).fetch_one(pool).await.unwrap() == 2
    })
    .await;
    assert_eq!(edits(&shop, payment, "rejected by @ada"), [(ADMIN, 1), (ADMIN2, 1)], "each copy edited once");
    for chat in [ADMIN, ADMIN2] {
        let copy = shop.tg.messages_to(chat).into_iter().find(|m| m.file_id.is_some()).expect("the copy");
        assert!(
            copy.caption.unwrap_or_default().contains("rejected by @ada"),
            "the copy shows the decision that stands"
        );
    }
}
