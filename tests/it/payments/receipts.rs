//! Receipts: a reused one (the same Telegram file, or the same bytes under a new one) is refused and flagged to
//! the admins; what is not a receipt gets a hint; a receipt with nothing to pay, too many receipts, or a receipt
//! after the order's deadline is refused with a reason the customer can act on — in their language.

use sqlx::PgPool;

use super::*;
use crate::bot::{command, order_row, user};
use crate::support::{document_update, message_update};

/// The customer sends a file as a document (`file_name`, `mime`); waits until it was handled; returns the answer.
async fn send_document(shop: &BotShop, u: &TgUser, file: (&str, &str), name: &str, mime: &str, bytes: &[u8]) -> String {
    shop.tg.add_file(file.0, file.1, bytes.to_vec());
    shop.deliver(&document_update(next_id(), u, file.0, file.1, name, mime)).await;
    shop.screen(u).text
}

/// Whether the bot asked Telegram for this file (to download it).
fn fetched(shop: &BotShop, file_id: &str) -> bool {
    shop.tg.calls_of("getFile").iter().any(|c| c.params["file_id"] == file_id)
}

async fn payments_of(pool: &PgPool, order: i64) -> i64 {
    scalar(pool, "SELECT count(*) FROM payments WHERE order_id = $1", order).await
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_reused_receipt_is_refused_by_its_file_or_its_bytes_and_the_admins_are_told(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let first = customer(4301);
    let (first_order, _) = order_by_card(&shop, &first).await;
    send_receipt(&shop, &first, "rcpt-orig", "uniq-orig", jpeg("original")).await;
    let original = payment_of(pool, first_order).await;

    // another customer forwards the same photo: Telegram keeps its file_unique_id
    let other = customer(4302);
    let (order, _) = order_by_card(&shop, &other).await;
    let answer = send_receipt(&shop, &other, "rcpt-fwd", "uniq-orig", jpeg("original")).await;
    assert!(answer.contains("already sent before and cannot be used again"), "{answer}");
    assert!(!fetched(&shop, "rcpt-fwd"), "refused before downloading it");
    let alert = wait_text(&shop, ADMIN, "Reused receipt refused").await;
    assert!(alert.contains(&format!("first used for payment #{original} by @sam4301")), "{alert}");
    assert!(alert.contains("@sam4302") && alert.contains("matched by Telegram file id"), "{alert}");
    wait_text(&shop, ADMIN2, &format!("first used for payment #{original}")).await;

    // the same bytes as a new upload (new file ids): refused by their SHA-256
    let answer = send_receipt(&shop, &other, "rcpt-copy", "uniq-copy", jpeg("original")).await;
    assert!(answer.contains("already sent before"), "{answer}");
    let alert = wait_text(&shop, ADMIN, "matched by identical image bytes").await;
    assert!(alert.contains(&format!("payment #{original}")), "{alert}");

    let reuses: Vec<(i64, Option<i64>, i64, String, String)> = sqlx::query_as(
        "SELECT u.telegram_id, r.order_id, r.first_payment, r.matched_on, r.file_unique_id
           FROM receipt_reuses r JOIN users u ON u.id = r.user_id ORDER BY r.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        reuses,
        [
            (other.id, Some(order), original, "file_unique_id".into(), "uniq-orig".into()),
            (other.id, Some(order), original, "sha256".into(), "uniq-copy".into()),
        ]
    );
    assert_eq!(payments_of(pool, order).await, 0, "no payment for a reused receipt");
    assert_eq!(payment_status(pool, original).await, "under_review", "the first is untouched");
    assert_eq!(order_row(pool, order).await.0, "awaiting_payment");

    // the customer's own receipt still pays the order
    let answer = send_receipt(&shop, &other, "rcpt-own", "uniq-own", jpeg("own transfer")).await;
    assert!(answer.contains("under review"), "{answer}");
    assert_eq!(payments_of(pool, order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn what_is_not_an_image_receipt_gets_a_hint_and_an_image_file_is_taken(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4303);
    let (order, _) = order_by_card(&shop, &u).await;

    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n";
    let answer = send_document(&shop, &u, ("doc-pdf", "uniq-pdf"), "receipt.pdf", "application/pdf", pdf).await;
    assert!(answer.contains("This is not an image. Please send the receipt as a photo."), "{answer}");
    assert!(!fetched(&shop, "doc-pdf"), "refused by its type, not downloaded");
    // a PDF that calls itself an image is downloaded and refused by its bytes
    let answer = send_document(&shop, &u, ("doc-fake", "uniq-fake"), "receipt.png", "image/png", pdf).await;
    assert!(answer.contains("This is not an image"), "{answer}");
    assert!(fetched(&shop, "doc-fake"));

    shop.deliver(&message_update(next_id(), &u, "I have paid")).await;
    let hint = shop.screen(&u);
    assert!(hint.text.contains("send the receipt of your transfer as a <b>photo</b>"), "{}", hint.text);
    assert_eq!(hint.label_of(&format!("o:{order}")), "💳 Payment details");
    assert_eq!(payments_of(pool, order).await, 0);

    // an image sent as a file is a receipt, and the admins get it as a file
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(std::iter::repeat_n(7u8, 512));
    let answer = send_document(&shop, &u, ("doc-png", "uniq-png"), "receipt.png", "image/png", &png).await;
    assert!(answer.contains("under review"), "{answer}");
    let payment = payment_of(pool, order).await;
    let kind: String = sqlx::query_scalar("SELECT receipt_kind FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kind, "document");
    let posted = wait_calls_to(&shop, "sendDocument", ADMIN, 1).await;
    assert!(buttons(&posted[0]).contains(&format!("ra:{payment}")), "{:?}", posted[0].params);
    assert!(shop.tg.calls_of("sendPhoto").iter().all(|c| c.params["chat_id"] != ADMIN), "not as a photo");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_photo_with_no_order_awaiting_a_card_payment_is_not_taken(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4304);
    command(&shop, &u, "/start").await;
    let answer = send_receipt(&shop, &u, "rcpt-none", "uniq-none", jpeg("nothing to pay")).await;
    assert!(answer.contains("You have no order waiting for a card payment"), "{answer}");
    assert!(!fetched(&shop, "rcpt-none"));
    assert_eq!(number(pool, "SELECT count(*) FROM payments").await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn too_many_receipts_from_one_customer_are_refused_for_a_while(pool: PgPool) {
    let shop = card_shop_with(pool, |s| {
        s.payments.card.receipt_max = 2;
        s.payments.card.receipt_window_secs = 600;
    })
    .await;
    let pool = &shop.app.state.pool;
    let u = customer(4305);
    let (order, _) = order_by_card(&shop, &u).await;
    for n in 0..2 {
        let file = (format!("doc-{n}"), format!("uniq-doc-{n}"));
        let answer = send_document(&shop, &u, (&file.0, &file.1), "r.pdf", "application/pdf", b"%PDF-1.4").await;
        assert!(answer.contains("not an image"), "{n}: {answer}");
    }
    let answer = send_receipt(&shop, &u, "rcpt-third", "uniq-third", jpeg("third")).await;
    assert!(answer.contains("Too many receipts. Please wait 10 minutes and try again."), "{answer}");
    assert!(!fetched(&shop, "rcpt-third"));
    assert_eq!(payments_of(pool, order).await, 0);

    // the limit is the customer's own
    let other = customer(4306);
    let (other_order, _) = order_by_card(&shop, &other).await;
    let answer = send_receipt(&shop, &other, "rcpt-other", "uniq-other", jpeg("other")).await;
    assert!(answer.contains("under review"), "{answer}");
    assert_eq!(payments_of(pool, other_order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_receipt_after_the_deadline_is_refused_and_the_order_expires(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4307);
    let (order, _) = order_by_card(&shop, &u).await;
    sqlx::query("UPDATE orders SET pay_by = now() - interval '1 minute' WHERE id = $1")
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
    let answer = send_receipt(&shop, &u, "rcpt-late", "uniq-late", jpeg("late")).await;
    assert!(answer.contains("This order is no longer open for payment (its time ran out)"), "{answer}");
    assert_eq!(order_row(pool, order).await.0, "expired");
    assert_eq!(payments_of(pool, order).await, 0);
    assert_eq!(number(pool, "SELECT count(*) FROM jobs WHERE kind = 'review.post'").await, 0);
    // it is over: the next receipt has no order to pay
    let answer = send_receipt(&shop, &u, "rcpt-later", "uniq-later", jpeg("later")).await;
    assert!(answer.contains("no order waiting"), "{answer}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_persian_customer_is_answered_in_persian(pool: PgPool) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = user(4308, "fa");
    let (order, pay) = order_by_card(&shop, &u).await;
    assert!(pay.text.contains(crate::bot::CARD), "{}", pay.text);
    let rtl = |t: &str| t.lines().all(|l| l.starts_with('\u{200f}'));

    let answer = send_document(&shop, &u, ("fa-pdf", "uniq-fa-pdf"), "r.pdf", "application/pdf", b"%PDF-1.4").await;
    assert!(answer.contains("این فایل تصویر نیست") && rtl(&answer), "{answer:?}");
    let answer = send_receipt(&shop, &u, "rcpt-fa", "uniq-fa", jpeg("fa")).await;
    assert!(answer.contains("در حال بررسی") && rtl(&answer), "{answer:?}");
    assert!(!answer.contains("review") && !answer.contains(&order.to_string()), "Persian digits: {answer}");
    let (_, amount, currency) = order_row(pool, order).await;
    assert_eq!(currency.as_deref(), Some("IRR"));
    let payment = payment_of(pool, order).await;
    let paid: i64 = scalar(pool, "SELECT amount_minor FROM payments WHERE id = $1", payment).await;
    assert_eq!(Some(paid), amount, "the amount comes from the order");
    // the admins read the review in the shop's language
    let copy = wait_review(&shop, ADMIN, payment).await;
    assert!(shown(&shop, ADMIN, copy).contains("under review"));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_customer_sending_their_own_rejected_receipt_again_is_asked_for_a_new_one_without_a_fraud_alert(
    pool: PgPool,
) {
    let shop = card_shop(pool).await;
    let pool = &shop.app.state.pool;
    let u = customer(4391);
    let (order, _) = order_by_card(&shop, &u).await;
    send_receipt(&shop, &u, "rcpt-mine", "uniq-mine", jpeg("mine")).await;
    let payment = payment_of(pool, order).await;
    let answer = admin_says(&shop, &admin(ADMIN), &format!("/reject {payment} not there yet")).await;
    assert!(answer.contains("rejected"), "{answer}");
    wait_text(&shop, u.id, "not there yet").await;

    let again = send_receipt(&shop, &u, "rcpt-mine", "uniq-mine", jpeg("mine")).await;
    assert!(again.contains("You sent this receipt before") && again.contains("@vpnshop_support"), "{again}");
    let reuses: i64 = scalar(pool, "SELECT count(*) FROM receipt_reuses WHERE order_id = $1", order).await;
    assert_eq!(reuses, 0, "not recorded as someone else's receipt");
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM job_keys WHERE key LIKE 'alert:reuse:%'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(alerts, 0, "no fraud alert for the customer's own receipt");
    assert_eq!(payments_of(pool, order).await, 1, "no new payment");
}
