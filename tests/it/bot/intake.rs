//! Durable intake: stored before 200, duplicates ignored, bad requests refused without storing, per-chat
//! order, and updates left by a crash handled after a restart.

use sqlx::PgPool;

use super::{BotShop, SECRET, bot_settings, bot_shop, next_id};
use crate::helpers::spawn_app_with;
use crate::support::{FakeTelegram, TgUser, callback_update, command_update};

/// A webhook delivery with the right secret and `body` as it is.
fn delivery(shop: &BotShop, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    shop.app
        .http
        .post(shop.app.url("/telegram/webhook"))
        .header("x-telegram-bot-api-secret-token", SECRET)
        .header("content-type", "application/json")
        .body(body)
}

async fn stored(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM telegram_updates").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_webhook_is_registered_with_our_url_secret_and_update_types(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let calls = shop.tg.wait_for("setWebhook", 1, std::time::Duration::from_secs(10)).await;
    let p = &calls[0].params;
    assert_eq!(p["url"], "https://shop.example/telegram/webhook");
    assert_eq!(p["secret_token"], SECRET);
    assert_eq!(p["max_connections"], 40);
    let allowed = p["allowed_updates"].to_string();
    assert!(allowed.contains("message") && allowed.contains("callback_query"), "{allowed}");
    assert!(!shop.tg.calls_of("getMe").is_empty());
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_repeated_delivery_is_accepted_and_handled_once(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = TgUser::new(21, "Ana");
    let update = command_update(next_id(), &u, "/start");
    shop.deliver(&update).await;
    assert_eq!(shop.post(&update).await, 200, "Telegram's retry is answered 200");
    shop.deliver(&update).await;
    assert_eq!(stored(&shop.app.state.pool).await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(shop.tg.messages_to(21).len(), 1, "one reply");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_wrong_or_missing_secret_is_refused_and_nothing_is_stored(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let update = command_update(next_id(), &TgUser::new(22, "Eve"), "/start");
    let url = shop.app.url("/telegram/webhook");
    for header in [Some("wrong"), Some(""), None] {
        let mut req = shop.app.http.post(&url).json(&update);
        if let Some(h) = header {
            req = req.header("x-telegram-bot-api-secret-token", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{header:?}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(stored(&shop.app.state.pool).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn malformed_bodies_are_refused_without_storing_anything(pool: PgPool) {
    let shop = bot_shop(pool).await;
    for body in ["{not json", "[1,2,3]", r#"{"message": {}}"#, r#"{"update_id": "seven"}"#, r#"{"update_id": -4}"#, ""]
    {
        let res = delivery(&shop, body).send().await.unwrap();
        assert_eq!(res.status(), 400, "{body:?}");
    }
    assert_eq!(stored(&shop.app.state.pool).await, 0);
    // an update we cannot interpret is stored (it is a real update) and skipped, not retried forever
    let odd = serde_json::json!({"update_id": next_id(), "poll": {"id": "1"}});
    shop.deliver(&odd).await;
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM telegram_updates WHERE update_id = $1")
            .bind(odd["update_id"].as_i64())
            .fetch_one(&shop.app.state.pool)
            .await
            .unwrap();
    assert_eq!((attempts, error), (1, None), "skipped once, not retried");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn one_chats_updates_are_handled_in_order(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(23, "Ola") };
    // /language, then Persian, then /start: in order, the menu comes out in Persian
    let first = next_id();
    let updates = [
        command_update(first, &u, "/language"),
        callback_update(first + 1, &u, 1, "lg:fa"),
        command_update(first + 2, &u, "/start"),
    ];
    for update in &updates {
        assert_eq!(shop.post(update).await, 200);
    }
    shop.deliver(&updates[2]).await;
    let last = shop.tg.messages_to(23).last().unwrap().text.clone().unwrap();
    assert!(last.contains("سلام Ola"), "handled in order, so the last menu is Persian: {last}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn updates_left_unhandled_by_a_crash_are_handled_after_a_restart(pool: PgPool) {
    // stored by an instance that died before handling it
    let u = TgUser::new(24, "Kim");
    let update = command_update(next_id(), &u, "/start");
    sqlx::query("INSERT INTO telegram_updates (update_id, chat_id, payload, locked_by, locked_until) VALUES ($1, 24, $2, 'dead', now() - interval '1 second')")
        .bind(update["update_id"].as_i64().unwrap())
        .bind(&update)
        .execute(&pool)
        .await
        .unwrap();
    let tg = FakeTelegram::start().await;
    let app = spawn_app_with(pool, |s| bot_settings(s, &tg)).await;
    let shop = BotShop { app, tg };
    let sent = shop.tg.wait_for("sendMessage", 1, std::time::Duration::from_secs(10)).await;
    assert_eq!(sent[0].params["chat_id"], 24);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn without_a_public_url_the_bot_long_polls(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let _app = spawn_app_with(pool.clone(), |s| {
        bot_settings(s, &tg);
        s.telegram.public_url = None;
        s.telegram.webhook_secret = None;
    })
    .await;
    let u = TgUser::new(25, "Poll");
    tg.queue_update(command_update(next_id(), &u, "/start"));
    let sent = tg.wait_for("sendMessage", 1, std::time::Duration::from_secs(15)).await;
    assert_eq!(sent[0].params["chat_id"], 25);
    assert!(!tg.calls_of("deleteWebhook").is_empty(), "polling needs the webhook removed");
    assert!(tg.calls_of("setWebhook").is_empty());
    assert_eq!(stored(&pool).await, 1, "polled updates go through the same durable inbox");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_update_the_database_refuses_fails_alone(pool: PgPool) {
    use vpnshop::bot::intake::{Intake, IntakeError};
    let intake = Intake::new(64);
    // With a UTF-8 database the `json` column takes every update serde accepts; a database in another encoding
    // refuses characters it cannot hold (SQLSTATE 22P05), for example. This test makes one update refusable
    // with a constraint of its own (on its throwaway database) and sends it with 20 good ones in one batch.
    sqlx::query(
        "ALTER TABLE telegram_updates ADD CONSTRAINT test_refuses CHECK (payload::text NOT LIKE '%refuse me%')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let poison = command_update(next_id(), &TgUser::new(27, "Poison"), "refuse me").to_string();
    let mut bodies = vec![poison];
    bodies.extend((0..20).map(|_| command_update(next_id(), &TgUser::new(26, "Neighbour"), "/start").to_string()));
    let requests: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let intake = intake.clone();
            tokio::spawn(async move { intake.accept_raw(body.as_bytes()).await })
        })
        .collect();
    // all 21 wait in the queue before a writer starts, so they reach the database as one batch
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while intake.queued() < 21 {
        assert!(std::time::Instant::now() < deadline, "only {} of 21 requests reached the queue", intake.queued());
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(intake.clone().write(pool.clone(), cancel.clone()));
    let mut results = Vec::new();
    for r in requests {
        results.push(r.await.unwrap());
    }
    assert_eq!(results[0], Err(IntakeError::Invalid), "the poison update is refused");
    assert!(results[1..].iter().all(Result::is_ok), "its neighbours are stored: {results:?}");
    assert_eq!(stored(&pool).await, 20);
    cancel.cancel();
    writer.await.unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn non_objects_are_refused(pool: PgPool) {
    let shop = bot_shop(pool).await;
    for body in ["[1]", "[]", "  [ {\"update_id\": 1} ]"] {
        assert_eq!(delivery(&shop, body).send().await.unwrap().status(), 400, "{body}");
    }
    assert_eq!(stored(&shop.app.state.pool).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_stored_update_we_cannot_read_is_set_aside_and_blocks_no_one(pool: PgPool) {
    use vpnshop::services::inbox;
    let shop = bot_shop(pool).await;
    let db = &shop.app.state.pool;
    // valid JSON that serde will not read: a number out of range, and nesting deeper than its limit
    let (huge, deep) = (i64::from(next_id()), i64::from(next_id()));
    let payloads = vec![
        format!(r#"{{"update_id": {huge}, "x": 1e400}}"#),
        format!(r#"{{"update_id": {deep}, "x": {}1{}}}"#, "[".repeat(300), "]".repeat(300)),
    ];
    assert_eq!(inbox::store(db, &[huge, deep], &[31, 32], &payloads, &[None, None]).await.unwrap(), 2);
    // a customer's /start behind them is answered
    let user = TgUser::new(33, "Behind");
    shop.deliver(&command_update(next_id(), &user, "/start")).await;
    assert!(shop.tg.calls_of("sendMessage").iter().any(|c| c.params["chat_id"] == 33), "the customer is answered");
    for id in [huge, deep] {
        let (handled, attempts): (bool, i32) =
            sqlx::query_as("SELECT handled_at IS NOT NULL, attempts FROM telegram_updates WHERE update_id = $1")
                .bind(id)
                .fetch_one(db)
                .await
                .unwrap();
        assert!(handled, "update {id} is set aside");
        assert_eq!(attempts, 1, "update {id} is not retried");
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_older_update_that_commits_late_waits_for_its_chat(pool: PgPool) {
    use vpnshop::services::inbox;
    let store = |id: i64, chat: i64| {
        let pool = pool.clone();
        async move { inbox::store(&pool, &[id], &[chat], &[format!(r#"{{"update_id": {id}}}"#)], &[None]).await.unwrap() }
    };
    store(101, 5).await;
    let first = inbox::claim(&pool, "w", 60.0, 16).await.unwrap();
    assert_eq!(first.iter().map(|u| u.update_id).collect::<Vec<_>>(), vec![101]);
    // 100 of the same chat arrives while 101 is being handled: it must not run alongside
    store(100, 5).await;
    store(200, 6).await;
    let next = inbox::claim(&pool, "w", 60.0, 16).await.unwrap();
    assert_eq!(next.iter().map(|u| u.update_id).collect::<Vec<_>>(), vec![200], "only the other chat's update");
    assert!(inbox::finish(&pool, 101, "w", None).await.unwrap());
    let last = inbox::claim(&pool, "w", 60.0, 16).await.unwrap();
    assert_eq!(last.iter().map(|u| u.update_id).collect::<Vec<_>>(), vec![100]);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_chat_with_a_long_backlog_does_not_hold_up_the_others(pool: PgPool) {
    use vpnshop::services::inbox;
    // chat 1 has 2,500 updates waiting (more than a claim looks at first), chat 2 one newer update
    let ids: Vec<i64> = (1..=2501).collect();
    let chats: Vec<i64> = ids.iter().map(|id| if *id <= 2500 { 1 } else { 2 }).collect();
    let payloads: Vec<String> = ids.iter().map(|id| format!(r#"{{"update_id": {id}}}"#)).collect();
    assert_eq!(inbox::store(&pool, &ids, &chats, &payloads, &vec![None; ids.len()]).await.unwrap(), 2501);

    let first = inbox::claim(&pool, "w", 60.0, 16).await.unwrap();
    let mut got: Vec<(i64, i64)> = first.iter().map(|u| (u.chat_id, u.update_id)).collect();
    got.sort();
    assert_eq!(got, vec![(1, 1), (2, 2501)], "one update per chat, the oldest of each");

    // while chat 1's update is in progress, nothing more of chat 1 is handed out
    assert!(inbox::claim(&pool, "w", 60.0, 16).await.unwrap().is_empty());
    assert!(inbox::finish(&pool, 1, "w", None).await.unwrap());
    let next = inbox::claim(&pool, "w", 60.0, 16).await.unwrap();
    assert_eq!(next.iter().map(|u| u.update_id).collect::<Vec<_>>(), vec![2], "then chat 1's next one");
}

/// A `/start` update body with this id (its own user and chat).
fn start_body(update_id: u64) -> String {
    let mut update = command_update(1, &TgUser::new(5_000 + (update_id % 1000) as i64, "Dup"), "/start");
    update["update_id"] = serde_json::json!(update_id);
    update.to_string()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_same_updates_delivered_twice_in_opposite_orders_never_deadlock(pool: PgPool) {
    use vpnshop::bot::intake::{Intake, WRITERS};
    // Telegram re-delivers when answers are slow: the same updates arrive twice at about the same time. The queue
    // holds 64 updates and then the same 64 in reverse order, so each writer takes one of the two batches.
    let intake = Intake::new(256);
    let ids: Vec<u64> = (1..=64).collect();
    let bodies: Vec<String> = ids.iter().chain(ids.iter().rev()).map(|id| start_body(*id)).collect();
    let requests: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let intake = intake.clone();
            tokio::spawn(async move { intake.accept_raw(body.as_bytes()).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while intake.queued() < 128 {
        assert!(std::time::Instant::now() < deadline, "only {} of 128 requests queued", intake.queued());
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Line both INSERTs up, as a busy server does by chance: another session holds update 32 uncommitted, so
    // both writers run until they reach it (or each other) and wait; then it lets go.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO telegram_updates (update_id, chat_id, payload) VALUES (32, 1, '{}')")
        .execute(&mut *holder)
        .await
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let writers: Vec<_> =
        (0..WRITERS).map(|_| tokio::spawn(intake.clone().write(pool.clone(), cancel.clone()))).collect();
    let waiting = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        n
    };
    while waiting().await < 2 {
        assert!(std::time::Instant::now() < deadline, "both writers are inserting");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    holder.rollback().await.unwrap();
    let mut refused = Vec::new();
    for r in requests {
        if let Err(e) = r.await.unwrap() {
            refused.push(e);
        }
    }
    assert!(
        refused.is_empty(),
        "every delivery is answered 200, none 503 (a deadlock fails a whole batch): {refused:?}"
    );
    assert_eq!(stored(&pool).await, 64, "each update stored once");
    cancel.cancel();
    for w in writers {
        w.await.unwrap();
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_duplicate_within_one_batch_is_stored_once_and_both_deliveries_succeed(pool: PgPool) {
    use vpnshop::bot::intake::Intake;
    let intake = Intake::new(16);
    let body = start_body(77);
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let (intake, body) = (intake.clone(), body.clone());
            tokio::spawn(async move { intake.accept_raw(body.as_bytes()).await })
        })
        .collect();
    while intake.queued() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(intake.clone().write(pool.clone(), cancel.clone()));
    for r in requests {
        assert_eq!(r.await.unwrap(), Ok(()));
    }
    assert_eq!(stored(&pool).await, 1);
    cancel.cancel();
    writer.await.unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_update_id_beyond_what_teloxide_reads_is_refused_at_intake(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let too_big = u64::from(u32::MAX) + 1;
    let res = delivery(&shop, start_body(too_big)).send().await.unwrap();
    assert_eq!(res.status(), 400, "an id teloxide cannot read is never stored");
    assert_eq!(stored(&shop.app.state.pool).await, 0);
    // the largest id teloxide reads is taken and handled
    let u = TgUser::new(5_000 + (u64::from(u32::MAX) % 1000) as i64, "Dup");
    let mut max = command_update(1, &u, "/start");
    max["update_id"] = serde_json::json!(u32::MAX);
    shop.deliver(&max).await;
    assert!(shop.tg.calls_of("sendMessage").iter().any(|c| c.params["chat_id"] == u.id), "answered");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn long_polling_skips_an_update_it_cannot_read_and_moves_past_ids_beyond_i32(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let _app = spawn_app_with(pool.clone(), |s| {
        bot_settings(s, &tg);
        s.telegram.public_url = None;
        s.telegram.webhook_secret = None;
    })
    .await;
    let u = TgUser::new(29, "Poll");
    // ids past i32::MAX (Telegram's ids are u32); the first is an update we cannot read (a Bot API change, say)
    let first: u32 = 3_000_000_000;
    tg.queue_update(serde_json::json!({"update_id": first, "message": {"chat": "not a chat"}}));
    for (id, text) in [(first + 1, "/start"), (first + 2, "/help")] {
        let mut update = command_update(id, &u, text);
        // message ids are per chat and small (the builder reuses the update id)
        update["message"]["message_id"] = serde_json::json!(id - first);
        tg.queue_update(update);
    }
    let sent = tg.wait_for("sendMessage", 2, std::time::Duration::from_secs(15)).await;
    assert!(sent.iter().all(|c| c.params["chat_id"] == 29), "the customer behind it is answered");
    // Telegram is told they are all done: the next poll asks from past the last one
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let offsets: Vec<i64> = tg.calls_of("getUpdates").iter().filter_map(|c| c.params["offset"].as_i64()).collect();
        if offsets.contains(&(i64::from(first) + 3)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the offset never moved past the updates: {offsets:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored(&pool).await, 2, "the unreadable update is skipped, not stored");
}
