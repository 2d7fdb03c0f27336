//! Money and customers over the admin API: payments (listing under concurrent inserts, filters, decisions racing
//! the Telegram path), subscriptions, the audit log and the statistics — and bad inputs refused without a write.

mod bench;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use vpnshop::services::payments::review::{self, Decision, Reviewer, Verdict};

use super::{api, assert_problem};
use crate::helpers::server_input;

/// A plan that is sold (not a trial).
pub async fn plan_id(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT id FROM plans WHERE NOT is_trial ORDER BY id LIMIT 1").fetch_one(pool).await.unwrap()
}

/// `n` customers (telegram ids from `first`); their ids.
pub async fn customers(pool: &PgPool, first: i64, n: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "INSERT INTO users (telegram_id, username) SELECT $1 + g, 'c' || ($1 + g) FROM generate_series(0, $2 - 1) g
         RETURNING id",
    )
    .bind(first)
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `n` payments, each with its own order awaiting payment, of the customers in turn: even ones by card (accepted
/// or rejected), odd ones by Stripe (succeeded or failed), created a minute apart in threes (so ties on
/// created_at are broken by id) going back from `base`. Returns their ids.
async fn seed_payments(pool: &PgPool, users: &[i64], n: i64, base: chrono::DateTime<chrono::Utc>) -> Vec<i64> {
    let plan = plan_id(pool).await;
    sqlx::query_scalar(
        "WITH o AS (
            INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
            SELECT ($1::int8[])[1 + g % cardinality($1::int8[])], $2, 100 + g, 'USD', 'awaiting_payment'
              FROM generate_series(1, $3) g
         RETURNING id, amount_minor)
         INSERT INTO payments (order_id, method, status, amount_minor, currency, created_at)
         SELECT id, CASE WHEN rn % 2 = 0 THEN 'card' ELSE 'stripe' END,
                CASE rn % 4 WHEN 0 THEN 'accepted' WHEN 1 THEN 'succeeded' WHEN 2 THEN 'rejected' ELSE 'failed' END,
                amount_minor, 'USD', $4 - (rn / 3) * interval '1 minute'
           FROM (SELECT id, amount_minor, row_number() OVER (ORDER BY id) AS rn FROM o) x
         RETURNING id",
    )
    .bind(users)
    .bind(plan)
    .bind(n)
    .bind(base)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_payment_listing_walks_every_row_once_while_rows_are_inserted(pool: PgPool) {
    let api = api(pool.clone()).await;
    let users = customers(&pool, 10_000, 5).await;
    let base = chrono::Utc::now();
    let before: HashSet<i64> = seed_payments(&pool, &users, 1000, base).await.into_iter().collect();
    assert_eq!(before.len(), 1000);

    for order in ["desc", "asc"] {
        // meanwhile, new payments land everywhere in the order (past, present)
        let stop = Arc::new(AtomicBool::new(false));
        let inserter = {
            let (pool, stop, users) = (pool.clone(), stop.clone(), users.clone());
            tokio::spawn(async move {
                let mut n = 0;
                let mut at = base;
                while !stop.load(Ordering::Relaxed) {
                    at -= chrono::Duration::seconds(37);
                    seed_payments(&pool, &users, 3, at).await;
                    n += 3;
                    tokio::task::yield_now().await;
                }
                n
            })
        };
        let walked = ids(&api.walk(&format!("/api/v1/payments?order={order}"), 37).await);
        stop.store(true, Ordering::Relaxed);
        let inserted = inserter.await.unwrap();
        assert!(inserted > 0, "rows were inserted during the walk");
        let mut seen = HashSet::new();
        for id in &walked {
            assert!(seen.insert(*id), "{order}: payment {id} listed twice");
        }
        let missing: Vec<&i64> = before.iter().filter(|id| !seen.contains(id)).collect();
        assert!(missing.is_empty(), "{order}: {} payments that existed before the walk were skipped", missing.len());
        // and in the order asked for
        let times: HashMap<i64, chrono::DateTime<chrono::Utc>> =
            sqlx::query_as("SELECT id, created_at FROM payments").fetch_all(&pool).await.unwrap().into_iter().collect();
        for pair in walked.windows(2) {
            let (a, b) = ((times[&pair[0]], pair[0]), (times[&pair[1]], pair[1]));
            assert!(if order == "desc" { a > b } else { a < b }, "{order}: {a:?} then {b:?}");
        }
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn payment_filters_combine_to_exactly_the_expected_set(pool: PgPool) {
    let api = api(pool.clone()).await;
    let users = customers(&pool, 20_000, 5).await;
    let base = chrono::Utc::now();
    seed_payments(&pool, &users, 400, base).await;
    let from = base - chrono::Duration::minutes(100);
    let to = base - chrono::Duration::minutes(20);
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT p.id FROM payments p JOIN orders o ON o.id = p.order_id
          WHERE p.status = 'accepted' AND p.method = 'card' AND o.user_id = $1 AND p.created_at >= $2 AND p.created_at < $3
          ORDER BY p.created_at DESC, p.id DESC",
    )
    .bind(users[1])
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(expected.len() >= 3, "the dataset has matches: {expected:?}");
    let q =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
    let path = format!(
        "/api/v1/payments?status=accepted&method=card&user_id={}&created_from={}&created_to={}",
        users[1],
        q(from),
        q(to)
    );
    let got = ids(&api.walk(&path, 2).await);
    assert_eq!(got, expected);
    for item in api.get(&path).await.body["items"].as_array().unwrap() {
        assert_eq!(
            item["amount"].as_str().unwrap(),
            format!(
                "{}.{:02}",
                item["amount_minor"].as_i64().unwrap() / 100,
                item["amount_minor"].as_i64().unwrap() % 100
            )
        );
        assert_eq!(item["currency"], "USD");
    }

    // each filter alone, too
    let all_stripe = ids(&api.walk("/api/v1/payments?method=stripe", 200).await);
    assert_eq!(all_stripe.len(), 200);
    let order_id: i64 = sqlx::query_scalar("SELECT order_id FROM payments WHERE id = $1")
        .bind(expected[0])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ids(&api.walk(&format!("/api/v1/payments?order_id={order_id}"), 10).await), vec![expected[0]]);
    let failed_of_user = ids(&api.walk(&format!("/api/v1/payments?status=failed&user_id={}", users[0]), 50).await);
    assert_eq!(failed_of_user.len(), 20);
    let detail = api.get(&format!("/api/v1/payments/{}", expected[0])).await;
    assert_eq!(detail.status, StatusCode::OK, "{detail:?}");
    assert_eq!(detail.body["user_id"].as_i64(), Some(users[1]));
    assert_eq!(detail.body["status"], "accepted");
    assert!(
        detail.body["processor"].is_object() && detail.body["receipt"].is_object() && detail.body["review"].is_object()
    );
    assert_problem(&api.get("/api/v1/payments/999999999").await, 404, None);
}

/// `n` card payments under review, each with its own customer and order awaiting payment.
pub async fn under_review(pool: &PgPool, first_tg: i64, n: i64) -> Vec<i64> {
    let users = customers(pool, first_tg, n).await;
    let plan = plan_id(pool).await;
    sqlx::query_scalar(
        "WITH o AS (
            INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, pay_by)
            SELECT u, $2, 500, 'USD', 'awaiting_payment', now() + interval '1 hour' FROM unnest($1::int8[]) u
         RETURNING id)
         INSERT INTO payments (order_id, method, status, amount_minor, currency, receipt_file_id, receipt_file_unique_id,
                               receipt_kind, submitted_at, review_deadline)
         SELECT id, 'card', 'under_review', 500, 'USD', 'f' || id, 'u' || id, 'photo', now(), now() + interval '30 minutes'
           FROM o RETURNING id",
    )
    .bind(&users)
    .bind(plan)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn accepting_over_the_api_races_telegram_and_exactly_one_decides(
    _: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    // room for every decision at once on both sides (the test's own pool is smaller)
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(50).connect_with(connect).await.unwrap();
    let api = api(pool.clone()).await;
    assert_eq!(api.get("/api/v1/payments?limit=1").await.status, StatusCode::OK, "warm up the client's connection");
    let payments = under_review(&pool, 30_000, 20).await;
    let settings = &api.app.state.settings;
    let telegram = Reviewer::telegram(&pool, 777_001, Some("ada"), "Ada").await.unwrap();
    let races = payments.iter().map(|&id| {
        let (api, pool, telegram) = (&api, pool.clone(), telegram.clone());
        async move {
            let path = format!("/api/v1/payments/{id}/accept");
            let http = api.post(&path, json!({}));
            // the HTTP request has further to go: the bot starts 0–152 ms later, so either side can win
            let bot = async {
                tokio::time::sleep(std::time::Duration::from_millis((id % 20) as u64 * 8)).await;
                review::decide(&pool, settings, id, &Verdict::Accept, &telegram).await.unwrap()
            };
            let (http, bot) = tokio::join!(http, bot);
            (id, http, bot)
        }
    });
    let results = futures::future::join_all(races).await;
    let (mut api_wins, mut bot_wins) = (0, 0);
    for (id, http, bot) in results {
        match (&http.status, &bot) {
            (&StatusCode::OK, Decision::Already { by: Some(by), .. }) => {
                api_wins += 1;
                assert!(by.starts_with("key "), "{by}");
                assert_eq!(http.body["review"]["decided_via"], "api");
            }
            (&StatusCode::CONFLICT, Decision::Decided { .. }) => {
                bot_wins += 1;
                assert_problem(&http, 409, None);
                let detail = http.body["detail"].as_str().unwrap();
                assert!(detail.contains("already decided") && detail.contains("@ada"), "{detail}");
            }
            other => panic!("payment {id}: not exactly one decision: {other:?} {http:?}"),
        }
        let decisions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE entity = 'payment' AND entity_id = $1 AND action = 'payment.accepted'",
        )
        .bind(id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(decisions, 1, "payment {id}");
        let subs: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM subscriptions s JOIN payments p ON p.order_id = s.order_id WHERE p.id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(subs, 1, "payment {id} fulfilled once");
    }
    println!("api won {api_wins}, telegram won {bot_wins}");
    assert_eq!(api_wins + bot_wins, 20);
    // a decided payment answers 409 again, naming who decided
    let again = api.post(&format!("/api/v1/payments/{}/reject", payments[0]), json!({"reason": "late"})).await;
    assert_problem(&again, 409, None);
    assert!(again.body["detail"].as_str().unwrap().contains("already decided"), "{again:?}");
}

