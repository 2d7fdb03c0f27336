//! The plans pages (`/dash/plans`): the catalogue and a plan render for every role in every language; editors put
//! plans on and off sale (the shop follows) and set prices typed in major units, parsed exactly per currency —
//! audited, with orders keeping the price they were made at; viewers, forged forms, bad amounts and unknown ids
//! change nothing.

use reqwest::StatusCode;
use sqlx::PgPool;
use vpnshop::domain::status::PaymentMethod;
use vpnshop::domain::{Currency, Language};
use vpnshop::services::orders::{self, Choice, Shop};
use vpnshop::services::shop::{self, PlanOption};

use super::{Dash, dash, dash_with};

/// The first plan on sale in Germany, as the shop offers it.
async fn de_plan(pool: &PgPool) -> PlanOption {
    shop::plans_in(pool, "de").await.unwrap().into_iter().next().expect("the catalogue sells in de")
}

/// What a change could touch: every plan's listing and prices, and plan audit entries.
async fn snapshot(pool: &PgPool) -> (Vec<(i64, bool)>, Vec<(i64, String, i64)>, i64) {
    let plans = sqlx::query_as("SELECT id, active FROM plans ORDER BY id").fetch_all(pool).await.unwrap();
    let prices = sqlx::query_as("SELECT plan_id, currency, amount_minor FROM plan_prices ORDER BY plan_id, currency")
        .fetch_all(pool)
        .await
        .unwrap();
    let audited =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE entity = 'plan'").fetch_one(pool).await.unwrap();
    (plans, prices, audited)
}

