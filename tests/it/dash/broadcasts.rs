//! The broadcasts pages (`/dash/broadcasts`): the list, a broadcast and its progress fragment render for every
//! role in every language; editors compose, preview (escaped, as customers see it) and send a broadcast through
//! the service (the rows it makes, audited; one delivery through the fake Bot API), pause, resume and cancel it;
//! viewers, forged forms and bad input change nothing.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use vpnshop::services::audit::Who;
use vpnshop::services::broadcasts::{self, Draft, Request};

use super::{Dash, dash, dash_with};
use crate::helpers::redis_url;
use crate::support::FakeTelegram;

/// `n` customers from telegram id `first`, languages in turn en, fa, ru.
async fn customers(pool: &PgPool, first: i64, n: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "INSERT INTO users (telegram_id, language)
         SELECT $1 + g, (ARRAY['en', 'fa', 'ru'])[1 + g % 3] FROM generate_series(0, $2 - 1) g RETURNING id",
    )
    .bind(first)
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A broadcast made through the service (by the command line), to everyone.
async fn made(d: &Dash) -> i64 {
    let draft = Draft::parse(&Request {
        texts: [("en".to_owned(), "Hi <b>all</b>".to_owned()), ("fa".to_owned(), "سلام".to_owned())].into(),
        audience_kind: "all".into(),
        ..Request::default()
    })
    .unwrap();
    broadcasts::create(&d.app.state.pool, &d.app.state.settings.jobs, &draft, &Who::cli()).await.unwrap().row.id
}

/// What a change could touch: broadcasts (status), recipients, sender jobs, broadcast audit entries.
async fn snapshot(pool: &PgPool) -> (Vec<(i64, String)>, i64, i64, i64) {
    let rows = sqlx::query_as("SELECT id, status FROM broadcasts ORDER BY id").fetch_all(pool).await.unwrap();
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap() };
    (
        rows,
        count("SELECT count(*) FROM broadcast_recipients").await,
        count("SELECT count(*) FROM jobs WHERE kind = 'broadcast.send'").await,
        count("SELECT count(*) FROM audit_log WHERE entity = 'broadcast'").await,
    )
}

fn compose<'a>(en: &'a str, audience: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("text_en", en),
        ("text_fa", ""),
        ("text_ru", ""),
        ("fallback", ""),
        ("audience", audience),
        ("days", ""),
        ("location", ""),
    ]
}

fn with<'a>(mut fields: Vec<(&'a str, &'a str)>, name: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    fields.retain(|(k, _)| *k != name);
    fields.push((name, value));
    fields
}