/// An active subscription with `seats` devices on a new server, with a data cap; its id and the server's.
pub async fn active_subscription(pool: &PgPool, tg: i64, status: &str, cap: Option<i64>) -> (i64, i64) {
    let name = format!("node-{tg}");
    let server =
        vpnshop::services::servers::add(pool, &server_input(&name, "de"), vpnshop::services::servers::Actor::CLI)
            .await
            .unwrap()
            .id;
    let user = customers(pool, tg, 1).await[0];
    let plan = plan_id(pool).await;
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status) VALUES ($1, $2, 500, 'USD', 'fulfilled')
         RETURNING id",
    )
    .bind(user)
    .bind(plan)
    .fetch_one(pool)
    .await
    .unwrap();
    let ended = status != "active";
    let sub: i64 = sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, order_id, plan_id, location_code, server_id, status, seats, duration_days,
                                    data_cap_bytes, token, starts_at, expires_at, ended_at)
         VALUES ($1, $2, $3, 'de', $4, $5, 2, 30, $6, md5(random()::text) || md5(random()::text),
                 now() - interval '40 days', now() + CASE WHEN $5 = 'expired' THEN interval '-10 days' ELSE interval '20 days' END,
                 CASE WHEN $7 THEN now() END)
         RETURNING id",
    )
    .bind(user)
    .bind(order)
    .bind(plan)
    .bind(server)
    .bind(status)
    .bind(cap)
    .bind(ended)
    .fetch_one(pool)
    .await
    .unwrap();
    let desired = if ended { "absent" } else { "present" };
    sqlx::query(
        "INSERT INTO clients (subscription_id, seat, server_id, uuid, email, desired, node_state)
         SELECT $1, s, $2, gen_random_uuid(), 's' || $1 || '-' || s, $3, $3 FROM generate_series(1, 2) s",
    )
    .bind(sub)
    .bind(server)
    .bind(desired)
    .execute(pool)
    .await
    .unwrap();
    (sub, server)
}

