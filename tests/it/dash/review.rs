//! The review queue in the dashboard: receipts waiting oldest first with the image (served from the fake Bot
//! API), the order and the customer's record; Accept and Reject through the same exactly-once decision as
//! Telegram and the API (a second decision is a 409 "already decided" page, nothing doubles); new receipts
//! reach an open page through the polled fragment; viewers and forged forms change nothing.

use reqwest::StatusCode;
use sqlx::PgPool;
use vpnshop::services::payments::{self, Receipt, ReceiptKind, ReceiptOutcome};

use super::{Dash, dash, dash_with};
use crate::api::money::{customers, plan_id, under_review};
use crate::bot::bot_settings;
use crate::payments::jpeg;
use crate::support::FakeTelegram;

/// The dashboard with the bot on, talking to `tg`.
async fn with_bot(pool: PgPool, tg: &FakeTelegram) -> Dash {
    dash_with(pool, |s| bot_settings(s, tg)).await
}

/// Status, order status, reason code and reason, and who decided how, of a payment.
async fn payment(pool: &PgPool, id: i64) -> (String, String, Option<String>, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT p.status, o.status, p.reason_code, p.reason, p.decided_via || ':' || p.decided_by
           FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn audited(pool: &PgPool, id: i64, action: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE entity = 'payment' AND entity_id = $1 AND action = $2
            AND actor_kind = 'admin'",
    )
    .bind(id.to_string())
    .bind(action)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn subscriptions_of(pool: &PgPool, id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT s.status FROM subscriptions s JOIN payments p ON p.order_id = s.order_id WHERE p.id = $1",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn receipt_file(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT receipt_file_id FROM payments WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

/// The URL the page's poller asks (`hx-get` of `#review-poll`).
fn poll_url(body: &str) -> String {
    let re = regex::Regex::new(r#"id="review-poll" hx-get="([^"]+)""#).unwrap();
    re.captures(body).unwrap_or_else(|| panic!("no poller in {body}"))[1].replace("&amp;", "&")
}

#[sqlx::test]
async fn the_queue_renders_oldest_first_for_every_role_in_every_language_and_only_editors_can_decide(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let d = with_bot(pool.clone(), &tg).await;
    let ids = under_review(&pool, 61_000, 2).await;
    // the first customer has a rejected receipt and a trial behind them
    sqlx::query(
        "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
                    SELECT u.id, $2, 500, 'USD', 'cancelled' FROM users u WHERE telegram_id = $1 RETURNING id)
         INSERT INTO payments (order_id, method, status, amount_minor, currency) SELECT id, 'card', 'rejected', 500, 'USD' FROM o",
    )
    .bind(61_000_i64)
    .bind(plan_id(&pool).await)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE users SET trial_used_at = '2026-01-02T03:04:00Z' WHERE telegram_id = 61000")
        .execute(&pool)
        .await
        .unwrap();
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            let page = d.get(&mut b, "/dash/review").await;
            page.assert_ok();
            let body = &page.body;
            assert_eq!(body.contains("dir=\"rtl\""), lang == "fa", "{who} {lang}");
            assert!(!body.contains(" style=") && !body.contains("<script>"), "{who} {lang}");
            assert!(body.len() < 100_000);
            let (first, second) = (format!("id=\"review-{}\"", ids[0]), format!("id=\"review-{}\"", ids[1]));
            assert!(body.find(&first).unwrap() < body.find(&second).unwrap(), "oldest first");
            assert!(body.contains(&format!("src=\"/dash/review/{}/receipt\"", ids[0])), "the receipt image");
            assert!(body.contains("hx-trigger=\"every 5s\""), "the poller");
            let editor = who != "viewer";
            assert_eq!(body.contains(&format!("/dash/review/{}/accept", ids[0])), editor, "{who}: accept");
            assert_eq!(body.contains(&format!("/dash/review/{}/reject", ids[0])), editor, "{who}: reject");
        }
        b.set_cookie("vpnshop_lang", "en");
        let body = d.get(&mut b, "/dash/review").await.body;
        for text in
            ["$5.00", "Receipts rejected before", "2026-01-02 03:04 UTC", "@c61000", "Accepted automatically at"]
        {
            assert!(body.contains(text), "{text} in {body}");
        }
    }
}

