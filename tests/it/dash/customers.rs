//! Customers in the dashboard: search by Telegram id, @username (any case) and name, 50 a page; one customer's
//! page with orders, payments, subscriptions and the messages the shop keeps; Ban / Unban through the same
//! service as the API, audited — refused for viewers, forged forms and bad input.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::dash;
use crate::api::money::{active_subscription, under_review};

async fn customer(pool: &PgPool, tg: i64, username: Option<&str>, first_name: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO users (telegram_id, username, first_name) VALUES ($1, $2, $3) RETURNING id")
        .bind(tg)
        .bind(username)
        .bind(first_name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn ban_state(pool: &PgPool, id: i64) -> (Option<chrono::DateTime<chrono::Utc>>, Option<String>) {
    sqlx::query_as("SELECT banned_at, ban_reason FROM users WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

async fn audited(pool: &PgPool, id: i64, action: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT actor_kind, actor_id FROM audit_log WHERE entity = 'user' AND entity_id = $1 AND action = $2",
    )
    .bind(id.to_string())
    .bind(action)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn link(id: i64) -> String {
    format!("href=\"/dash/customers/{id}\"")
}

#[sqlx::test]
async fn the_pages_render_for_every_role_in_every_language_with_the_record_and_messages(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (sub, _) = active_subscription(&pool, 71_000, "active", None).await;
    let id: i64 =
        sqlx::query_scalar("SELECT user_id FROM subscriptions WHERE id = $1").bind(sub).fetch_one(&pool).await.unwrap();
    // what they wrote to the bot, and what the bot queued for them
    sqlx::query(
        r#"INSERT INTO telegram_updates (update_id, chat_id, payload, handled_at)
           VALUES (9001, 71000, '{"update_id":9001,"message":{"message_id":1,"date":0,"chat":{"id":71000,"type":"private"},"text":"hello <shop>"}}', now())"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        r#"INSERT INTO jobs (kind, payload, status) VALUES ('telegram.send',
           '{"messages":[{"type":"text","chat_id":71000,"text":"Your <b>subscription</b> is ready &amp; working"}],"sent":1}', 'done')"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            for path in ["/dash/customers".to_owned(), format!("/dash/customers/{id}")] {
                let page = d.get(&mut b, &path).await;
                page.assert_ok();
                assert_eq!(page.body.contains("dir=\"rtl\""), lang == "fa", "{who} {lang} {path}");
                assert!(!page.body.contains(" style=") && !page.body.contains("<script>"), "{path}");
                assert!(page.body.len() < 100_000);
            }
            let detail = d.get(&mut b, &format!("/dash/customers/{id}")).await;
            assert_eq!(detail.body.contains(&format!("/dash/customers/{id}/ban")), who != "viewer", "{who}");
        }
        b.set_cookie("vpnshop_lang", "en");
        assert!(d.get(&mut b, "/dash/customers").await.body.contains(&link(id)), "listed");
        let body = d.get(&mut b, &format!("/dash/customers/{id}")).await.body;
        for text in [
            "@c71000",
            "$5.00",
            &format!("href=\"/dash/subscriptions/{sub}\""),
            "fulfilled",
            "hello &lt;shop&gt;",
            "Your subscription is ready &amp; working",
        ] {
            assert!(body.contains(text), "{text} in {body}");
        }
    }
    let mut b = d.sign_in("viewer").await;
    assert_eq!(d.get(&mut b, "/dash/customers/99999999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(d.get(&mut b, "/dash/customers/abc").await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test]
async fn search_finds_customers_by_telegram_id_username_in_any_case_and_name(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let alice = customer(&pool, 72_001, Some("Alice_K"), "Alice Keller").await;
    let maria = customer(&pool, 72_002, Some("masha_b"), "Мария Иванова").await;
    let zed = customer(&pool, 72_003, None, "Zed 100%_off").await;
    let mut b = d.sign_in("viewer").await;
    let cases: [(&str, &[i64]); 9] = [
        ("72001", &[alice]),
        ("@alice_k", &[alice]),
        ("@ALICE", &[alice]),
        ("alice", &[alice]),
        ("KELLER", &[alice]),
        ("мария", &[maria]),
        ("ИВАНОВА", &[maria]),
        ("100%_", &[zed]),
        ("", &[alice, maria, zed]),
    ];
    for (q, expected) in cases {
        let url = format!("/dash/customers?q={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
        let page = d.get(&mut b, &url).await;
        page.assert_ok();
        for id in [alice, maria, zed] {
            assert_eq!(page.body.contains(&link(id)), expected.contains(&id), "{q:?} and customer {id}");
        }
    }
    let none = d.get(&mut b, "/dash/customers?q=nobody").await;
    assert!(none.body.contains("No customers match."));
    for bad in ["@bad%20name", "99999999999999999999"] {
        let page = d.get(&mut b, &format!("/dash/customers?q={bad}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(page.body.contains("q:"), "names q: {}", page.body);
    }
    assert_eq!(d.get(&mut b, "/dash/customers?cursor=junk").await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test]
async fn the_listing_shows_50_a_page_and_the_next_page_continues_without_repeats(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let ids = crate::api::money::customers(&pool, 73_000, 60).await;
    let mut b = d.sign_in("viewer").await;
    let first = d.get(&mut b, "/dash/customers").await;
    let shown = |body: &str| ids.iter().copied().filter(|id| body.contains(&link(*id))).collect::<Vec<_>>();
    assert_eq!(shown(&first.body).len(), 50);
    let re = regex::Regex::new(r#"href="(/dash/customers\?cursor=[^"]+)""#).unwrap();
    let next = re.captures(&first.body).expect("a next page link")[1].replace("&amp;", "&");
    let second = d.get(&mut b, &next).await;
    second.assert_ok();
    let (a, b2) = (shown(&first.body), shown(&second.body));
    assert_eq!(a.len() + b2.len(), 60);
    assert!(a.iter().all(|id| !b2.contains(id)), "no repeats");
    assert!(second.body.contains("First page"));
}

#[sqlx::test]
async fn banning_and_unbanning_are_audited_and_viewers_forged_forms_and_bad_input_change_nothing(pool: PgPool) {
    let d = dash(pool.clone()).await;
    under_review(&pool, 74_000, 1).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE telegram_id = 74000").fetch_one(&pool).await.unwrap();
    let editor_id: i64 =
        sqlx::query_scalar("SELECT id FROM admins WHERE username = 'editor'").fetch_one(&pool).await.unwrap();
    let ban = format!("/dash/customers/{id}/ban");

    let mut viewer = d.sign_in("viewer").await;
    d.get(&mut viewer, &format!("/dash/customers/{id}")).await.assert_ok();
    assert_eq!(d.post(&mut viewer, &ban, &[("reason", "fraud")]).await.status, StatusCode::FORBIDDEN);
    let mut editor = d.sign_in("editor").await;
    d.get(&mut editor, &format!("/dash/customers/{id}")).await.assert_ok();
    assert_eq!(d.post_raw(&mut editor, &ban, &[("reason", "fraud")]).await.status, StatusCode::FORBIDDEN);
    let forged = d.post_raw(&mut editor, &ban, &[("reason", "fraud"), ("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    for form in [vec![("reason", "  ")], vec![]] {
        let page = d.post(&mut editor, &ban, &form).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert!(page.body.contains("reason:"), "{}", page.body);
    }
    assert_eq!(
        d.post(&mut editor, "/dash/customers/99999999/ban", &[("reason", "x")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(ban_state(&pool, id).await, (None, None), "nothing written");
    assert!(audited(&pool, id, "user.ban").await.is_empty());

    let page = d.post(&mut editor, &ban, &[("reason", "fraud")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some(format!("/dash/customers/{id}?done=customer-banned").as_str()));
    let (banned_at, reason) = ban_state(&pool, id).await;
    assert!(banned_at.is_some() && reason.as_deref() == Some("fraud"));
    assert_eq!(audited(&pool, id, "user.ban").await, vec![("admin".to_owned(), Some(editor_id.to_string()))]);
    let shown = d.get(&mut editor, &format!("/dash/customers/{id}?done=customer-banned")).await;
    assert!(shown.body.contains("The customer is banned.") && shown.body.contains("fraud"), "{}", shown.body);
    assert!(shown.body.contains(&format!("/dash/customers/{id}/unban")));

    assert_eq!(d.post(&mut viewer, &format!("/dash/customers/{id}/unban"), &[]).await.status, StatusCode::FORBIDDEN);
    assert!(ban_state(&pool, id).await.0.is_some());
    let page = d.post(&mut editor, &format!("/dash/customers/{id}/unban"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(ban_state(&pool, id).await, (None, None));
    assert_eq!(audited(&pool, id, "user.unban").await, vec![("admin".to_owned(), Some(editor_id.to_string()))]);
}