async fn audited(pool: &PgPool, action: &str) -> Vec<(String, Option<String>, Option<String>, serde_json::Value)> {
    sqlx::query_as("SELECT actor_kind, actor_id, entity_id, detail FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn admin_id(pool: &PgPool, name: &str) -> String {
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM admins WHERE username = $1").bind(name).fetch_one(pool).await.unwrap();
    id.to_string()
}

async fn price(pool: &PgPool, plan: i64, currency: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT amount_minor FROM plan_prices WHERE plan_id = $1 AND currency = $2")
        .bind(plan)
        .bind(currency)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn the_plan_pages_render_for_every_role_in_every_language_and_viewers_see_no_change_forms(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = de_plan(&pool).await;
    let usd = plan.prices.iter().find(|(c, _)| *c == Currency::Usd).expect("a USD price").1;
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            for path in [
                "/dash/plans".to_owned(),
                "/dash/plans?location=de&sale=on".to_owned(),
                format!("/dash/plans/{}", plan.plan_id),
            ] {
                let page = d.get(&mut b, &path).await;
                page.assert_ok();
                assert_eq!(page.body.contains(r#"dir="rtl""#), lang == "fa", "{who} {lang} {path}");
                assert!(
                    !page.body.contains(" style=") && !page.body.contains("<script>"),
                    "{path}: inline style or script"
                );
                let money = vpnshop::domain::Money::from_minor(usd, Currency::Usd).unwrap();
                assert!(
                    page.body.contains(&money.format(lang.parse::<Language>().unwrap())),
                    "{who} {lang} {path}: price shown"
                );
                let forms = page.body.contains("/disable\"") || page.body.contains(r#"name="amount""#);
                assert_eq!(forms, who != "viewer", "{who} {lang} {path}: change forms only for editors");
            }
        }
    }
}

#[sqlx::test]
async fn disabling_a_plan_takes_it_out_of_the_shop_audited_and_enabling_brings_it_back(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = de_plan(&pool).await.plan_id;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/plans").await.assert_ok();
    let off = d.post(&mut b, &format!("/dash/plans/{plan}/disable"), &[("back", "list")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    assert_eq!(off.location(), Some("/dash/plans?done=plan-disabled"));
    assert!(
        !shop::plans_in(&pool, "de").await.unwrap().iter().any(|p| p.plan_id == plan),
        "the shop no longer sells it"
    );
    let page = d.get(&mut b, "/dash/plans?done=plan-disabled").await;
    assert!(page.body.contains("customers no longer see it"), "the flash says so");
    let entries = audited(&pool, "plan.deactivate").await;
    assert_eq!(entries.len(), 1);
    let editor = admin_id(&pool, "editor").await;
    assert_eq!((entries[0].0.as_str(), entries[0].1.as_deref()), ("admin", Some(editor.as_str())));
    assert_eq!(entries[0].2, Some(plan.to_string()));

    let on = d.post(&mut b, &format!("/dash/plans/{plan}/enable"), &[]).await;
    assert_eq!(on.location(), Some(format!("/dash/plans/{plan}?done=plan-enabled").as_str()));
    assert!(shop::plans_in(&pool, "de").await.unwrap().iter().any(|p| p.plan_id == plan), "on sale again");
    assert_eq!(audited(&pool, "plan.activate").await.len(), 1);
}

#[sqlx::test]
async fn a_price_edit_is_exact_and_audited_and_an_earlier_order_keeps_its_price(pool: PgPool) {
    let d = dash_with(pool.clone(), |s| {
        s.payments.card.number = "6037-9975-0000-0000".into();
        s.payments.card.holder = "Shop Owner".into();
        s.payments.card.bank = "Mellat".into();
    })
    .await;
    let state = &d.app.state;
    let plan = de_plan(&pool).await;
    let before = price(&pool, plan.plan_id, "USD").await.expect("a USD price");
    // a customer orders through the shop's own steps before the price changes
    let user: i64 = sqlx::query_scalar("INSERT INTO users (telegram_id, language) VALUES (7001, 'en') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    let draft = orders::start(&pool, user, Currency::Usd).await.unwrap();
    for choice in [
        Choice::Location("de".into()),
        Choice::Duration(plan.duration_days),
        Choice::Devices(plan.seats),
        Choice::Data(plan.data),
    ] {
        orders::choose(&pool, user, draft.order_id, choice).await.unwrap();
    }
    let shop = Shop { settings: &state.settings, gateways: &state.gateways, rates: state.rates.as_ref() };
    let submitted = orders::submit(&pool, shop, user, draft.order_id, PaymentMethod::Card, Currency::Usd)
        .await
        .unwrap()
        .expect("the order is submitted");
    assert_eq!(submitted.price.minor(), before);

    let mut b = d.sign_in("editor").await;
    d.get(&mut b, &format!("/dash/plans/{}", plan.plan_id)).await.assert_ok();
    let new = before + 123;
    let typed = format!("{}.{:02}", new / 100, new % 100);
    let set = d.post(&mut b, &format!("/dash/plans/{}/prices/USD", plan.plan_id), &[("amount", &typed)]).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(price(&pool, plan.plan_id, "USD").await, Some(new), "{typed} is exactly {new} cents");
    let irr = d.post(&mut b, &format!("/dash/plans/{}/prices/irr", plan.plan_id), &[("amount", "1250000")]).await;
    assert_eq!(irr.status, StatusCode::SEE_OTHER, "{}", irr.body);
    assert_eq!(price(&pool, plan.plan_id, "IRR").await, Some(1_250_000), "rials have no fraction digits");

    let (order, _) = orders::admin::detail(&pool, submitted.order_id).await.unwrap();
    assert_eq!((order.amount_minor, order.currency), (Some(before), Some(Currency::Usd)), "the order keeps its price");
    let entries = audited(&pool, "plan.price_set").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].1, Some(admin_id(&pool, "editor").await));
    assert_eq!((entries[0].3["before"].as_i64(), entries[0].3["amount_minor"].as_i64()), (Some(before), Some(new)));
    let page = d.get(&mut b, &format!("/dash/plans/{}?done=price-set", plan.plan_id)).await;
    assert!(page.body.contains(&format!("value=\"{typed}\"")), "the form shows the new price");

    let removed = d.post(&mut b, &format!("/dash/plans/{}/prices/IRR/remove", plan.plan_id), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(price(&pool, plan.plan_id, "IRR").await, None);
    assert_eq!(audited(&pool, "plan.price_delete").await.len(), 1);
}

#[sqlx::test]
async fn bad_amounts_and_unknown_ids_are_refused_naming_the_field_and_nothing_is_written(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = de_plan(&pool).await.plan_id;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/plans").await.assert_ok();
    let before = snapshot(&pool).await;
    for (currency, amount) in [
        ("USD", "abc"),
        ("USD", "-5"),
        ("USD", "4.999"),
        ("USD", "0"),
        ("USD", ""),
        ("USD", "1e3"),
        ("USD", "1,000"),
        ("EUR", "99999999999999999"),
        ("IRR", "1000.5"),
    ] {
        let page = d.post(&mut b, &format!("/dash/plans/{plan}/prices/{currency}"), &[("amount", amount)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{currency} {amount:?}");
        assert!(page.body.contains("amount:"), "{currency} {amount:?}: the field is named");
        assert!(page.body.contains(r#"aria-invalid="true""#), "{currency} {amount:?}: the field is marked");
    }
    let missing = d.post(&mut b, &format!("/dash/plans/{plan}/prices/USD"), &[]).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.body.contains("amount"));
    let currency = d.post(&mut b, &format!("/dash/plans/{plan}/prices/XYZ"), &[("amount", "5")]).await;
    assert_eq!(currency.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(currency.body.contains("currency:"));
    for path in ["/dash/plans/999999/disable", "/dash/plans/999999/prices/USD"] {
        let page = d.post(&mut b, path, &[("amount", "5")]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(d.get(&mut b, "/dash/plans/999999").await.status, StatusCode::NOT_FOUND);
    let bad_id = d.get(&mut b, "/dash/plans/abc").await;
    assert_eq!(bad_id.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_id.body.contains("id:"));
    let bad_filter = d.get(&mut b, "/dash/plans?sale=maybe").await;
    assert_eq!(bad_filter.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_filter.body.contains("sale:"));
    assert_eq!(snapshot(&pool).await, before, "nothing was written");
}

async fn refused(d: &Dash, pool: &PgPool, who: &'static str, csrf: Option<&str>, plan: i64) {
    let mut b = d.sign_in(who).await;
    d.get(&mut b, "/dash/plans").await.assert_ok();
    let before = snapshot(pool).await;
    for (path, form) in [
        (format!("/dash/plans/{plan}/disable"), vec![]),
        (format!("/dash/plans/{plan}/prices/USD"), vec![("amount", "1.00")]),
        (format!("/dash/plans/{plan}/prices/USD/remove"), vec![]),
    ] {
        let page = match csrf {
            None => d.post(&mut b, &path, &form).await,
            Some(token) => {
                let mut fields = form.clone();
                if !token.is_empty() {
                    fields.push(("csrf", token));
                }
                d.post_raw(&mut b, &path, &fields).await
            }
        };
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{who} {csrf:?} {path}");
    }
    assert_eq!(snapshot(pool).await, before, "{who} {csrf:?}: nothing changed");
}

#[sqlx::test]
async fn viewers_and_forged_forms_change_no_plan(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = de_plan(&pool).await.plan_id;
    refused(&d, &pool, "viewer", None, plan).await;
    refused(&d, &pool, "editor", Some(""), plan).await;
    refused(&d, &pool, "editor", Some("forged-token"), plan).await;
}
