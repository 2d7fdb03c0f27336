//! Stripe: the Checkout Session a customer is sent to, and `POST /pay/stripe/webhook` — signed events fulfil an
//! order exactly once, in whatever order and however often they come; anything unsigned, stale, or for the wrong
//! amount grants nothing.

use serde_json::{Value, json};
use sqlx::PgPool;
use vpnshop::config::Settings;

use crate::bot::{BotShop, bot_shop_with, press, walk_to_summary};
use crate::helpers::TestApp;
use crate::payments::{
    ADMIN, card_settings, customer, number, payment_of, payment_status, scalar, texts_to, wait_text,
};
use crate::support::stripe::{FakeStripe, STRIPE_KEY, WEBHOOK_SECRET, event, signature};
use crate::support::{BOT_USERNAME, TgUser};

/// Stripe pointed at the fake (beside card payments), the bot's username for the way back.
pub fn stripe_settings(s: &mut Settings, fake: &FakeStripe) {
    card_settings(s);
    s.stripe.api_url = fake.url();
    s.stripe.secret_key = Some(STRIPE_KEY.to_owned().into());
    s.stripe.webhook_secret = Some(WEBHOOK_SECRET.to_owned().into());
    s.stripe.timeout_secs = 2;
    s.stripe.max_retries = 1;
    s.telegram.bot_username = Some(BOT_USERNAME.to_owned());
}

pub async fn stripe_shop_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> (BotShop, FakeStripe) {
    let fake = FakeStripe::start().await;
    let shop = bot_shop_with(pool, |s| {
        stripe_settings(s, &fake);
        customize(s);
    })
    .await;
    (shop, fake)
}

/// An order paid with Stripe: its id, its payment and the Checkout Session the customer was sent to.
pub struct Ordered {
    pub order: i64,
    pub payment: i64,
    pub session: String,
}

