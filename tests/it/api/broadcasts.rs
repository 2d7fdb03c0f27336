//! Broadcasts: audiences counted on a hand-made dataset, requests refused field by field with nothing written,
//! pause/resume/cancel, and 2,000 customers reached through a fake Bot API that enforces Telegram's limits while
//! the sending instance dies mid-way and two others carry on — each customer gets it at most once, and the only
//! ones who did not are the few the dead instance was sending (`unknown`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use vpnshop::config::Settings;
use vpnshop::services::auth::{self as auth_svc, Scope};
use vpnshop::services::servers::{self, Actor};

use super::{Api, api, api_with, assert_problem};
use crate::helpers::{TestApp, database_url, redis_url, server_input, spawn_app_with};
use crate::support::{Failure, FakeTelegram};

/// A customer; returns the user id.
async fn customer(pool: &PgPool, telegram_id: i64, language: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO users (telegram_id, language) VALUES ($1, $2) RETURNING id")
        .bind(telegram_id)
        .bind(language)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A subscription of `user` in `location` (`trial`: no order) that ends `ends_in_days` from now.
async fn subscription(pool: &PgPool, user: i64, location: &str, status: &str, ends_in_days: i32, trial: bool) {
    let plan: i64 = sqlx::query_scalar("SELECT id FROM plans WHERE location_code = $1 ORDER BY id LIMIT 1")
        .bind(location)
        .fetch_one(pool)
        .await
        .unwrap();
    let order: Option<i64> = if trial {
        None
    } else {
        sqlx::query_scalar(
            "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
             VALUES ($1, $2, 299, 'USD', 'fulfilled') RETURNING id",
        )
        .bind(user)
        .bind(plan)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let server: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE location_code = $1 ORDER BY id LIMIT 1")
        .bind(location)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (user_id, order_id, plan_id, location_code, server_id, is_trial, status, seats,
                                    duration_days, token, starts_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 30, $8,
                 now() + make_interval(days => $9 - 30), now() + make_interval(days => $9))",
    )
    .bind(user)
    .bind(order)
    .bind(plan)
    .bind(location)
    .bind(server)
    .bind(trial)
    .bind(status)
    .bind(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())[..43].to_owned())
    .bind(ends_in_days)
    .execute(pool)
    .await
    .unwrap();
}

/// Ten customers, each in a known set of audiences.
async fn dataset(pool: &PgPool) {
    for loc in ["de", "nl"] {
        servers::add(pool, &server_input(&format!("{loc}-1"), loc), Actor::CLI).await.unwrap();
    }
    let u1 = customer(pool, 1001, "en").await; // active in de
    subscription(pool, u1, "de", "active", 10, false).await;
    let u2 = customer(pool, 1002, "fa").await; // data-limited in nl
    subscription(pool, u2, "nl", "limited", 10, false).await;
    let u3 = customer(pool, 1003, "ru").await; // expired 5 days ago
    subscription(pool, u3, "de", "expired", -5, false).await;
    let u4 = customer(pool, 1004, "en").await; // expired 40 days ago
    subscription(pool, u4, "nl", "expired", -40, false).await;
    let u5 = customer(pool, 1005, "en").await; // expired 5 days ago, renewed since: active in de
    subscription(pool, u5, "de", "expired", -5, false).await;
    subscription(pool, u5, "de", "active", 25, false).await;
    let u6 = customer(pool, 1006, "fa").await; // a trial running in de, never paid
    subscription(pool, u6, "de", "active", 1, true).await;
    customer(pool, 1007, "ru").await; // nothing at all
    let u8 = customer(pool, 1008, "en").await; // banned: in no audience
    subscription(pool, u8, "de", "active", 10, false).await;
    sqlx::query("UPDATE users SET banned_at = now() WHERE id = $1").bind(u8).execute(pool).await.unwrap();
    let u9 = customer(pool, 1009, "en").await; // blocked the bot: in no audience
    sqlx::query("UPDATE users SET blocked_bot_at = now() WHERE id = $1").bind(u9).execute(pool).await.unwrap();
    let u10 = customer(pool, 1010, "en").await; // only an unpaid order
    sqlx::query("INSERT INTO orders (user_id, status) VALUES ($1, 'cancelled')").bind(u10).execute(pool).await.unwrap();
}