async fn key_id(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar::<_, i64>("SELECT id FROM api_keys WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
        .to_string()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn bad_inputs_are_refused_naming_the_field_and_write_nothing(pool: PgPool) {
    let api = api(pool.clone()).await;
    let payment = under_review(&pool, 40_000, 1).await[0];
    let (sub, _) = active_subscription(&pool, 40_100, "active", Some(10 << 30)).await;
    let audit_before = api.count("audit_log").await;
    let subs_before: String = sqlx::query_scalar("SELECT row_to_json(s)::text FROM subscriptions s WHERE id = $1")
        .bind(sub)
        .fetch_one(&pool)
        .await
        .unwrap();

    let gets: [(&str, u16, &str); 20] = [
        ("/api/v1/payments?cursor=not-a-cursor", 422, "cursor"),
        ("/api/v1/payments?cursor=%27%3B%20DROP%20TABLE%20payments%3B%20--", 422, "cursor"),
        ("/api/v1/payments?limit=1000", 422, "limit"),
        ("/api/v1/payments?limit=-1", 422, "limit"),
        ("/api/v1/payments?limit=0", 422, "limit"),
        ("/api/v1/payments?limit=ten", 400, "limit"),
        ("/api/v1/payments?status=bogus", 400, "status"),
        ("/api/v1/payments?status=accepted%27%20OR%201%3D1", 400, "status"),
        ("/api/v1/payments?method=cash", 400, "method"),
        ("/api/v1/payments?created_from=not-a-date", 400, "created_from"),
        ("/api/v1/payments?created_to=2026-13-01", 400, "created_to"),
        ("/api/v1/payments?user_id=1%20OR%201%3D1", 400, "user_id"),
        ("/api/v1/payments?sort=id", 400, "sort"),
        ("/api/v1/payments?order=sideways", 400, "order"),
        ("/api/v1/subscriptions?status=gone", 400, "status"),
        ("/api/v1/subscriptions?expiring_before=tomorrow", 400, "expiring_before"),
        ("/api/v1/audit?actor_kind=robot", 422, "actor_kind"),
        ("/api/v1/audit?from=yesterday", 400, "from"),
        ("/api/v1/stats?days=0", 422, "days"),
        ("/api/v1/stats?days=366", 422, "days"),
    ];
    for (path, status, field) in gets {
        assert_problem(&api.get(path).await, status, Some(field));
    }
    assert_problem(&api.get("/api/v1/payments/1;DROP%20TABLE%20payments").await, 400, Some("id"));
    // SQL in a filter is just a value that matches nothing
    for path in [
        "/api/v1/audit?action=%27%20OR%201%3D1%20--",
        "/api/v1/audit?entity=payment%27%3B%20DELETE%20FROM%20audit_log%3B%20--",
        "/api/v1/subscriptions?location=de%27%20OR%20%271%27%3D%271",
    ] {
        let a = api.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {a:?}");
        assert_eq!(a.body["items"], json!([]), "{path}");
    }

    let posts: Vec<(String, Value, u16, &str)> = vec![
        (format!("/api/v1/payments/{payment}/reject"), json!({"reason": "x".repeat(10_000)}), 422, "reason"),
        (format!("/api/v1/payments/{payment}/reject"), json!({"reason": "   "}), 422, "reason"),
        (format!("/api/v1/payments/{payment}/reject"), json!({}), 422, "reason"),
        (format!("/api/v1/payments/{payment}/reject"), json!({"reason": "no", "code": "because"}), 422, "code"),
        (format!("/api/v1/payments/{payment}/reject"), json!({"reason": "no", "admin": true}), 422, "admin"),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": -5}), 422, "days"),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 0}), 422, "days"),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 3651}), 422, "days"),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": "ten"}), 422, "days"),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 1e30}), 422, "days"),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 5, "months": 1}), 422, "months"),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({"gb": 0}), 422, "gb"),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({"gb": -3}), 422, "gb"),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({"gb": 9_000_000_000_000i64}), 422, "gb"),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({"bytes": 1_000_000_000_000_000_000i64}), 422, "bytes"),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({"gb": 1, "bytes": 1}), 422, "gb"),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({}), 422, "gb"),
        (format!("/api/v1/subscriptions/{sub}/revoke"), json!({"reason": ""}), 422, "reason"),
        (format!("/api/v1/subscriptions/{sub}/revoke"), json!({"reason": "y".repeat(10_000)}), 422, "reason"),
        (format!("/api/v1/subscriptions/{sub}/reset-seat"), json!({"seat": 7}), 422, "seat"),
        (format!("/api/v1/subscriptions/{sub}/reset-seat"), json!({"seat": "1; DROP TABLE clients"}), 422, "seat"),
        (format!("/api/v1/subscriptions/{sub}/reset-seat"), json!({"seat": -1}), 422, "seat"),
    ];
    for (path, body, status, field) in posts {
        let a = api.post(&path, body.clone()).await;
        assert_problem(&a, status, Some(field));
        assert!(a.status.as_u16() < 500, "{path} {body}: {a:?}");
    }
    let not_json = api
        .app
        .http
        .post(api.app.url(&format!("/api/v1/subscriptions/{sub}/extend")))
        .bearer_auth(&api.write_key)
        .header("content-type", "application/json")
        .body("{days: 5")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    assert_eq!(api.count("audit_log").await, audit_before, "nothing was recorded");
    let subs_after: String = sqlx::query_scalar("SELECT row_to_json(s)::text FROM subscriptions s WHERE id = $1")
        .bind(sub)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(subs_after, subs_before, "the subscription is untouched");
    let status: String =
        sqlx::query_scalar("SELECT status FROM payments WHERE id = $1").bind(payment).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "under_review");
    assert_eq!(api.count("payments").await, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_read_key_cannot_change_anything_and_changes_are_audited_with_the_caller(pool: PgPool) {
    let api = api(pool.clone()).await;
    let payments = under_review(&pool, 50_000, 2).await;
    let (sub, server) = active_subscription(&pool, 50_100, "active", Some(10 << 30)).await;
    let audit_before = api.count("audit_log").await;
    let read = api.read_key.clone();
    let mutations = [
        (format!("/api/v1/payments/{}/accept", payments[0]), json!({})),
        (format!("/api/v1/payments/{}/reject", payments[0]), json!({"reason": "no"})),
        (format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 5})),
        (format!("/api/v1/subscriptions/{sub}/add-data"), json!({"gb": 5})),
        (format!("/api/v1/subscriptions/{sub}/revoke"), json!({"reason": "no"})),
        (format!("/api/v1/subscriptions/{sub}/reset-seat"), json!({"seat": 1})),
        (format!("/api/v1/subscriptions/{sub}/rotate-url"), json!({})),
    ];
    for (path, body) in &mutations {
        assert_problem(&api.call(Method::POST, path, Some(&read), Some(body.clone())).await, 403, None);
    }
    assert_eq!(api.count("audit_log").await, audit_before);
    // reading is fine with it
    for path in ["/api/v1/payments", "/api/v1/subscriptions", "/api/v1/audit", "/api/v1/stats?days=7"] {
        assert_eq!(api.call(Method::GET, path, Some(&read), None).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(api.call(Method::GET, "/api/v1/payments", None, None).await.status, StatusCode::UNAUTHORIZED);

    let write = key_id(&pool, "tests (write)").await;
    let before = api.get(&format!("/api/v1/subscriptions/{sub}")).await;
    assert_eq!(before.status, StatusCode::OK, "{before:?}");
    assert_eq!(before.body["devices"].as_array().unwrap().len(), 2);
    assert!(before.body["feed_url"].as_str().unwrap().contains("/sub/"));
    // a read key sees the subscription but not its working credentials
    let read_view =
        api.call(Method::GET, &format!("/api/v1/subscriptions/{sub}"), Some(&api.read_key.clone()), None).await;
    assert_eq!(read_view.status, StatusCode::OK);
    assert_eq!(read_view.body["feed_url"], Value::Null);
    assert_eq!(read_view.body["devices"], json!([]));
    assert_eq!(read_view.body["seats"], 2);
    assert!(!read_view.body.to_string().contains("/sub/"));
    let ok = |a: &super::Answer| assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let extended = api.post(&format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 5})).await;
    ok(&extended);
    let (b, a) = (before.body["expires_at"].as_str().unwrap(), extended.body["expires_at"].as_str().unwrap());
    let days = chrono::DateTime::parse_from_rfc3339(a).unwrap() - chrono::DateTime::parse_from_rfc3339(b).unwrap();
    assert_eq!(days, chrono::Duration::days(5));
    let topped = api.post(&format!("/api/v1/subscriptions/{sub}/add-data"), json!({"gb": 5})).await;
    ok(&topped);
    assert_eq!(topped.body["data_cap_bytes"].as_i64(), Some(15 << 30));
    let rotated = api.post(&format!("/api/v1/subscriptions/{sub}/rotate-url"), json!({})).await;
    ok(&rotated);
    assert_ne!(rotated.body["feed_url"], before.body["feed_url"]);
    let reset = api.post(&format!("/api/v1/subscriptions/{sub}/reset-seat"), json!({"seat": 2})).await;
    ok(&reset);
    assert_ne!(reset.body["devices"][1]["link"], before.body["devices"][1]["link"]);
    assert_eq!(reset.body["devices"][0]["link"], before.body["devices"][0]["link"]);
    let accepted = api.post(&format!("/api/v1/payments/{}/accept", payments[0]), json!({})).await;
    ok(&accepted);
    // with an admin's token, the admin is recorded
    let rejected = api
        .call(
            Method::POST,
            &format!("/api/v1/payments/{}/reject", payments[1]),
            Some(&api.owner.clone()),
            Some(json!({"reason": "the amount is wrong", "code": "wrong_amount"})),
        )
        .await;
    ok(&rejected);
    assert_eq!(rejected.body["review"]["reason"], "the amount is wrong");
    assert_eq!(rejected.body["review"]["reason_code"], "wrong_amount");
    let revoked = api.post(&format!("/api/v1/subscriptions/{sub}/revoke"), json!({"reason": "refund"})).await;
    ok(&revoked);
    assert_eq!(revoked.body["status"], "revoked");
    assert_problem(
        &api.post(&format!("/api/v1/subscriptions/{sub}/revoke"), json!({"reason": "again"})).await,
        409,
        None,
    );
    assert_problem(&api.post(&format!("/api/v1/subscriptions/{sub}/extend"), json!({"days": 1})).await, 409, None);

    let key = ("api_key".to_owned(), Some(write.clone()));
    for action in [
        "subscription.extend",
        "subscription.add_data",
        "subscription.rotate_feed",
        "subscription.reset_seat",
        "subscription.revoke",
        "payment.accepted",
    ] {
        assert_eq!(api.audited(action).await, vec![key.clone()], "{action}");
    }
    let owner_id: i64 =
        sqlx::query_scalar("SELECT id FROM admins WHERE username = 'owner'").fetch_one(&pool).await.unwrap();
    assert_eq!(api.audited("payment.rejected").await, vec![("admin".to_owned(), Some(owner_id.to_string()))]);
    let ip: Option<String> = sqlx::query_scalar("SELECT source_ip FROM audit_log WHERE action = 'payment.accepted'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));

    // the audit log lists them, filters combine, pages walk
    let mine =
        api.walk(&format!("/api/v1/audit?actor_kind=api_key&actor_id={write}&entity=subscription&order=asc"), 2).await;
    let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "subscription.extend",
            "subscription.add_data",
            "subscription.rotate_feed",
            "subscription.reset_seat",
            "subscription.revoke"
        ]
    );
    let one =
        api.walk(&format!("/api/v1/audit?entity=subscription&entity_id={sub}&action=subscription.revoke"), 10).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["detail"]["reason"], "refund");

    // subscription listing filters
    let on_server =
        ids(&api.walk(&format!("/api/v1/subscriptions?server_id={server}&status=revoked&location=de"), 5).await);
    assert_eq!(on_server, vec![sub]);
    assert!(ids(&api.walk(&format!("/api/v1/subscriptions?server_id={server}&status=active"), 5).await).is_empty());
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn extending_follows_the_subscription_state_machine(pool: PgPool) {
    let api = api(pool.clone()).await;
    let (expired, _) = active_subscription(&pool, 60_000, "expired", None).await;
    let a = api.post(&format!("/api/v1/subscriptions/{expired}/extend"), json!({"days": 30})).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["status"], "active", "an expired subscription comes back");
    let present: i64 =
        sqlx::query_scalar("SELECT count(*) FROM clients WHERE subscription_id = $1 AND desired = 'present'")
            .bind(expired)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(present, 2, "its clients are wanted on the node again");
    let node_jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'node.apply'").fetch_one(&pool).await.unwrap();
    assert!(node_jobs >= 1);

    // limited: more days, still limited until data is added
    let (limited, _) = active_subscription(&pool, 60_100, "limited", Some(1000)).await;
    let client: i64 = sqlx::query_scalar("SELECT id FROM clients WHERE subscription_id = $1 AND seat = 1")
        .bind(limited)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO traffic (client_id, up_bytes, down_bytes) VALUES ($1, 600, 600)")
        .bind(client)
        .execute(&pool)
        .await
        .unwrap();
    let a = api.post(&format!("/api/v1/subscriptions/{limited}/extend"), json!({"days": 3})).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["status"], "limited");
    let a = api.post(&format!("/api/v1/subscriptions/{limited}/add-data"), json!({"bytes": 5000})).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["status"], "active");
    assert_eq!(a.body["used_bytes"].as_i64(), Some(1200));

    // unlimited data cannot be topped up; an expired one cannot either
    let (unlimited, _) = active_subscription(&pool, 60_200, "active", None).await;
    assert_problem(
        &api.post(&format!("/api/v1/subscriptions/{unlimited}/add-data"), json!({"gb": 1})).await,
        409,
        None,
    );
    assert_problem(&api.post("/api/v1/subscriptions/999999/extend", json!({"days": 1})).await, 404, None);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn stats_match_a_hand_made_dataset(pool: PgPool) {
    let api = api(pool.clone()).await;
    let plan = plan_id(&pool).await;
    // day 0 = today (UTC); times are minutes after midnight of `day` days ago
    let script = r#"
        CREATE TEMP TABLE t AS SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day0;
        INSERT INTO users (telegram_id, created_at, trial_used_at) SELECT 1, day0 + interval '1 minute', day0 + interval '2 minutes' FROM t;
        INSERT INTO users (telegram_id, created_at, trial_used_at) SELECT 2, day0 - interval '1 day' + interval '1 hour', day0 - interval '1 day' + interval '2 hours' FROM t;
        INSERT INTO users (telegram_id, created_at) SELECT 3, day0 - interval '2 days' + interval '5 hours' FROM t;
        INSERT INTO users (telegram_id, created_at, trial_used_at) SELECT 4, day0 - interval '10 days', day0 - interval '10 days' FROM t;
    "#;
    // one connection: `t` is a temporary table
    let mut conn = pool.acquire().await.unwrap();
    for statement in script.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
    let user = |tg: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE telegram_id = $1")
                .bind(tg)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (u1, u2, u3, u4) = (user(1).await, user(2).await, user(3).await, user(4).await);
    // (customer, paid/decided `offset` after day 0, method, payment status, amount, currency)
    let paid = [
        (u2, "-1 day +3 hours", "card", "accepted", 1000, "USD"),
        (u3, "-2 days +6 hours", "stripe", "succeeded", 550, "EUR"),
        (u3, "+3 minutes", "card", "auto_accepted", 250, "USD"),
        (u4, "-10 days +1 hour", "card", "accepted", 9999, "USD"),
    ];
    for (u, offset, method, status, amount, currency) in paid {
        sqlx::query(
            "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, paid_at)
                        SELECT $1, $2, $5, $6, 'fulfilled', day0 + $3::interval FROM t RETURNING id, paid_at)
             INSERT INTO payments (order_id, method, status, amount_minor, currency, decided_at, created_at)
             SELECT id, $4, $7, $5, $6, paid_at, paid_at FROM o",
        )
        .bind(u)
        .bind(plan)
        .bind(offset)
        .bind(method)
        .bind(amount)
        .bind(currency)
        .bind(status)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    // not money: rejected, refunded, failed, and one waiting for review
    for (status, method) in
        [("rejected", "card"), ("refunded", "card"), ("failed", "zarinpal"), ("under_review", "card")]
    {
        sqlx::query(
            "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status) VALUES ($1, $2, 777, 'USD', 'awaiting_payment') RETURNING id)
             INSERT INTO payments (order_id, method, status, amount_minor, currency, decided_at)
             SELECT id, $3, $4, 777, 'USD', CASE WHEN $4 = 'under_review' THEN NULL ELSE now() END FROM o",
        )
        .bind(u1).bind(plan).bind(method).bind(status)
        .execute(&pool).await.unwrap();
    }
    // one active subscription (2 devices, one retired device) and one expired
    let (active, server) = active_subscription(&pool, 70_000, "active", None).await;
    active_subscription(&pool, 70_100, "expired", None).await;
    let clients: Vec<i64> = sqlx::query_scalar("SELECT id FROM clients WHERE subscription_id = $1 ORDER BY seat")
        .bind(active)
        .fetch_all(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO clients (subscription_id, seat, server_id, uuid, email, desired) VALUES ($1, 1, $2, gen_random_uuid(), 'retired-1', 'absent')")
        .bind(active).bind(server).execute(&pool).await.unwrap();
    let retired: i64 =
        sqlx::query_scalar("SELECT id FROM clients WHERE email = 'retired-1'").fetch_one(&pool).await.unwrap();
    for (client, up, down) in [(clients[0], 100, 200), (clients[1], 50, 0), (retired, 1000, 0)] {
        sqlx::query("INSERT INTO traffic (client_id, up_bytes, down_bytes) VALUES ($1, $2, $3)")
            .bind(client)
            .bind(up)
            .bind(down)
            .execute(&pool)
            .await
            .unwrap();
    }

    let a = api.get("/api/v1/stats?days=7").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let s = &a.body;
    assert_eq!(s["days"], 7);
    let daily = s["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 7);
    let today = chrono::Utc::now().date_naive();
    assert_eq!(daily[6]["date"], today.to_string());
    assert_eq!(daily[0]["date"], (today - chrono::Duration::days(6)).to_string());
    let day = |ago: usize| &daily[6 - ago];
    assert_eq!(day(0)["revenue"], json!([{"currency": "USD", "amount_minor": 250, "amount": "2.50"}]));
    assert_eq!(day(1)["revenue"], json!([{"currency": "USD", "amount_minor": 1000, "amount": "10.00"}]));
    assert_eq!(day(2)["revenue"], json!([{"currency": "EUR", "amount_minor": 550, "amount": "5.50"}]));
    for ago in 3..7 {
        assert_eq!(day(ago)["revenue"], json!([]));
        assert_eq!(day(ago)["orders"], 0);
        assert_eq!(day(ago)["new_customers"], 0);
    }
    assert_eq!(
        [day(0)["orders"].clone(), day(1)["orders"].clone(), day(2)["orders"].clone()],
        [json!(1), json!(1), json!(1)]
    );
    // the customers made by the harness's servers count too: `active_subscription` makes one customer each
    let harness_customers_today = 2;
    assert_eq!(day(0)["new_customers"], 1 + harness_customers_today);
    assert_eq!(day(1)["new_customers"], 1);
    assert_eq!(day(2)["new_customers"], 1);
    assert_eq!(
        s["revenue_total"],
        json!([
            {"currency": "USD", "amount_minor": 1250, "amount": "12.50"},
            {"currency": "EUR", "amount_minor": 550, "amount": "5.50"},
        ])
    );
    assert_eq!(s["orders_total"], 3);
    assert_eq!(s["new_customers_total"], 3 + harness_customers_today);
    assert_eq!(s["trial_conversion"], json!({"trials": 2, "paid": 1, "rate": "0.5000"}));
    assert_eq!(s["active_subscriptions"], 1);
    assert_eq!(s["pending_reviews"], 1);
    let servers = s["servers"].as_array().unwrap();
    let node = servers.iter().find(|v| v["id"].as_i64() == Some(server)).unwrap();
    assert_eq!(node["capacity"], 100);
    assert_eq!(node["active_clients"], 2);
    assert_eq!(node["traffic_bytes"], 1350);
    let _ = u1;
}