#[sqlx::test]
async fn the_broadcast_pages_render_for_every_role_in_every_language_and_viewers_see_no_change_forms(pool: PgPool) {
    let d = dash(pool.clone()).await;
    customers(&pool, 9000, 3).await;
    let id = made(&d).await;
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            let mut paths = vec![
                "/dash/broadcasts".to_owned(),
                "/dash/broadcasts?status=running".to_owned(),
                format!("/dash/broadcasts/{id}"),
            ];
            if who != "viewer" {
                paths.push("/dash/broadcasts/new".to_owned());
            }
            for path in &paths {
                let page = d.get(&mut b, path).await;
                page.assert_ok();
                let dir = if lang == "fa" { "rtl" } else { "ltr" };
                assert!(page.body.contains(&format!(r#"<html lang="{lang}" dir="{dir}""#)), "{who} {lang} {path}");
                assert!(
                    !page.body.contains(" style=") && !page.body.contains("<script>"),
                    "{path}: inline style or script"
                );
                if path.ends_with(&id.to_string()) || path.contains("status") {
                    assert!(
                        page.body.contains(&format!("/dash/broadcasts/{id}/progress")),
                        "{path}: a running one polls"
                    );
                }
                if path.ends_with(&id.to_string()) {
                    assert!(page.body.contains("Hi <b>all</b>"), "{path}: the text as customers see it");
                }
                let forms =
                    ["/pause\"", "/broadcasts/preview\"", "/broadcasts/new\""].iter().any(|f| page.body.contains(f));
                assert_eq!(forms, who != "viewer", "{who} {lang} {path}: change forms only for editors");
            }
        }
        let new = d.get(&mut b, "/dash/broadcasts/new").await;
        assert_eq!(new.status == StatusCode::FORBIDDEN, who == "viewer", "{who}: composing is a change");
    }
    let mut b = d.sign_in("viewer").await;
    let fragment = d.get(&mut b, &format!("/dash/broadcasts/{id}/progress")).await;
    fragment.assert_ok();
    assert!(!fragment.body.contains("<html"), "a fragment, not a page");
    assert!(fragment.body.contains(r#"hx-trigger="every 3s""#), "it keeps polling while running");
}

#[sqlx::test]
async fn a_broadcast_composed_previewed_and_sent_from_the_dashboard_is_created_with_its_texts_and_audience(
    pool: PgPool,
) {
    let d = dash(pool.clone()).await;
    let users = customers(&pool, 9100, 4).await;
    sqlx::query("UPDATE users SET banned_at = now() WHERE id = $1").bind(users[0]).execute(&pool).await.unwrap();
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/broadcasts/new").await.assert_ok();
    let fields = with(compose("Hello <b>there</b>\r\nline two", "all"), "text_fa", "سلام <i>دوستان</i>");
    let preview = d.post(&mut b, "/dash/broadcasts/preview", &fields).await;
    preview.assert_ok();
    assert!(preview.body.contains("Hello <b>there</b>\nline two"), "rendered as customers see it");
    assert!(preview.body.contains("سلام <i>دوستان</i>"));
    assert!(preview.body.contains("3 customers now"), "the banned customer is left out");
    assert_eq!(snapshot(&pool).await.0.len(), 0, "a preview writes nothing");

    let sent = d.post(&mut b, "/dash/broadcasts", &fields).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let id: i64 = sqlx::query_scalar("SELECT id FROM broadcasts").fetch_one(&pool).await.unwrap();
    assert_eq!(sent.location(), Some(format!("/dash/broadcasts/{id}?done=broadcast-created").as_str()));
    let (texts, fallback, audience, total, by): (serde_json::Value, String, serde_json::Value, i32, Option<String>) =
        sqlx::query_as("SELECT texts, fallback, audience, total, created_by_id FROM broadcasts WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(texts, json!({"en": "Hello <b>there</b>\nline two", "fa": "سلام <i>دوستان</i>"}));
    assert_eq!((fallback.as_str(), audience, total), ("en", json!({"kind": "all"}), 3));
    let editor: i64 =
        sqlx::query_scalar("SELECT id FROM admins WHERE username = 'editor'").fetch_one(&pool).await.unwrap();
    assert_eq!(by, Some(editor.to_string()));
    let (_, recipients, jobs, audited) = snapshot(&pool).await;
    assert_eq!((recipients, jobs, audited), (3, 1, 1), "recipients fixed, a sender queued, audited");
    let page = d.get(&mut b, &format!("/dash/broadcasts/{id}?done=broadcast-created")).await;
    assert!(page.body.contains("The broadcast is being sent."));

    let located = with(with(compose("Maintenance in DE", "location"), "location", "de"), "days", "30");
    let sent = d.post(&mut b, "/dash/broadcasts", &located).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let expired = with(compose("We miss you", "expired"), "days", "30");
    assert_eq!(d.post(&mut b, "/dash/broadcasts", &expired).await.status, StatusCode::SEE_OTHER);
    let audiences: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT audience FROM broadcasts ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(audiences[1..], [json!({"kind": "location", "location": "de"}), json!({"kind": "expired", "days": 30})]);
}

#[sqlx::test]
async fn a_preview_escapes_script_and_unsafe_links(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/broadcasts/new").await.assert_ok();
    let raw = d.post(&mut b, "/dash/broadcasts/preview", &compose("<script>alert(1)</script>", "all")).await;
    assert_eq!(raw.status, StatusCode::UNPROCESSABLE_ENTITY, "not Telegram HTML");
    assert!(raw.body.contains("texts.en:"), "the field is named");
    assert!(!raw.body.contains("<script>alert"), "never markup");
    assert!(raw.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the text comes back, escaped");

    let text = "&lt;script&gt;alert(1)&lt;/script&gt; <a href=\"javascript:alert(2)\">x</a> <a href=\"https://e.com/?a&quot;b\">y</a>";
    let page = d.post(&mut b, "/dash/broadcasts/preview", &compose(text, "all")).await;
    page.assert_ok();
    assert!(!page.body.contains("<script>alert") && !page.body.contains("javascript:alert(2)\">"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt; <span>x</span>"));
    assert!(page.body.contains(r#"<a href="https://e.com/?a&quot;b" rel="noopener noreferrer nofollow">y</a>"#));
    assert_eq!(snapshot(&pool).await.0.len(), 0);
}

#[sqlx::test]
async fn bad_compose_input_is_refused_naming_the_field_and_nothing_is_written(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/broadcasts/new").await.assert_ok();
    for (fields, field) in [
        (compose("", "all"), "texts"),
        (compose("1 < 2", "all"), "texts.en"),
        (compose("hi", "expired"), "audience.days"),
        (with(compose("hi", "expired"), "days", "abc"), "audience.days"),
        (with(compose("hi", "expired"), "days", "0"), "audience.days"),
        (compose("hi", "location"), "audience.location"),
        (with(compose("hi", "location"), "location", "zz"), "audience.location"),
        (compose("hi", "everyone"), "audience.kind"),
        (with(compose("hi", "all"), "fallback", "ru"), "fallback"),
    ] {
        for path in ["/dash/broadcasts/preview", "/dash/broadcasts"] {
            let page = d.post(&mut b, path, &fields).await;
            assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {fields:?}");
            assert!(page.body.contains(&format!("{field}:")), "{path}: {field} named in {}", page.body);
            assert!(page.body.contains(r#"aria-invalid="true""#), "{path}: the input is marked");
        }
    }
    assert_eq!(snapshot(&pool).await, (vec![], 0, 0, 0), "nothing was written");
}

#[sqlx::test]
async fn pause_resume_and_cancel_work_for_editors_and_viewers_or_forged_forms_change_nothing(pool: PgPool) {
    let d = dash(pool.clone()).await;
    customers(&pool, 9200, 3).await;
    let id = made(&d).await;
    let before = snapshot(&pool).await;
    for (who, csrf) in [("viewer", None), ("editor", Some("")), ("editor", Some("forged-token"))] {
        let mut b = d.sign_in(who).await;
        d.get(&mut b, "/dash/broadcasts").await.assert_ok();
        for path in
            [format!("/dash/broadcasts/{id}/pause"), format!("/dash/broadcasts/{id}/cancel"), "/dash/broadcasts".into()]
        {
            let form = compose("sneaky", "all");
            let page = match csrf {
                None => d.post(&mut b, &path, &form).await,
                Some("") => d.post_raw(&mut b, &path, &form).await,
                Some(token) => d.post_raw(&mut b, &path, &with(form, "csrf", token)).await,
            };
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{who} {csrf:?} {path}");
        }
    }
    assert_eq!(snapshot(&pool).await, before, "nothing changed");

    let mut b = d.sign_in("editor").await;
    d.get(&mut b, &format!("/dash/broadcasts/{id}")).await.assert_ok();
    let status = async || -> String {
        sqlx::query_scalar("SELECT status FROM broadcasts WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap()
    };
    let paused = d.post(&mut b, &format!("/dash/broadcasts/{id}/pause"), &[]).await;
    assert_eq!(paused.location(), Some(format!("/dash/broadcasts/{id}?done=broadcast-paused").as_str()));
    assert_eq!(status().await, "paused");
    let again = d.post(&mut b, &format!("/dash/broadcasts/{id}/pause"), &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a paused broadcast cannot be paused");
    assert_eq!(d.post(&mut b, &format!("/dash/broadcasts/{id}/resume"), &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(status().await, "running");
    assert_eq!(d.post(&mut b, &format!("/dash/broadcasts/{id}/cancel"), &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(status().await, "cancelled");
    let skipped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = $1 AND status = 'skipped'")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(skipped, 3, "nobody left gets it");
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE entity = 'broadcast' AND actor_kind = 'admin' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["broadcast.pause", "broadcast.resume", "broadcast.cancel"]);
    let page = d.get(&mut b, &format!("/dash/broadcasts/{id}")).await;
    assert!(!page.body.contains(r#"hx-trigger="every 3s""#), "a cancelled broadcast stops polling");
    assert_eq!(d.post(&mut b, "/dash/broadcasts/999999/cancel", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(d.get(&mut b, "/dash/broadcasts/999999").await.status, StatusCode::NOT_FOUND);
    let bad = d.get(&mut b, "/dash/broadcasts/x").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id:"));
}

#[sqlx::test]
async fn a_broadcast_sent_from_the_dashboard_reaches_customers_in_their_language(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let (url, prefix) = (tg.url(), format!("vpnshop-test-{}", uuid::Uuid::new_v4().simple()));
    let d = dash_with(pool.clone(), |s| {
        s.telegram.token = Some(crate::support::TEST_TOKEN.to_owned().into());
        s.telegram.api_url = url.clone();
        s.telegram.public_url = None;
        s.redis.url = Some(redis_url().into());
        s.redis.prefix = prefix.clone();
    })
    .await;
    customers(&pool, 9300, 2).await; // 9300 speaks en, 9301 fa
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/broadcasts/new").await.assert_ok();
    let fields = with(compose("Hello <b>all</b>", "all"), "text_fa", "سلام");
    assert_eq!(d.post(&mut b, "/dash/broadcasts", &fields).await.status, StatusCode::SEE_OTHER);
    let start = Instant::now();
    let got = |chat: i64| tg.messages_to(chat).into_iter().filter_map(|m| m.text).collect::<Vec<_>>();
    while got(9300).is_empty() || got(9301).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "not delivered: {:?} {:?}", got(9300), got(9301));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got(9300), ["Hello <b>all</b>"], "sent as Telegram HTML");
    assert_eq!(got(9301).len(), 1);
    assert!(got(9301)[0].contains("سلام"), "the Persian text for the Persian speaker: {:?}", got(9301));
}
