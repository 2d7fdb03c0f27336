//! The audit log page (`/dash/audit`): it renders for every role in every language, shows who did what to which
//! row, when and from where with the detail escaped, narrows by actor, action, entity and dates, pages 50 at a
//! time, and names a bad filter.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use vpnshop::services::audit::Who;

use super::{Dash, dash};

/// The rows of the page's table (each `<tr>` of its body).
fn rows(body: &str) -> Vec<&str> {
    let Some(start) = body.find("<tbody>") else { return vec![] };
    let end = body[start..].find("</tbody>").map_or(body.len(), |e| start + e);
    body[start..end].split("<tr>").skip(1).collect()
}

async fn record(pool: &PgPool, who: &Who, action: &str, entity: &str, id: i64, detail: serde_json::Value) {
    let mut conn = pool.acquire().await.unwrap();
    who.record(&mut conn, action, entity, id, detail).await.unwrap();
}

/// The editor takes a plan off sale through the dashboard; the command line prices one.
async fn history(d: &Dash, pool: &PgPool) -> i64 {
    let plan: i64 = sqlx::query_scalar("SELECT id FROM plans WHERE NOT is_trial AND active ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/plans").await.assert_ok();
    let off = d.post(&mut b, &format!("/dash/plans/{plan}/disable"), &[]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    record(pool, &Who::cli(), "plan.price_set", "plan", plan, json!({"currency": "USD", "amount_minor": 500})).await;
    record(pool, &Who::cli(), "broadcast.create", "broadcast", 7, json!({"total": 0})).await;
    plan
}

#[sqlx::test]
async fn the_audit_page_renders_for_every_role_in_every_language_with_who_what_where_and_escaped_detail(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = history(&d, &pool).await;
    record(&pool, &Who::cli(), "test.note", "plan", plan, json!({"note": "<script>alert(1)</script>"})).await;
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            let page = d.get(&mut b, "/dash/audit").await;
            page.assert_ok();
            assert_eq!(page.body.contains(r#"dir="rtl""#), lang == "fa", "{who} {lang}");
            assert!(
                !page.body.contains(" style=") && !page.body.contains("<script>"),
                "{who} {lang}: inline style or script"
            );
            assert!(!page.body.contains("method=\"post\" action=\"/dash/audit"), "read-only");
            let off =
                rows(&page.body).into_iter().find(|r| r.contains("plan.deactivate")).expect("the change is listed");
            assert!(off.contains("editor"), "who: {off}");
            assert!(off.contains(&format!("/dash/plans/{plan}")), "which row: {off}");
            assert!(off.contains("127.0.0.1"), "from where: {off}");
            let note = rows(&page.body).into_iter().find(|r| r.contains("test.note")).unwrap();
            assert!(note.contains(r#"{&quot;note&quot;:&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;}"#), "{note}");
        }
    }
}

#[sqlx::test]
async fn audit_filters_narrow_the_list(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = history(&d, &pool).await;
    let mut b = d.sign_in("viewer").await;
    let editor: i64 =
        sqlx::query_scalar("SELECT id FROM admins WHERE username = 'editor'").fetch_one(&pool).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let actions = |body: &str| -> Vec<String> {
        rows(body)
            .iter()
            .filter_map(|r| {
                ["plan.deactivate", "plan.price_set", "broadcast.create"].into_iter().find(|a| r.contains(a))
            })
            .map(str::to_owned)
            .collect()
    };
    for (query, expected) in [
        ("".to_owned(), vec!["broadcast.create", "plan.price_set", "plan.deactivate"]),
        ("?action=plan.price_set".to_owned(), vec!["plan.price_set"]),
        ("?actor=editor".to_owned(), vec!["plan.deactivate"]),
        (format!("?actor_kind=admin&actor={editor}"), vec!["plan.deactivate"]),
        ("?actor_kind=cli".to_owned(), vec!["broadcast.create", "plan.price_set"]),
        ("?entity=plan".to_owned(), vec!["plan.price_set", "plan.deactivate"]),
        (format!("?entity=plan&entity_id={plan}&actor_kind=cli"), vec!["plan.price_set"]),
        ("?entity=broadcast".to_owned(), vec!["broadcast.create"]),
        (format!("?from={today}&to={today}&entity=plan"), vec!["plan.price_set", "plan.deactivate"]),
        (format!("?from={tomorrow}"), vec![]),
        (format!("?to={yesterday}"), vec![]),
        ("?action=nothing.like.this".to_owned(), vec![]),
    ] {
        let page = d.get(&mut b, &format!("/dash/audit{query}")).await;
        page.assert_ok();
        assert_eq!(actions(&page.body), expected, "{query}");
    }
}

#[sqlx::test]
async fn the_audit_log_pages_fifty_at_a_time_keeping_its_filters(pool: PgPool) {
    let d = dash(pool.clone()).await;
    for i in 0..60 {
        record(&pool, &Who::cli(), "test.bulk", "plan", i, json!({"n": i})).await;
    }
    let mut b = d.sign_in("viewer").await;
    let first = d.get(&mut b, "/dash/audit?action=test.bulk").await;
    first.assert_ok();
    assert_eq!(rows(&first.body).len(), 50);
    let next = regex::Regex::new(r#"href="(/dash/audit\?[^"]*cursor=[^"]+)""#).unwrap();
    let href = next.captures(&first.body).expect("a next page")[1].replace("&amp;", "&");
    assert!(href.contains("action=test.bulk"), "{href}");
    let second = d.get(&mut b, &href).await;
    second.assert_ok();
    assert_eq!(rows(&second.body).len(), 10);
    assert!(!next.is_match(&second.body), "the last page");
}

#[sqlx::test]
async fn a_bad_audit_filter_is_refused_naming_the_field(pool: PgPool) {
    let d = dash(pool).await;
    let mut b = d.sign_in("editor").await;
    let long = "x".repeat(201);
    for (query, field) in [
        ("actor_kind=robot".to_owned(), "actor_kind"),
        ("from=2024-13-01".to_owned(), "from"),
        ("to=yesterday".to_owned(), "to"),
        ("from=2030-01-02&to=2030-01-01".to_owned(), "to"),
        (format!("action={long}"), "action"),
        ("cursor=junk".to_owned(), "cursor"),
    ] {
        let page = d.get(&mut b, &format!("/dash/audit?{query}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(page.body.contains(&format!("{field}:")), "{query}: {field} named");
    }
}
