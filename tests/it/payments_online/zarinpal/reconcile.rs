//! The `payments_reconcile` sweep: payments paid at Zarinpal whose customer never came back are verified and
//! fulfilled; stale unpaid ones are verified once more and expire.

use sqlx::PgPool;
use vpnshop::domain::Language;

use super::*;
use crate::bot::order_row;
use crate::payments::wait_text;
use crate::support::zarinpal::Failure;

/// Runs the sweep once, as the scheduler would; returns how many payments it settled.
async fn sweep(z: &ZarinpalShop) -> u64 {
    let sweeps = vpnshop::app::sweeps(&z.shop.app.state);
    sweeps["payments_reconcile"].run().await.unwrap()
}

/// Makes a payment older than the checkout window (`payments.online_expiry_mins`).
async fn make_stale(pool: &PgPool, payment: i64) {
    sqlx::query(
        "UPDATE payments SET created_at = now() - make_interval(mins => $2) - interval '1 minute' WHERE id = $1",
    )
    .bind(payment)
    .bind(crate::helpers::test_settings().payments.online_expiry_mins.max(30) as i32)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_sweep_fulfils_payments_that_never_came_back_and_expires_stale_unpaid_ones(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    // paid, browser closed before the redirect: Zarinpal lists it as unverified
    let closed = persian(7201);
    let (closed_order, closed_payment, _) = paid_order(&z, &closed).await;
    // paid long ago and past the window, but not in unVerified.json's last 100: the last verify finds it
    let (old_order, old_payment, _) = paid_order(&z, &persian(7202)).await;
    make_stale(pool, old_payment).await;
    z.zp.hide_from_unverified(&payment_of(pool, old_order).await.1);
    // never paid, past the window
    let (stale_order, _) = order_by_zarinpal(shop, &persian(7203)).await;
    let (stale_payment, _) = payment_of(pool, stale_order).await;
    make_stale(pool, stale_payment).await;
    // never paid (yet), still within its window
    let (fresh_order, _) = order_by_zarinpal(shop, &persian(7204)).await;
    let (fresh_payment, fresh_authority) = payment_of(pool, fresh_order).await;

    assert_eq!(sweep(&z).await, 3, "two paid, one expired");
    for (order, payment) in [(closed_order, closed_payment), (old_order, old_payment)] {
        assert_eq!(status_of(pool, payment).await.0, "succeeded", "payment {payment}");
        assert_eq!(order_row(pool, order).await.0, "fulfilled");
        assert_eq!(subscriptions_of(pool, order).await, 1);
    }
    wait_text(shop, closed.id, &said(Language::Fa, "payment-accepted-new", closed_order)).await;
    let (status, reason) = status_of(pool, stale_payment).await;
    assert_eq!(status, "failed");
    assert!(reason.as_deref().is_some_and(|r| r.starts_with("expired")), "{reason:?}");
    assert_eq!(order_row(pool, stale_order).await.0, "awaiting_payment", "the order can still be paid");
    assert_eq!(status_of(pool, fresh_payment).await.0, "pending");
    let verified: Vec<String> =
        z.zp.calls("verify").iter().map(|c| c.body["authority"].as_str().unwrap().to_owned()).collect();
    assert!(!verified.contains(&fresh_authority), "a payment within its window is left alone");
    assert!(verified.iter().all(|a| z.zp.payment(a).is_some()), "only authorities Zarinpal issued");

    // a second run finds nothing more to do
    let calls = z.zp.calls("verify").len();
    assert_eq!(sweep(&z).await, 0);
    assert_eq!(z.zp.calls("verify").len(), calls, "settled payments are not verified again");
    assert_eq!(subscriptions_of(pool, closed_order).await, 1);
    assert_eq!(status_of(pool, fresh_payment).await.0, "pending");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_sweep_waits_while_zarinpal_is_down_and_catches_up_after(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let pool = &z.shop.app.state.pool;
    let (order, payment, _) = paid_order(&z, &persian(7205)).await;
    // the first try and its retry
    z.zp.fail_next("unVerified", 2, Failure::Status500);
    assert_eq!(sweep(&z).await, 0);
    assert_eq!(z.zp.calls("unVerified").len(), 2, "tried again once");
    assert_eq!(status_of(pool, payment).await.0, "pending");
    assert!(z.zp.calls("verify").is_empty());

    assert_eq!(sweep(&z).await, 1);
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(subscriptions_of(pool, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn money_that_arrives_after_a_cancel_still_fulfils_the_order(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let (order, _) = order_by_zarinpal(shop, &persian(7206)).await;
    let (payment, authority) = payment_of(pool, order).await;
    // a NOK redirect (a second tab, a forged link) fails it; then the money arrives after all
    let (status, _) = callback(&shop.app, &format!("Authority={authority}&Status=NOK")).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(pool, payment).await.0, "failed");
    z.zp.pay(&authority);
    assert_eq!(sweep(&z).await, 1);
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
    assert_eq!(subscriptions_of(pool, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_callback_zarinpal_cannot_confirm_is_verified_again_until_it_can(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let (order, payment, query) = paid_order(&z, &persian(7207)).await;
    // verify answers 500 to the callback's try and retry, and to the first job's: the customer is told it is
    // being confirmed
    z.zp.fail_next("verify", 4, Failure::Status500);
    let (status, page) = callback(&shop.app, &query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-pending", order);
    assert!(z.zp.calls("verify").len() >= 2, "tried again");
    assert_eq!(subscriptions_of(pool, order).await, 0);

    // a job asks again, with backoff, until Zarinpal answers; no sweep needed
    eventually("the payment is verified again", || async { status_of(pool, payment).await.0 == "succeeded" }).await;
    assert_eq!(subscriptions_of(pool, order).await, 1);
    let codes: Vec<Option<i64>> = z.zp.calls("verify").iter().map(|c| c.code).collect();
    assert_eq!(codes, [None, None, None, None, Some(100)], "two tries of the callback, two of the job's first run");
    assert_eq!(sweep(&z).await, 0, "nothing left for the sweep");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_payment_zarinpal_answers_oddly_never_blocks_the_ones_after_it(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    // the oldest: Zarinpal answers its verify with -53 (another merchant's session) every time
    let (odd_order, _) = order_by_zarinpal(shop, &persian(7231)).await;
    let (odd_payment, _) = payment_of(pool, odd_order).await;
    make_stale(pool, odd_payment).await;
    // a later one, paid and never verified, hidden from unVerified.json: only the stale pass finds it
    let (paid_order_id, paid_payment, _) = paid_order(&z, &persian(7232)).await;
    make_stale(pool, paid_payment).await;
    z.zp.hide_from_unverified(&payment_of(pool, paid_order_id).await.1);

    for _ in 0..2 {
        z.zp.fail_next("verify", 1, Failure::Code(-53));
        sweep(&z).await;
        assert_eq!(status_of(pool, paid_payment).await.0, "succeeded", "the one after it is settled");
    }
    assert_eq!(subscriptions_of(pool, paid_order_id).await, 1);
    assert_eq!(status_of(pool, odd_payment).await.0, "pending", "within twice its window it waits");
    // long past its window, a payment Zarinpal never confirms expires
    sqlx::query("UPDATE payments SET created_at = now() - interval '1 day' WHERE id = $1")
        .bind(odd_payment)
        .execute(pool)
        .await
        .unwrap();
    z.zp.fail_next("verify", 1, Failure::Code(-53));
    sweep(&z).await;
    let (status, reason) = status_of(pool, odd_payment).await;
    assert_eq!(status, "failed");
    assert!(reason.as_deref().is_some_and(|r| r.contains("never confirmed")), "{reason:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_sweep_does_not_verify_money_for_an_order_another_payment_paid(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let (order, (first, first_authority), (second, second_authority)) = two_attempts(&z, &persian(7210)).await;
    // both paid; only the second came back (and paid the order); the first is in unVerified.json
    z.zp.pay(&first_authority);
    let (status, _) = callback(&shop.app, &z.zp.pay(&second_authority)).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(pool, second).await.0, "succeeded");

    sweep(&z).await;
    sweep(&z).await;
    assert_eq!(z.zp.calls("verify").len(), 1, "only the second was ever verified");
    assert!(!z.zp.payment(&first_authority).unwrap().verified, "Zarinpal gives the first one's money back");
    assert_eq!(status_of(pool, first).await.0, "failed", "the first attempt stays failed");
    let flagged = "SELECT count(*) FROM payments WHERE id = $1 AND flagged_at IS NOT NULL";
    assert_eq!(scalar(pool, flagged, first).await, 0);
    assert_eq!(subscriptions_of(pool, order).await, 1);
}
