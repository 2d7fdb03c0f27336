//! The customer coming back from Zarinpal: `GET /pay/zarinpal/callback?Authority=…&Status=…`.

use sqlx::PgPool;
use vpnshop::domain::Language;

use super::*;
use crate::bot::order_row;
use crate::payments::wait_text;
use crate::support::zarinpal::Failure;

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_ok_callback_verified_100_fulfils_the_order_and_the_same_callback_again_changes_nothing_nor_asks_zarinpal(
    pool: PgPool,
) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let u = persian(7101);
    let (order, _) = order_by_zarinpal(shop, &u).await;
    let (_, amount, currency) = order_row(pool, order).await;
    assert_eq!(currency.as_deref(), Some("IRR"));
    let amount = amount.unwrap();

    // the request carried our order's amount in Rials, our callback and the order id
    let (payment, authority) = payment_of(pool, order).await;
    let requested = &z.zp.calls("request")[0].body;
    assert_eq!(requested["amount"], amount, "{requested}");
    assert_eq!(requested["currency"], "IRR");
    assert_eq!(requested["callback_url"], "https://shop.example/pay/zarinpal/callback");
    assert_eq!(requested["metadata"]["order_id"], order.to_string());
    assert!(requested["description"].as_str().is_some_and(|d| d.contains(&format!("#{order}"))), "{requested}");
    // the customer's button leads to the StartPay page of that authority
    let button = url_button(shop, &u).expect("a button to Zarinpal");
    assert_eq!(button, format!("{}pg/StartPay/{authority}", z.zp.url()));
    let start_pay = reqwest::get(&button).await.unwrap();
    assert_eq!(start_pay.status(), 200);
    assert!(start_pay.text().await.unwrap().contains(&format!("Pay {amount} IRR")));

    let query = z.zp.pay(&authority);
    let (status, page) = callback(&shop.app, &query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);
    let verify = z.zp.calls("verify");
    assert_eq!(verify.len(), 1);
    assert_eq!(verify[0].body["amount"], amount, "verified with our amount");
    assert_eq!(verify[0].body["authority"], authority.as_str());
    assert_eq!(verify[0].code, Some(100));
    let held = z.zp.payment(&authority).unwrap();
    let (status, ref_id, pan, hash): (String, Option<String>, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT status, zarinpal_ref_id, zarinpal_card_pan, zarinpal_card_hash FROM payments WHERE id = $1",
    )
    .bind(payment)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(status, "succeeded");
    assert_eq!(ref_id, Some(held.ref_id.to_string()));
    assert_eq!(pan.as_deref(), Some("502229******5995"));
    assert!(hash.is_some_and(|h| !h.is_empty()));
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
    assert_eq!(subscriptions_of(pool, order).await, 1);
    // the bot tells the customer by itself
    wait_text(shop, u.id, &said(Language::Fa, "payment-accepted-new", order)).await;

    // the same redirect again (a reload, a second tab): answered from our state, Zarinpal is not asked again
    for _ in 0..3 {
        let (status, page) = callback(&shop.app, &query).await;
        assert_eq!(status, 200);
        assert_persian_page(&page, "zarinpal-paid", order);
    }
    assert_eq!(z.zp.calls("verify").len(), 1, "a paid payment is not verified again");
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(subscriptions_of(pool, order).await, 1, "still one subscription");
    let place = "SELECT count(*) FROM jobs WHERE kind = 'subscription.place' AND payload->>'subscription_id' =
                 (SELECT id::text FROM subscriptions WHERE order_id = $1)";
    assert_eq!(scalar(pool, place, order).await, 1, "one placement");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_payment_verified_before_its_answer_was_lost_is_paid_on_101(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let (order, payment, query) = paid_order(&z, &persian(7102)).await;
    // our verify reached Zarinpal, its answer never reached us
    let (_, authority) = payment_of(pool, order).await;
    z.zp.mark_verified(&authority);
    // (101 as a string this time)
    z.zp.set_string_codes(true);
    let (status, page) = callback(&shop.app, &query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);
    assert_eq!(z.zp.calls("verify")[0].code, Some(101));
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(subscriptions_of(pool, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_cancelled_payment_leaves_the_order_unpaid_and_payable(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let u = persian(7103);
    let (order, _) = order_by_zarinpal(shop, &u).await;
    let (payment, authority) = payment_of(pool, order).await;
    let (status, page) = callback(&shop.app, &z.zp.cancel(&authority)).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-cancelled", order);
    assert!(z.zp.calls("verify").is_empty(), "NOK is not verified");
    let (status, reason) = status_of(pool, payment).await;
    assert_eq!(status, "failed");
    assert!(reason.is_some_and(|r| r.contains("NOK")));
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");
    assert_eq!(subscriptions_of(pool, order).await, 0);

    // the customer pays it after all: a new payment of the same order
    press(shop, &u, &format!("o:{order}")).await;
    let (again, fresh) = payment_of(pool, order).await;
    assert_ne!(again, payment);
    let (status, page) = callback(&shop.app, &z.zp.pay(&fresh)).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);
    assert_eq!(subscriptions_of(pool, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn verify_errors_leave_the_order_unpaid_with_a_page_that_says_why(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);

    // -51: back with Status=OK, but nothing was paid
    let (unpaid, _) = order_by_zarinpal(shop, &persian(7104)).await;
    let (unpaid_payment, authority) = payment_of(pool, unpaid).await;
    let (status, page) = callback(&shop.app, &format!("Authority={authority}&Status=OK")).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-not-paid", unpaid);
    assert_eq!(z.zp.calls("verify").last().unwrap().code, Some(-51));

    // -54: Zarinpal does not know the authority (any more)
    let (invalid, invalid_payment, query) = paid_order(&z, &persian(7105)).await;
    z.zp.forget(&payment_of(pool, invalid).await.1);
    let (status, page) = callback(&shop.app, &query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-invalid", invalid);
    assert_eq!(z.zp.calls("verify").last().unwrap().code, Some(-54));

    // -50: Zarinpal holds another amount than our order's
    let (mismatch, mismatch_payment, query) = paid_order(&z, &persian(7106)).await;
    let (_, amount, _) = order_row(pool, mismatch).await;
    z.zp.set_amount(&payment_of(pool, mismatch).await.1, amount.unwrap() + 50_000);
    let (status, page) = callback(&shop.app, &query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-mismatch", mismatch);
    let last = z.zp.calls("verify").pop().unwrap();
    assert_eq!((last.code, last.body["amount"].as_i64()), (Some(-50), amount), "verified with our amount");
    let flagged = "SELECT count(*) FROM payments WHERE id = $1 AND flagged_at IS NOT NULL";
    assert_eq!(scalar(pool, flagged, mismatch_payment).await, 1, "held for an admin");
    wait_text(shop, ADMIN, &format!("Zarinpal payment #{mismatch_payment} was not fulfilled")).await;

    for (order, payment) in [(unpaid, unpaid_payment), (invalid, invalid_payment), (mismatch, mismatch_payment)] {
        assert_eq!(status_of(pool, payment).await.0, "failed", "payment {payment}");
        assert_eq!(order_row(pool, order).await.0, "awaiting_payment", "order {order} is still payable");
        assert_eq!(subscriptions_of(pool, order).await, 0, "order {order} granted nothing");
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn junk_gets_a_400_page_and_strangers_a_404_page_without_asking_zarinpal(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let app = &z.shop.app;
    for query in [
        "",
        "Status=OK",
        "Authority=A00000000000000000000000000217885001",
        "Authority=A1&Status=PAID",
        "Authority=%3Cscript%3Ealert(1)%3C%2Fscript%3E&Status=OK",
        "Authority=A1&Authority=A2&Status=OK",
        "Authority=../../etc/passwd&Status=NOK",
        "%FF%FE=%00&Status=OK",
    ] {
        let (status, page) = callback(app, query).await;
        assert_eq!(status, 400, "{query}: {page}");
        assert!(page.contains(&said(Language::En, "paypage-bad-request", 0)), "{query}: {page}");
        assert!(!page.contains("<script>"), "{page}");
    }
    let long = format!("Authority={}&Status=OK", "A".repeat(5000));
    assert_eq!(callback(app, &long).await.0, 400);
    // well-formed but not ours; in the browser's language
    let response = app
        .http
        .get(app.url("/pay/zarinpal/callback?Authority=A00000000000000000000000000999999999&Status=OK"))
        .header("accept-language", "fa-IR,fa;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"dir="rtl""#) && page.contains(&said(Language::Fa, "paypage-unknown", 0)), "{page}");
    assert!(page.contains(&format!(r#"href="https://t.me/{BOT}""#)), "{page}");
    assert!(z.zp.calls("verify").is_empty(), "no junk reaches Zarinpal");

    // the landing page after paying, when the bot's username is not known
    let (status, page) = get(app, "/pay/return/42").await;
    assert_eq!(status, 200);
    assert!(page.contains(&said(Language::En, "paypage-return", 42)), "{page}");
    assert_eq!(get(app, "/pay/return/forty-two").await.0, 400);
    assert_eq!(get(app, "/pay/return/-1").await.0, 400);
}

/// The `zarinpal.verify` job of a payment: its status, and whether it was due only after the request timeout
/// (`http.request_timeout_secs`) when queued.
async fn verify_job(z: &ZarinpalShop, payment: i64) -> Option<(String, bool)> {
    sqlx::query_as(
        "SELECT status, run_at > created_at + make_interval(secs => $2) FROM jobs
          WHERE kind = 'zarinpal.verify' AND payload->>'payment_id' = $1::text",
    )
    .bind(payment)
    .bind(z.shop.app.state.settings.http.request_timeout_secs as f64)
    .fetch_optional(&z.shop.app.state.pool)
    .await
    .unwrap()
}

/// Makes a payment's `zarinpal.verify` job due now, and waits until a worker has run it.
async fn run_verify_job(z: &ZarinpalShop, payment: i64) {
    let pool = &z.shop.app.state.pool;
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'zarinpal.verify' AND payload->>'payment_id' = $1::text")
        .bind(payment)
        .execute(pool)
        .await
        .unwrap();
    eventually("the verify job ran", || async { verify_job(z, payment).await.is_some_and(|(s, _)| s == "done") }).await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_callback_cut_off_by_the_request_timeout_while_verifying_is_followed_up_by_its_job(pool: PgPool) {
    let z = zarinpal_shop_with(pool, |s| s.http.request_timeout_secs = 1).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let (order, payment, query) = paid_order(&z, &persian(7107)).await;
    // Zarinpal takes longer to answer than the request may last: the request is cut off mid-verify
    z.zp.fail_next("verify", 1, Failure::Hang(std::time::Duration::from_secs(3)));
    let response = shop.app.http.get(shop.app.url(&format!("/pay/zarinpal/callback?{query}"))).send().await.unwrap();
    assert_ne!(response.status().as_u16(), 200, "cut off");
    assert_eq!(z.zp.calls("verify").len(), 1, "the verify had started");
    assert_eq!(status_of(pool, payment).await.0, "pending", "nothing settled by the cut-off callback");
    // … but its follow-up was queued before it, due once the callback is surely over
    assert_eq!(verify_job(&z, payment).await, Some(("queued".to_owned(), true)));

    run_verify_job(&z, payment).await;
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(order_row(pool, order).await.0, "fulfilled");
    assert_eq!(subscriptions_of(pool, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_follow_up_job_of_a_callback_that_settled_asks_zarinpal_nothing(pool: PgPool) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let (order, payment, query) = paid_order(&z, &persian(7108)).await;
    let (status, page) = callback(&shop.app, &query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);
    assert_eq!(verify_job(&z, payment).await, Some(("queued".to_owned(), true)), "queued all the same");
    run_verify_job(&z, payment).await;
    assert_eq!(z.zp.calls("verify").len(), 1, "the job found it settled and did not verify");
    assert_eq!(status_of(pool, payment).await.0, "succeeded");
    assert_eq!(subscriptions_of(pool, order).await, 1);

    // a cancelled one gets no job at all (nothing is verified)
    let (other, _) = order_by_zarinpal(shop, &persian(7109)).await;
    let (cancelled, authority) = payment_of(pool, other).await;
    callback(&shop.app, &z.zp.cancel(&authority)).await;
    assert_eq!(verify_job(&z, cancelled).await, None);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_second_payment_of_an_order_paid_already_is_not_verified_and_the_page_says_the_money_comes_back(
    pool: PgPool,
) {
    let z = zarinpal_shop(pool).await;
    let (shop, pool) = (&z.shop, &z.shop.app.state.pool);
    let u = persian(7110);
    let (order, (first, first_authority), (second, second_authority)) = two_attempts(&z, &u).await;
    // the customer paid both pages; the second comes back first and pays the order
    let first_query = z.zp.pay(&first_authority);
    let (status, page) = callback(&shop.app, &z.zp.pay(&second_authority)).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-paid", order);
    assert_eq!(status_of(pool, second).await.0, "succeeded");

    let (status, page) = callback(&shop.app, &first_query).await;
    assert_eq!(status, 200);
    assert_persian_page(&page, "zarinpal-already-paid", order);
    let verified: Vec<_> = z.zp.calls("verify").iter().map(|c| c.body["authority"].clone()).collect();
    assert_eq!(verified, vec![serde_json::json!(second_authority)], "the first authority is never verified");
    assert!(!z.zp.payment(&first_authority).unwrap().verified, "so Zarinpal gives that money back");
    assert_eq!(status_of(pool, first).await.0, "failed", "the first attempt stays failed");
    let flagged = "SELECT count(*) FROM payments WHERE id = $1 AND flagged_at IS NOT NULL";
    assert_eq!(scalar(pool, flagged, first).await, 0, "nothing for an admin to refund");
    assert_eq!(subscriptions_of(pool, order).await, 1);
}