/// Walks a customer to the summary and chooses Stripe.
pub async fn order_by_stripe(shop: &BotShop, u: &TgUser) -> Ordered {
    let (order, summary) = walk_to_summary(shop, u).await;
    press(shop, u, &summary.data(&format!("p:{order}:stripe"))).await;
    let pool = &shop.app.state.pool;
    let payment = payment_of(pool, order).await;
    let session: Option<String> = sqlx::query_scalar("SELECT stripe_session_id FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(pool)
        .await
        .unwrap();
    Ordered { order, payment, session: session.expect("the payment has its Checkout Session") }
}

/// The URLs of the link buttons on the bot's latest message in this chat.
pub fn pay_links(shop: &BotShop, u: &TgUser) -> Vec<String> {
    let call = shop
        .tg
        .calls()
        .into_iter()
        .rev()
        .find(|c| {
            matches!(c.method.as_str(), "sendMessage" | "editMessageText") && c.params["chat_id"].as_i64() == Some(u.id)
        })
        .expect("the bot said something");
    let rows = call.params["reply_markup"]["inline_keyboard"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .filter_map(|b| Some(b["url"].as_str()?.to_owned()))
        .collect()
}

/// POSTs a body to the webhook with this `Stripe-Signature` (or none); returns the status.
pub async fn post_event(app: &TestApp, body: &str, signature: Option<&str>) -> u16 {
    let mut request = app.http.post(app.url("/pay/stripe/webhook")).header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    request.body(body.to_owned()).send().await.unwrap().status().as_u16()
}

/// Delivers an event the way Stripe does: signed now with the endpoint's secret.
pub async fn deliver(app: &TestApp, event: &Value) -> u16 {
    let body = event.to_string();
    post_event(app, &body, Some(&signature(&body, now(), &[WEBHOOK_SECRET]))).await
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub const SUBS: &str = "SELECT count(*) FROM subscriptions WHERE order_id = $1";
pub const EVENTS: &str = "SELECT count(*) FROM webhook_events WHERE provider = 'stripe'";

pub async fn order_status(pool: &PgPool, order: i64) -> String {
    crate::bot::order_row(pool, order).await.0
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_usd_customer_is_sent_to_a_checkout_session_for_the_exact_amount(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let u = customer(6101);
    let (order, summary) = walk_to_summary(&shop, &u).await;
    assert_eq!(summary.label_of(&format!("p:{order}:stripe")), "💳 Card (Stripe)", "{summary:#?}");
    let screen = press(&shop, &u, &format!("p:{order}:stripe")).await;
    assert!(screen.text.contains("$2.99") && screen.text.contains("secure payment page"), "{}", screen.text);

    let payment = payment_of(pool, order).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = &calls[0];
    assert_eq!(call.status, 200, "{call:#?}");
    assert_eq!(call.authorization.as_deref(), Some(format!("Bearer {STRIPE_KEY}").as_str()));
    let key = idempotency_key(pool, payment).await;
    assert_eq!(call.idempotency_key.as_deref(), Some(key.as_str()), "the payment's own, install-wide unique key");
    let form = |k: &str| call.form.get(k).cloned().unwrap_or_else(|| panic!("no {k} in {:#?}", call.form));
    assert_eq!(form("mode"), "payment");
    assert_eq!(form("line_items[0][price_data][unit_amount]"), "299");
    assert_eq!(form("line_items[0][price_data][currency]"), "usd");
    assert_eq!(form("line_items[0][quantity]"), "1");
    assert_eq!(form("client_reference_id"), order.to_string());
    assert_eq!((form("metadata[order_id]"), form("metadata[payment_id]")), (order.to_string(), payment.to_string()));
    assert_eq!(form("payment_intent_data[metadata][order_id]"), order.to_string());
    assert_eq!(form("payment_intent_data[metadata][payment_id]"), payment.to_string());
    let back = format!("https://t.me/{BOT_USERNAME}?start=paid_{order}");
    assert_eq!((form("success_url"), form("cancel_url")), (back.clone(), back));
    // payments.online_expiry_mins = 60
    let expires_in = form("expires_at").parse::<i64>().unwrap() - now();
    assert!((3590..=3600).contains(&expires_in), "expires in {expires_in} s");

    let session = fake.sessions().remove(0);
    let url = session.json["url"].as_str().unwrap().to_owned();
    assert_eq!(pay_links(&shop, &u), std::slice::from_ref(&url), "a button to the session's page");
    let (stored, status): (Option<String>, String) =
        sqlx::query_as("SELECT stripe_session_id, status FROM payments WHERE id = $1")
            .bind(payment)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((stored.as_deref(), status.as_str()), (Some(session.id.as_str()), "pending"));

    // the same order shown again: the same page, no second session
    press(&shop, &u, &format!("o:{order}")).await;
    assert_eq!(pay_links(&shop, &u), [url]);
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(fake.sessions().len(), 1);

    // a customer paying in rials is not offered Stripe
    let fa = crate::bot::user(6112, "fa");
    let (fa_order, fa_summary) = walk_to_summary(&shop, &fa).await;
    assert!(fa_summary.buttons.iter().all(|(_, d)| d != &format!("p:{fa_order}:stripe")), "{fa_summary:#?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_signed_completed_event_fulfils_the_order_once_however_often_it_comes(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let u = customer(6102);
    let o = order_by_stripe(&shop, &u).await;
    assert_eq!(scalar(pool, SUBS, o.order).await, 0);

    let completed = fake.completed_event(&o.session);
    for _ in 0..5 {
        assert_eq!(deliver(&shop.app, &completed).await, 200);
    }
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(order_status(pool, o.order).await, "fulfilled");
    assert_eq!(scalar(pool, SUBS, o.order).await, 1, "one subscription");
    let place = "SELECT count(*) FROM jobs WHERE kind = 'subscription.place'
                  AND payload->>'subscription_id' = (SELECT id FROM subscriptions WHERE order_id = $1)::text";
    assert_eq!(scalar(pool, place, o.order).await, 1, "one placement");
    assert_eq!(number(pool, EVENTS).await, 1, "the event recorded once");
    let (intent, event_id): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT stripe_payment_intent_id, stripe_event_id FROM payments WHERE id = $1")
            .bind(o.payment)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(intent.as_deref(), completed["data"]["object"]["payment_intent"].as_str());
    assert_eq!(event_id.as_deref(), completed["id"].as_str());

    // the customer hears of it without coming back; the admins see the payment
    wait_text(&shop, u.id, &format!("Payment for order <b>#{}</b> accepted", o.order)).await;
    wait_text(&shop, ADMIN, &format!("stripe payment #{}", o.payment)).await;
    let accepted = texts_to(&shop, u.id).iter().filter(|t| t.contains("accepted")).count();
    assert_eq!(accepted, 1, "{:#?}", texts_to(&shop, u.id));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn completed_after_expired_still_fulfils_and_a_late_expiry_changes_nothing(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6103)).await;
    let expired = fake.expired_event(&o.session);
    assert_eq!(deliver(&shop.app, &expired).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "failed");
    assert_eq!(scalar(pool, SUBS, o.order).await, 0);

    // the money arrived after all (events are unordered): it is fulfilled
    assert_eq!(deliver(&shop.app, &fake.completed_event(&o.session)).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(order_status(pool, o.order).await, "fulfilled");
    // a new expiry event after that (another id) takes nothing back
    assert_eq!(deliver(&shop.app, &fake.expired_event(&o.session)).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(scalar(pool, SUBS, o.order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_refund_before_its_completion_leaves_nothing_granted(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6104)).await;
    let refunded = fake.refunded_event(&o.session);
    let completed = fake.completed_event(&o.session);
    // the refund comes first: its PaymentIntent is not known yet, the charge's metadata names the payment
    assert_eq!(deliver(&shop.app, &refunded).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "refunded");
    assert_eq!(deliver(&shop.app, &completed).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "refunded");
    assert_eq!(order_status(pool, o.order).await, "awaiting_payment");
    assert_eq!(scalar(pool, SUBS, o.order).await, 0, "nothing granted");
    assert_eq!(number(pool, EVENTS).await, 2);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_refund_after_fulfilment_takes_the_service_back(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let u = customer(6105);
    let o = order_by_stripe(&shop, &u).await;
    assert_eq!(deliver(&shop.app, &fake.completed_event(&o.session)).await, 200);
    assert_eq!(order_status(pool, o.order).await, "fulfilled");
    // a partial refund takes nothing back; the admins are told
    let mut partial = fake.refunded_event(&o.session);
    partial["data"]["object"]["refunded"] = json!(false);
    partial["data"]["object"]["amount_refunded"] = json!(100);
    assert_eq!(deliver(&shop.app, &partial).await, 200);
    wait_text(&shop, ADMIN, "100 of 299 USD refunded").await;
    assert_eq!(
        (payment_status(pool, o.payment).await, order_status(pool, o.order).await.as_str()),
        ("succeeded".into(), "fulfilled")
    );
    // found by the PaymentIntent stored at completion
    let mut refunded = fake.refunded_event(&o.session);
    refunded["data"]["object"]["metadata"] = json!({});
    assert_eq!(deliver(&shop.app, &refunded).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "refunded");
    assert_eq!(order_status(pool, o.order).await, "refunded");
    let status: String = sqlx::query_scalar("SELECT status FROM subscriptions WHERE order_id = $1")
        .bind(o.order)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "revoked");
    wait_text(&shop, u.id, "was refunded").await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn bad_signatures_and_stale_timestamps_are_refused_and_nothing_is_recorded(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6106)).await;
    let completed = fake.completed_event(&o.session);
    let body = completed.to_string();
    let mut cheaper = completed.clone();
    cheaper["data"]["object"]["amount_total"] = json!(1);
    let t = now();
    let refused: Vec<(&str, String, Option<String>)> = vec![
        ("no signature", body.clone(), None),
        ("another secret", body.clone(), Some(signature(&body, t, &["whsec_someone_else"]))),
        ("a changed body", cheaper.to_string(), Some(signature(&body, t, &[WEBHOOK_SECRET]))),
        ("no v1", body.clone(), Some(format!("t={t}"))),
        ("v0 only", body.clone(), Some(signature(&body, t, &[WEBHOOK_SECRET]).replace("v1=", "v0="))),
        ("301 s old", body.clone(), Some(signature(&body, t - 301, &[WEBHOOK_SECRET]))),
        // ahead by more than the 300 s tolerance plus however long this loop takes on a busy machine
        ("330 s ahead", body.clone(), Some(signature(&body, t + 330, &[WEBHOOK_SECRET]))),
    ];
    for (what, body, sig) in &refused {
        assert_eq!(post_event(&shop.app, body, sig.as_deref()).await, 400, "{what}");
    }
    assert_eq!(number(pool, EVENTS).await, 0, "nothing recorded");
    assert_eq!(payment_status(pool, o.payment).await, "pending");
    assert_eq!(scalar(pool, SUBS, o.order).await, 0);

    // the same event, signed right (a little while ago, within the tolerance), is applied
    assert_eq!(post_event(&shop.app, &body, Some(&signature(&body, now() - 270, &[WEBHOOK_SECRET]))).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    assert_eq!(scalar(pool, SUBS, o.order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_wrong_amount_or_currency_is_held_for_an_admin_and_grants_nothing(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    for (customer_id, field, value) in [(6107, "amount_total", json!(199)), (6108, "currency", json!("eur"))] {
        let o = order_by_stripe(&shop, &customer(customer_id)).await;
        let mut completed = fake.completed_event(&o.session);
        completed["data"]["object"][field] = value;
        assert_eq!(deliver(&shop.app, &completed).await, 200, "answered, so Stripe stops retrying");
        assert_eq!(payment_status(pool, o.payment).await, "pending", "{field}");
        let reason: Option<String> =
            sqlx::query_scalar("SELECT failure_reason FROM payments WHERE id = $1 AND flagged_at IS NOT NULL")
                .bind(o.payment)
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(reason.unwrap_or_default().contains("for a payment of 299 USD"), "{field}");
        assert_eq!(order_status(pool, o.order).await, "awaiting_payment");
        assert_eq!(scalar(pool, SUBS, o.order).await, 0, "{field}: nothing granted");
        wait_text(&shop, ADMIN, &format!("Payment #{} (stripe) was not fulfilled", o.payment)).await;
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn during_a_secret_rotation_either_active_secret_verifies(pool: PgPool) {
    const NEW: &str = "whsec_test_vpnshop_rolled";
    let (shop, fake) = stripe_shop_with(pool, |s| s.stripe.webhook_secrets = vec![NEW.to_owned().into()]).await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6109)).await;
    let body = fake.completed_event(&o.session).to_string();
    let t = now();
    assert_eq!(post_event(&shop.app, &body, Some(&signature(&body, t, &["whsec_test_retired"]))).await, 400);
    assert_eq!(payment_status(pool, o.payment).await, "pending");
    // only the second secret's signature (a retired one beside it): verified
    let both = signature(&body, t, &["whsec_test_retired", NEW]);
    assert_eq!(post_event(&shop.app, &body, Some(&both)).await, 200);
    assert_eq!(payment_status(pool, o.payment).await, "succeeded");
    // the first secret still works too
    let late = fake.expired_event(&o.session).to_string();
    assert_eq!(post_event(&shop.app, &late, Some(&signature(&late, t, &[WEBHOOK_SECRET]))).await, 200);
    assert_eq!(number(pool, EVENTS).await, 2);
    assert_eq!(scalar(pool, SUBS, o.order).await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn events_about_no_payment_of_ours_or_of_other_kinds_are_acknowledged_and_change_nothing(pool: PgPool) {
    let (shop, _fake) = stripe_shop_with(pool, |_| {}).await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6110)).await;
    let stranger = |metadata: Value| {
        event(
            "checkout.session.completed",
            json!({ "id": format!("cs_test_other_{}", uuid::Uuid::new_v4().simple()), "object": "checkout.session",
                    "amount_total": 299, "currency": "usd", "payment_status": "paid", "payment_intent": "pi_other",
                    "metadata": metadata }),
        )
    };
    // another shop's session; one naming our payment with another order (both ids must agree)
    assert_eq!(deliver(&shop.app, &stranger(json!({}))).await, 200);
    let wrong_order = json!({ "payment_id": o.payment.to_string(), "order_id": (o.order + 1).to_string() });
    assert_eq!(deliver(&shop.app, &stranger(wrong_order)).await, 200);
    // another install on the same Stripe account: our ids by coincidence, but not our payment's public id
    let other_install = json!({ "payment_id": o.payment.to_string(), "order_id": o.order.to_string(),
                                "payment_ref": uuid::Uuid::new_v4().to_string() });
    assert_eq!(deliver(&shop.app, &stranger(other_install)).await, 200);
    let no_ref = json!({ "payment_id": o.payment.to_string(), "order_id": o.order.to_string() });
    assert_eq!(deliver(&shop.app, &stranger(no_ref)).await, 200);
    assert_eq!(
        deliver(&shop.app, &event("customer.created", json!({ "id": "cus_1", "object": "customer" }))).await,
        200
    );
    assert_eq!(payment_status(pool, o.payment).await, "pending");
    assert_eq!(scalar(pool, SUBS, o.order).await, 0);
    assert_eq!(number(pool, EVENTS).await, 5, "each seen once");
    let flagged = "SELECT count(*) FROM payments WHERE flagged_at IS NOT NULL AND order_id = $1";
    assert_eq!(scalar(pool, flagged, o.order).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn large_and_frequent_deliveries_are_not_cut_by_the_public_limits(pool: PgPool) {
    let (shop, fake) = stripe_shop_with(pool, |s| {
        s.http.rate_limit_burst = 5;
        s.http.rate_limit_per_second = 0.5;
    })
    .await;
    let pool = &shop.app.state.pool;
    let o = order_by_stripe(&shop, &customer(6111)).await;
    // 40 KiB, past http.max_body_bytes (16 KiB)
    let mut completed = fake.completed_event(&o.session);
    completed["data"]["object"]["custom_text"] = json!({ "note": "x".repeat(40 * 1024) });
    for _ in 0..20 {
        assert_eq!(deliver(&shop.app, &completed).await, 200);
    }
    assert_eq!(scalar(pool, SUBS, o.order).await, 1);
    // the public routes are limited (20 requests there from the same address meet 429s)
    let mut limited = 0;
    for _ in 0..20 {
        let status = shop.app.http.get(shop.app.url("/sub/nope")).send().await.unwrap().status().as_u16();
        limited += usize::from(status == 429);
    }
    assert!(limited > 0, "the public rate limit is on");
    // and the webhook has its own body limit
    completed["data"]["object"]["custom_text"] = json!({ "note": "x".repeat(300 * 1024) });
    assert_eq!(deliver(&shop.app, &completed).await, 413);
}

/// The Idempotency-Key of a payment's checkout: its public id, unique across installs sharing a Stripe account.
pub async fn idempotency_key(pool: &PgPool, payment: i64) -> String {
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT public_id FROM payments WHERE id = $1").bind(payment).fetch_one(pool).await.unwrap();
    format!("vpnshop-{id}")
}