#[sqlx::test]
async fn accepting_from_the_page_fulfils_the_order_once_and_a_second_decision_is_already_decided(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let d = with_bot(pool.clone(), &tg).await;
    let id = under_review(&pool, 62_000, 1).await[0];
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/review").await.assert_ok();

    let page = d.post(&mut b, &format!("/dash/review/{id}/accept"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/dash/review?done=review-accepted"));
    let (status, order, ..) = payment(&pool, id).await;
    assert_eq!((status.as_str(), order.as_str()), ("accepted", "fulfilled"));
    assert_eq!(payment(&pool, id).await.4.as_deref(), Some("dashboard:editor"));
    let subs = subscriptions_of(&pool, id).await;
    assert!(subs.len() == 1 && ["pending", "active"].contains(&subs[0].as_str()), "one subscription: {subs:?}");
    assert_eq!(audited(&pool, id, "payment.accepted").await, 1);
    let flash = d.get(&mut b, "/dash/review?done=review-accepted").await;
    assert!(flash.body.contains("Accepted: the order is being fulfilled"), "{}", flash.body);
    assert!(!flash.body.contains(&format!("id=\"review-{id}\"")), "no longer in the queue");

    // a double click, and a Reject racing it: "already decided", nothing doubles
    for (path, form) in [("accept", vec![]), ("reject", vec![("reason", "late"), ("code", "other")])] {
        let again = d.post(&mut b, &format!("/dash/review/{id}/{path}"), &form).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{path}: {}", again.body);
        assert!(again.body.contains("was already decided") && again.body.contains("by editor"), "{}", again.body);
    }
    let mut owner = d.sign_in("owner").await;
    let fa = {
        owner.set_cookie("vpnshop_lang", "fa");
        d.post(&mut owner, &format!("/dash/review/{id}/accept"), &[]).await
    };
    assert_eq!(fa.status, StatusCode::CONFLICT);
    assert!(fa.body.contains("قبلاً تصمیم گرفته شده"), "{}", fa.body);
    assert_eq!(subscriptions_of(&pool, id).await.len(), 1, "fulfilled once");
    assert_eq!(audited(&pool, id, "payment.accepted").await, 1);
    assert_eq!(audited(&pool, id, "payment.rejected").await, 0);
    assert_eq!(payment(&pool, id).await.0, "accepted");
}

#[sqlx::test]
async fn rejecting_records_the_reason_and_bad_input_is_refused_naming_the_field(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let d = with_bot(pool.clone(), &tg).await;
    let id = under_review(&pool, 63_000, 1).await[0];
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/review").await.assert_ok();
    let path = format!("/dash/review/{id}/reject");
    for (form, field) in [
        (vec![("reason", "   "), ("code", "wrong_amount")], "reason"),
        (vec![("code", "other")], "reason"),
        (vec![("reason", "too long"), ("code", "because")], "code"),
    ] {
        let page = d.post(&mut b, &path, &form).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}: {}", page.body);
        assert!(page.body.contains(&format!("{field}:")), "names {field}: {}", page.body);
    }
    let long = "x".repeat(501);
    assert_eq!(d.post(&mut b, &path, &[("reason", &long)]).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    for bad in ["abc", "0", "-3"] {
        let page = d.post(&mut b, &format!("/dash/review/{bad}/accept"), &[]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(page.body.contains("id:"), "{}", page.body);
    }
    assert_eq!(d.post(&mut b, "/dash/review/999999/accept", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(payment(&pool, id).await.0, "under_review", "nothing written");
    assert_eq!(audited(&pool, id, "payment.rejected").await, 0);

    let page = d.post(&mut b, &path, &[("reason", "The amount is $4, not $5."), ("code", "wrong_amount")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/dash/review?done=review-rejected"));
    let (status, order, code, reason, by) = payment(&pool, id).await;
    assert_eq!((status.as_str(), order.as_str()), ("rejected", "awaiting_payment"), "the customer may pay again");
    assert_eq!((code.as_deref(), reason.as_deref()), (Some("wrong_amount"), Some("The amount is $4, not $5.")));
    assert_eq!(by.as_deref(), Some("dashboard:editor"));
    assert_eq!(audited(&pool, id, "payment.rejected").await, 1);
    assert!(subscriptions_of(&pool, id).await.is_empty());
}

#[sqlx::test]
async fn viewers_and_forged_forms_cannot_decide_and_change_nothing(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let d = with_bot(pool.clone(), &tg).await;
    let id = under_review(&pool, 64_000, 1).await[0];
    let mut viewer = d.sign_in("viewer").await;
    d.get(&mut viewer, "/dash/review").await.assert_ok();
    for (path, form) in [("accept", vec![]), ("reject", vec![("reason", "no")])] {
        let page = d.post(&mut viewer, &format!("/dash/review/{id}/{path}"), &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "viewer {path}");
    }
    let mut editor = d.sign_in("editor").await;
    d.get(&mut editor, "/dash/review").await.assert_ok();
    let path = format!("/dash/review/{id}/accept");
    assert_eq!(d.post_raw(&mut editor, &path, &[]).await.status, StatusCode::FORBIDDEN, "no token");
    assert_eq!(d.post_raw(&mut editor, &path, &[("csrf", "forged")]).await.status, StatusCode::FORBIDDEN, "forged");
    assert_eq!(payment(&pool, id).await.0, "under_review");
    let audits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE entity = 'payment' AND actor_kind = 'admin'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audits, 0);
    assert!(subscriptions_of(&pool, id).await.is_empty());
}

#[sqlx::test]
async fn the_receipt_is_served_with_the_bytes_telegram_holds_as_an_image_or_a_placeholder(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let d = with_bot(pool.clone(), &tg).await;
    let ids = under_review(&pool, 65_000, 3).await;
    let image = jpeg("receipt-65000");
    tg.add_file(&receipt_file(&pool, ids[0]).await, "uniq-65000", image.clone());
    tg.add_file(&receipt_file(&pool, ids[1]).await, "uniq-65001", b"%PDF-1.7 not an image".to_vec());
    let mut viewer = d.sign_in("viewer").await;

    let res = d
        .http
        .get(d.app.url(&format!("/dash/review/{}/receipt", ids[0])))
        .header("cookie", viewer.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.headers()["cache-control"], "private, max-age=3600");
    assert_eq!(res.bytes().await.unwrap().to_vec(), image, "the bytes Telegram holds");
    assert!(!tg.calls_of("getFile").is_empty() && !tg.calls_of("downloadFile").is_empty());

    let other = d.get(&mut viewer, &format!("/dash/review/{}/receipt", ids[1])).await;
    assert_eq!(other.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "only JPEG, PNG and WebP are shown");
    assert!(other.headers["content-type"].to_str().unwrap().starts_with("image/svg+xml"));
    let gone = d.get(&mut viewer, &format!("/dash/review/{}/receipt", ids[2])).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "Telegram does not have it");
    assert!(gone.body.contains("Telegram no longer has this receipt"), "{}", gone.body);
    assert_eq!(d.get(&mut viewer, "/dash/review/99999999/receipt").await.status, StatusCode::NOT_FOUND);
    assert_eq!(d.get(&mut viewer, "/dash/review/x1/receipt").await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test]
async fn without_the_bot_the_queue_says_so_and_the_receipt_is_a_placeholder(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let id = under_review(&pool, 66_000, 1).await[0];
    let mut b = d.sign_in("editor").await;
    let page = d.get(&mut b, "/dash/review").await;
    page.assert_ok();
    assert!(page.body.contains("Telegram bot is not configured"), "{}", page.body);
    assert!(!page.body.contains(&format!("src=\"/dash/review/{id}/receipt\"")));
    let receipt = d.get(&mut b, &format!("/dash/review/{id}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::NOT_FOUND);
    assert!(receipt.headers["content-type"].to_str().unwrap().starts_with("image/svg+xml"));
}

#[sqlx::test]
async fn the_polled_fragment_brings_a_receipt_sent_after_the_page_was_loaded_and_retires_decided_ones(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let d = with_bot(pool.clone(), &tg).await;
    let old = under_review(&pool, 67_000, 1).await[0];
    let mut b = d.sign_in("viewer").await;
    let page = d.get(&mut b, "/dash/review").await;
    page.assert_ok();
    let poll = poll_url(&page.body);
    assert_eq!(poll, format!("/dash/review/items?shown={old}"));

    // a customer sends a receipt through the real service
    let user = customers(&pool, 67_100, 1).await[0];
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, pay_by)
         VALUES ($1, $2, 700, 'USD', 'awaiting_payment', now() + interval '1 hour') RETURNING id",
    )
    .bind(user)
    .bind(plan_id(&pool).await)
    .fetch_one(&pool)
    .await
    .unwrap();
    let receipt = Receipt { file_id: "AgAC-new".into(), file_unique_id: "AQAD-new".into(), kind: ReceiptKind::Photo };
    let settings = &d.app.state.settings;
    let outcome = payments::submit_receipt(&pool, settings, user, order, &receipt, &"ab".repeat(32)).await.unwrap();
    let ReceiptOutcome::UnderReview { payment_id: new, .. } = outcome else { panic!("{outcome:?}") };

    let fragment = d.get(&mut b, &poll).await;
    fragment.assert_ok();
    let body = &fragment.body;
    assert!(body.contains(&format!("id=\"review-{new}\"")), "the new receipt: {body}");
    assert!(body.contains("$7.00") && body.contains("@c67100"), "{body}");
    assert!(!body.contains(&format!("id=\"review-{old}\"")), "what the page shows is not sent again");
    assert!(!body.contains("<html"), "a fragment, not a page");
    let next = poll_url(body);
    assert_eq!(next, format!("/dash/review/items?shown={old},{new}"));
    let nothing_new = d.get(&mut b, &next).await;
    assert!(!nothing_new.body.contains("<article"), "{}", nothing_new.body);

    // decided elsewhere (the API): the next poll replaces its card with a note
    let who = vpnshop::services::audit::Who::cli();
    payments::admin::decide(&pool, settings, old, payments::admin::ApiVerdict::Accept, &who).await.unwrap();
    let after = d.get(&mut b, &next).await;
    assert!(after.body.contains(&format!("id=\"review-{old}\" hx-swap-oob=\"true\"")), "{}", after.body);
    assert!(after.body.contains("no longer waiting"), "{}", after.body);
    assert_eq!(poll_url(&after.body), format!("/dash/review/items?shown={new}"));
    let bad = d.get(&mut b, "/dash/review/items?shown=1,x").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}