fn request(audience: Value, dry_run: bool) -> Value {
    json!({"texts": {"en": "Hello <b>there</b>", "fa": "سلام"}, "fallback": "en", "audience": audience, "dry_run": dry_run})
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_dry_run_counts_each_audience_and_writes_nothing(pool: PgPool) {
    let api = api(pool).await;
    dataset(&api.app.state.pool).await;
    for (audience, expected) in [
        (json!({"kind": "all"}), 8),
        (json!({"kind": "active"}), 4),
        (json!({"kind": "expired", "days": 10}), 1),
        (json!({"kind": "expired", "days": 60}), 2),
        (json!({"kind": "never_bought"}), 3),
        (json!({"kind": "location", "location": "de"}), 3),
        (json!({"kind": "location", "location": "nl"}), 1),
        (json!({"kind": "location", "location": "fi"}), 0),
    ] {
        let a = api.post("/api/v1/broadcasts", request(audience.clone(), true)).await;
        assert_eq!(a.status, StatusCode::OK, "{audience}: {a:?}");
        assert_eq!(a.body["count"], expected, "{audience}");
    }
    let unknown = api.post("/api/v1/broadcasts", request(json!({"kind": "location", "location": "zz"}), true)).await;
    assert_problem(&unknown, 422, Some("audience.location"));
    assert_eq!(api.count("broadcasts").await, 0);
    assert_eq!(api.count("broadcast_recipients").await, 0);
    assert!(api.audited("broadcast.create").await.is_empty());
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_bad_request_names_its_field_and_writes_nothing(pool: PgPool) {
    let api = api(pool).await;
    dataset(&api.app.state.pool).await;
    let all = json!({"kind": "all"});
    let cases = [
        (json!({"texts": {}, "audience": all}), "texts"),
        (json!({"texts": {"de": "Hallo"}, "audience": all}), "texts.de"),
        (json!({"texts": {"en": "x".repeat(5000)}, "audience": all}), "texts.en"),
        (json!({"texts": {"en": ""}, "audience": all}), "texts.en"),
        (json!({"texts": {"en": "1 < 2 <b>"}, "audience": all}), "texts.en"),
        (json!({"texts": {"en": "hi"}, "fallback": "ru", "audience": all}), "fallback"),
        (json!({"texts": {"en": "hi"}, "audience": {"kind": "everyone"}}), "audience.kind"),
        (json!({"texts": {"en": "hi"}, "audience": {"kind": "expired", "days": -1}}), "audience.days"),
        (json!({"texts": {"en": "hi"}, "audience": {"kind": "expired"}}), "audience.days"),
        (json!({"texts": {"en": "hi"}, "audience": {"kind": "location"}}), "audience.location"),
        (json!({"texts": {"en": "hi"}, "audience": {"kind": "all", "vip": true}}), "audience.vip"),
        (json!({"texts": {"en": "hi"}, "audience": all, "send_at": "now"}), "send_at"),
    ];
    for (body, field) in cases {
        for dry_run in [false, true] {
            let mut body = body.clone();
            body["dry_run"] = json!(dry_run);
            let a = api.post("/api/v1/broadcasts", body).await;
            assert_problem(&a, 422, Some(field));
        }
    }
    let read = api.call(Method::POST, "/api/v1/broadcasts", Some(&api.read_key), Some(request(all, false))).await;
    assert_problem(&read, 403, None);
    assert_eq!(api.count("broadcasts").await, 0);
    assert_eq!(api.count("broadcast_recipients").await, 0);
    assert_eq!(api.count("jobs WHERE kind = 'broadcast.send'").await, 0);
    assert!(api.audited("broadcast.create").await.is_empty());
}

/// Messages from the fake whose text is `text`, per chat.
fn deliveries(tg: &FakeTelegram, chats: impl IntoIterator<Item = i64>, text: &str) -> HashMap<i64, usize> {
    chats
        .into_iter()
        .map(|c| (c, tg.messages_to(c).iter().filter(|m| m.text.as_deref() == Some(text)).count()))
        .collect()
}

fn delivered(tg: &FakeTelegram, chats: &[i64], text: &str) -> usize {
    deliveries(tg, chats.iter().copied(), text).values().sum()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bot pointed at `tg` (long polling), limits shared in Redis under one prefix.
fn with_bot(s: &mut Settings, tg_url: &url::Url, prefix: &str) {
    s.telegram.token = Some(crate::support::TEST_TOKEN.to_owned().into());
    s.telegram.api_url = tg_url.clone();
    s.telegram.public_url = None;
    s.redis.url = Some(redis_url().into());
    s.redis.prefix = prefix.to_owned();
}

async fn status_of(api: &Api, id: i64) -> Value {
    let a = api.get(&format!("/api/v1/broadcasts/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    a.body
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn pause_stops_sending_resume_carries_on_and_cancel_is_for_good(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    tg.enforce_limits();
    let (url, prefix) = (tg.url(), format!("vpnshop-test-{}", uuid::Uuid::new_v4().simple()));
    let api = api_with(pool, |s| {
        with_bot(s, &url, &prefix);
        s.telegram.broadcast.per_second = 8;
    })
    .await;
    let chats: Vec<i64> = (0..40).map(|i| 5000 + i).collect();
    for &c in &chats {
        customer(&api.app.state.pool, c, "en").await;
    }
    let first = api.post("/api/v1/broadcasts", json!({"texts": {"en": "first"}, "audience": {"kind": "all"}})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!((first.body["status"].as_str(), first.body["progress"]["total"].as_i64()), (Some("running"), Some(40)));
    let id = first.body["id"].as_i64().unwrap();
    wait_until("a few sent", Duration::from_secs(20), async || delivered(&tg, &chats, "first") >= 8).await;

    let paused = api.post(&format!("/api/v1/broadcasts/{id}/pause"), json!({})).await;
    assert_eq!(paused.body["status"], "paused", "{paused:?}");
    assert_problem(&api.post(&format!("/api/v1/broadcasts/{id}/pause"), json!({})).await, 409, None);
    tokio::time::sleep(Duration::from_millis(1500)).await; // the messages under way land
    let at_pause = delivered(&tg, &chats, "first");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivered(&tg, &chats, "first"), at_pause, "nothing is sent while paused");
    assert!(at_pause < 40, "paused before the end: {at_pause}");
    let progress = &status_of(&api, id).await["progress"];
    assert_eq!(progress["sent"], at_pause as i64, "{progress}");
    assert_eq!(progress["left"], 40 - at_pause as i64, "{progress}");

    let resumed = api.post(&format!("/api/v1/broadcasts/{id}/resume"), json!({})).await;
    assert_eq!(resumed.body["status"], "running", "{resumed:?}");
    assert_problem(&api.post(&format!("/api/v1/broadcasts/{id}/resume"), json!({})).await, 409, None);
    wait_until("done", Duration::from_secs(30), async || status_of(&api, id).await["status"] == "done").await;
    assert!(deliveries(&tg, chats.clone(), "first").values().all(|&n| n == 1), "everyone got it once");
    let done = status_of(&api, id).await;
    assert_eq!(done["progress"]["sent"], 40, "{done}");
    assert!(done["finished_at"].is_string());
    for action in ["pause", "resume", "cancel"] {
        assert_problem(&api.post(&format!("/api/v1/broadcasts/{id}/{action}"), json!({})).await, 409, None);
    }

    let second = api.post("/api/v1/broadcasts", json!({"texts": {"en": "second"}, "audience": {"kind": "all"}})).await;
    let id2 = second.body["id"].as_i64().unwrap();
    wait_until("a few sent", Duration::from_secs(20), async || delivered(&tg, &chats, "second") >= 4).await;
    let cancelled = api.post(&format!("/api/v1/broadcasts/{id2}/cancel"), json!({})).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at_cancel = delivered(&tg, &chats, "second");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivered(&tg, &chats, "second"), at_cancel, "nothing is sent once cancelled");
    let p = &status_of(&api, id2).await["progress"];
    assert_eq!(p["sent"], at_cancel as i64, "{p}");
    assert_eq!(p["skipped"], 40 - at_cancel as i64, "{p}");
    assert_eq!(p["left"], 0, "{p}");
    for action in ["pause", "resume", "cancel"] {
        assert_problem(&api.post(&format!("/api/v1/broadcasts/{id2}/{action}"), json!({})).await, 409, None);
    }
    assert_problem(&api.post("/api/v1/broadcasts/999999/pause", json!({})).await, 404, None);

    let listed = api.walk("/api/v1/broadcasts", 1).await;
    assert_eq!(listed.iter().map(|b| b["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![id2, id], "newest first");
    for (action, times) in
        [("broadcast.create", 2), ("broadcast.pause", 1), ("broadcast.resume", 1), ("broadcast.cancel", 1)]
    {
        let entries = api.audited(action).await;
        assert_eq!(entries.len(), times, "{action}: {entries:?}");
        assert!(
            entries.iter().all(|(kind, id)| kind == "api_key" && id.is_some()),
            "{action} names the key: {entries:?}"
        );
    }
}

/// An app on a runtime of its own, so it can die at once (every task dropped, mid-send) like a killed process.
struct Instance {
    runtime: Option<tokio::runtime::Runtime>,
    app: Option<TestApp>,
}

impl Instance {
    async fn start(db_url: String, customize: impl FnOnce(&mut Settings) + Send + 'static) -> Instance {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let app = runtime
            .spawn(async move {
                let pool = sqlx::postgres::PgPoolOptions::new().max_connections(10).connect(&db_url).await.unwrap();
                spawn_app_with(pool, customize).await
            })
            .await
            .unwrap();
        Instance { runtime: Some(runtime), app: Some(app) }
    }

    fn url(&self, path: &str) -> String {
        self.app.as_ref().unwrap().url(path)
    }

    /// Dies on the spot: every task is dropped wherever it was (a send under way never gets its answer recorded);
    /// then its connections close, as a dead process's would.
    fn crash(self) {}
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        drop(self.app.take());
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn two_thousand_customers_get_it_at_most_once_across_a_crash_within_telegrams_limits(pool: PgPool) {
    const N: i64 = 2000;
    let tg = FakeTelegram::start().await;
    tg.enforce_limits_at(60);
    // and a few 429s on top of the enforced ones: each must be waited out and sent again
    tg.fail_next("sendMessage", 3, Failure::RetryAfter(1));
    let chats: Vec<i64> = (1..=N).map(|i| 100_000 + i).collect();
    let blocked: HashSet<i64> = chats.iter().copied().filter(|c| c % 50 == 7).collect();
    for &c in &blocked {
        tg.block_chat(c);
    }
    sqlx::query(
        "INSERT INTO users (telegram_id, language)
         SELECT 100000 + g, (ARRAY['en', 'fa', 'ru'])[g % 3 + 1] FROM generate_series(1, $1) g",
    )
    .bind(N)
    .execute(&pool)
    .await
    .unwrap();
    let key = auth_svc::create_key(&pool, "broadcaster", Scope::Write, None, &vpnshop::services::audit::Who::cli())
        .await
        .unwrap()
        .key;
    let (url, prefix) = (tg.url(), format!("vpnshop-test-{}", uuid::Uuid::new_v4().simple()));
    let settings = move |s: &mut Settings| {
        with_bot(s, &url, &prefix);
        s.telegram.limits.per_second = 50;
        s.telegram.broadcast.per_second = 40;
        s.telegram.broadcast.claim_secs = 5;
        s.jobs.lease_secs = 2;
    };
    let db_url = database_url(&pool);

    let first = Instance::start(db_url.clone(), settings.clone()).await;
    let http = reqwest::Client::new();
    let texts = json!({"en": "News &amp; <b>offers</b>", "fa": "خبر", "ru": "Новости"});
    let created = http
        .post(first.url("/api/v1/broadcasts"))
        .bearer_auth(&key)
        .json(&json!({"texts": texts, "fallback": "en", "audience": {"kind": "all"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let sent_so_far = || tg.calls_of("sendMessage").len();
    wait_until("the first instance sends", Duration::from_secs(60), async || sent_so_far() >= 400).await;
    first.crash();
    let at_crash = sent_so_far();

    // two instances take over the same database at once
    let second = Instance::start(db_url.clone(), settings.clone()).await;
    let api = api_with(pool.clone(), settings).await;
    wait_until("the broadcast ends", Duration::from_secs(180), async || status_of(&api, id).await["status"] == "done")
        .await;
    drop(second);
    assert!(sent_so_far() > at_crash, "the others carried on");

    let rows: Vec<(i64, String, String, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT r.chat_id, r.status, u.language, u.blocked_bot_at FROM broadcast_recipients r
           JOIN users u ON u.id = r.user_id WHERE r.broadcast_id = $1",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len() as i64, N);
    let expected = |lang: &str| match lang {
        "fa" => "خبر",
        "ru" => "Новости",
        _ => "News &amp; <b>offers</b>",
    };
    let mut by_status: HashMap<String, i64> = HashMap::new();
    for (chat, status, lang, blocked_at) in &rows {
        *by_status.entry(status.clone()).or_default() += 1;
        let got = tg.messages_to(*chat);
        assert!(got.len() <= 1, "chat {chat} got the broadcast {} times", got.len());
        match status.as_str() {
            "sent" => assert_eq!(got[0].text.as_deref(), Some(expected(lang)), "chat {chat} in its language"),
            "blocked" => {
                assert!(blocked.contains(chat) && got.is_empty() && blocked_at.is_some(), "chat {chat}");
            }
            "unknown" => {} // maybe delivered (at most once, checked above), never sent again
            other => panic!("chat {chat} ended {other}"),
        }
        if got.is_empty() && !blocked.contains(chat) {
            assert_eq!(status, "unknown", "chat {chat} was not delivered, so it must be one of the uncertain");
        }
    }
    let count = |s: &str| by_status.get(s).copied().unwrap_or(0);
    assert_eq!(count("blocked"), blocked.len() as i64);
    assert!(count("unknown") <= 5, "at most one claimed batch was uncertain: {by_status:?}");
    let progress = status_of(&api, id).await["progress"].clone();
    assert_eq!(
        progress,
        json!({"total": N, "sent": count("sent"), "failed": 0, "blocked": count("blocked"),
               "unknown": count("unknown"), "skipped": 0, "left": 0})
    );
    // every call to a customer who did not block the bot either arrived or was a 429 (three injected, any others
    // from the enforced limits), and every 429'd customer was sent again (all of them arrived or are `unknown`)
    let calls = tg.calls_of("sendMessage");
    let to_customers = calls.iter().filter(|c| !blocked.contains(&c.params["chat_id"].as_i64().unwrap())).count();
    let arrived: usize = chats.iter().map(|&c| tg.messages_to(c).len()).sum();
    assert!(to_customers >= arrived + 3, "the injected 429s were met: {to_customers} calls, {arrived} arrived");
    assert!(to_customers - arrived <= tg.rate_limited() as usize + 3, "only 429s were not delivered");
    eprintln!("broadcast: {by_status:?}; 429s from the fake's limits: {}; calls: {}", tg.rate_limited(), calls.len());
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_running_broadcast_whose_sender_died_gets_a_new_one_and_blocking_is_forgotten_when_they_write(pool: PgPool) {
    let api = api(pool.clone()).await;
    dataset(&pool).await;
    let made = api.post("/api/v1/broadcasts", request(json!({"kind": "all"}), false)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["id"].as_i64().unwrap();
    let settings = api.app.state.settings.clone();
    // the sweep is called by hand below, with no worker running (stopping the app closes its pool)
    let url = database_url(&pool);
    api.app.stop().await.unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    let jobs = &settings.jobs;
    let kill = || sqlx::query("UPDATE jobs SET status = 'dead' WHERE kind = 'broadcast.send'").execute(&pool);
    kill().await.unwrap();
    assert_eq!(vpnshop::services::broadcasts::revive(&pool, jobs).await.unwrap(), 1, "a dead sender is replaced");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'broadcast.send' AND status = 'queued' AND payload->>'broadcast_id' = $1",
    )
    .bind(id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(live, 1);
    assert_eq!(vpnshop::services::broadcasts::revive(&pool, jobs).await.unwrap(), 0, "a live sender is left alone");
    // a paused one is left alone
    kill().await.unwrap();
    sqlx::query("UPDATE broadcasts SET status = 'paused' WHERE id = $1").bind(id).execute(&pool).await.unwrap();
    assert_eq!(vpnshop::services::broadcasts::revive(&pool, jobs).await.unwrap(), 0);

    // a customer found to have blocked the bot is left out of broadcasts until they write to it again
    let telegram_id: i64 = sqlx::query_scalar(
        "SELECT telegram_id FROM users WHERE banned_at IS NULL AND blocked_bot_at IS NULL ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let blocked = || {
        sqlx::query_scalar::<_, bool>("SELECT blocked_bot_at IS NOT NULL FROM users WHERE telegram_id = $1")
            .bind(telegram_id)
            .fetch_one(&pool)
    };
    vpnshop::services::users::blocked_bot(&pool, telegram_id).await.unwrap();
    assert!(blocked().await.unwrap());
    let who = vpnshop::services::users::TelegramUser {
        telegram_id,
        username: None,
        first_name: Some("Back"),
        language_code: None,
    };
    vpnshop::services::users::touch(&pool, &who, &settings).await.unwrap();
    assert!(!blocked().await.unwrap(), "writing to the bot again");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_dead_senders_claims_are_sent_later_unless_their_message_had_started(pool: PgPool) {
    let api = api(pool.clone()).await;
    dataset(&pool).await;
    let made = api.post("/api/v1/broadcasts", request(json!({"kind": "all"}), false)).await;
    let id = made.body["id"].as_i64().unwrap();
    let users: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM broadcast_recipients WHERE broadcast_id = $1 ORDER BY user_id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    // a sender that died: two claims it never started, one whose message was going out
    sqlx::query(
        "UPDATE broadcast_recipients SET status = 'sending', claimed_by = 'dead#1', claimed_until = now() - interval '1 s',
                send_started_at = CASE WHEN user_id = $2 THEN now() - interval '2 s' END
          WHERE broadcast_id = $1 AND user_id = ANY($3)",
    )
    .bind(id)
    .bind(users[0])
    .bind(&users[..3])
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(vpnshop::db::broadcasts::expire_claims(&pool, id).await.unwrap(), 1);
    let statuses: Vec<(i64, String)> =
        sqlx::query_as("SELECT user_id, status FROM broadcast_recipients WHERE broadcast_id = $1 AND user_id = ANY($2) ORDER BY user_id")
            .bind(id)
            .bind(&users[..3])
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        vec![(users[0], "unknown".to_owned()), (users[1], "pending".to_owned()), (users[2], "pending".to_owned())]
    );
}
