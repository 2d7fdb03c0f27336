//! Subscriptions in the dashboard: the listing and its filters, one subscription in full with its links (editors
//! only: they are working VPN access), and the operator's actions through the same service as the API — each
//! changing the database and writing the audit log for editors, refused for viewers, forged forms and bad input.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{Browser, Dash, dash};
use crate::api::money::active_subscription;

const GIB: i64 = 1 << 30;

/// An action, its form and the field a 422 must name.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// What the actions could change, for "nothing written".
async fn state_of(pool: &PgPool, id: i64) -> (String, Option<chrono::DateTime<chrono::Utc>>, Option<i64>, String, i64) {
    let (status, expires, cap, token): (String, Option<chrono::DateTime<chrono::Utc>>, Option<i64>, String) =
        sqlx::query_as("SELECT status, expires_at, data_cap_bytes, token FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE entity = 'subscription'")
        .fetch_one(pool)
        .await
        .unwrap();
    (status, expires, cap, token, audit)
}

async fn audited(pool: &PgPool, id: i64, action: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE entity = 'subscription' AND entity_id = $1 AND action = $2
            AND actor_kind = 'admin'",
    )
    .bind(id.to_string())
    .bind(action)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn link(id: i64) -> String {
    format!("href=\"/dash/subscriptions/{id}\"")
}

async fn page_of(d: &Dash, who: &'static str, path: &str) -> (Browser, super::Page) {
    let mut b = d.sign_in(who).await;
    let page = d.get(&mut b, path).await;
    (b, page)
}

#[sqlx::test]
async fn the_pages_render_for_every_role_in_every_language_and_only_editors_see_links_and_actions(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (id, _) = active_subscription(&pool, 5_001, "active", Some(10 * GIB)).await;
    let token: String =
        sqlx::query_scalar("SELECT token FROM subscriptions WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap();
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            for path in ["/dash/subscriptions".to_owned(), format!("/dash/subscriptions/{id}")] {
                let page = d.get(&mut b, &path).await;
                page.assert_ok();
                assert_eq!(page.body.contains("dir=\"rtl\""), lang == "fa", "{who} {lang} {path}");
                assert!(!page.body.contains(" style=") && !page.body.contains("<script>"), "{path}");
                assert!(page.body.len() < 100_000, "{path}: {} bytes", page.body.len());
            }
            let list = d.get(&mut b, "/dash/subscriptions").await;
            assert!(list.body.contains(&link(id)), "{who} {lang}: the subscription is listed");
        }
        b.set_cookie("vpnshop_lang", "en");
        let detail = d.get(&mut b, &format!("/dash/subscriptions/{id}")).await;
        let body = &detail.body;
        assert!(body.contains("10 GB"), "the cap: {body}");
        let editor = who != "viewer";
        assert_eq!(body.contains(&token), editor, "{who}: the feed URL");
        assert_eq!(body.contains("vless://") || body.contains("vmess://"), editor, "{who}: the device links");
        assert_eq!(body.contains("<svg"), editor, "{who}: the QR codes");
        assert_eq!(body.contains(&format!("/dash/subscriptions/{id}/extend")), editor, "{who}: the actions");
        assert_eq!(body.contains(">hidden<"), !editor, "{who}: viewers read 'hidden'");
    }
}

#[sqlx::test]
async fn filters_narrow_the_list_by_status_node_location_and_ending_soon(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (running, node) = active_subscription(&pool, 5_101, "active", None).await;
    let (soon, _) = active_subscription(&pool, 5_102, "active", None).await;
    let (expired, _) = active_subscription(&pool, 5_103, "expired", None).await;
    sqlx::query("UPDATE subscriptions SET expires_at = now() + interval '1 day' WHERE id = $1")
        .bind(soon)
        .execute(&pool)
        .await
        .unwrap();
    let mut b = d.sign_in("viewer").await;
    let listed =
        |body: &str| [running, soon, expired].into_iter().filter(|id| body.contains(&link(*id))).collect::<Vec<_>>();
    let all = d.get(&mut b, "/dash/subscriptions").await;
    assert_eq!(listed(&all.body).len(), 3);
    assert_eq!(listed(&d.get(&mut b, "/dash/subscriptions?status=expired").await.body), vec![expired]);
    assert_eq!(listed(&d.get(&mut b, "/dash/subscriptions?expiring=1").await.body), vec![soon]);
    assert_eq!(listed(&d.get(&mut b, &format!("/dash/subscriptions?node={node}")).await.body), vec![running]);
    assert_eq!(listed(&d.get(&mut b, "/dash/subscriptions?location=de&status=active").await.body).len(), 2);
    assert!(listed(&d.get(&mut b, "/dash/subscriptions?location=fr").await.body).is_empty());
    for (query, field) in [("status=bogus", "status"), ("node=abc", "node"), ("cursor=zzz", "cursor")] {
        let page = d.get(&mut b, &format!("/dash/subscriptions?{query}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(page.body.contains(field), "{query}: {}", page.body);
    }
}

#[sqlx::test]
async fn an_editor_extends_adds_data_resets_a_device_rotates_the_feed_and_revokes_each_audited(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (id, _) = active_subscription(&pool, 5_201, "active", Some(10 * GIB)).await;
    let (_, expires, cap, token, _) = state_of(&pool, id).await;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, &format!("/dash/subscriptions/{id}")).await.assert_ok();
    let base = format!("/dash/subscriptions/{id}");

    let page = d.post(&mut b, &format!("{base}/extend"), &[("days", "5")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some(format!("{base}?done=subs-extended").as_str()));
    let (_, extended, ..) = state_of(&pool, id).await;
    assert_eq!(extended.unwrap() - expires.unwrap(), chrono::Duration::days(5));
    assert_eq!(audited(&pool, id, "subscription.extend").await, 1);
    let shown = d.get(&mut b, page.location().unwrap()).await;
    assert!(shown.body.contains("Extended."), "the flash message");

    let page = d.post(&mut b, &format!("{base}/add-data"), &[("gb", "2.5")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(state_of(&pool, id).await.2, Some(cap.unwrap() + 5 * GIB / 2));
    assert_eq!(audited(&pool, id, "subscription.add_data").await, 1);

    let uuid = |seat: i32| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT uuid FROM clients WHERE subscription_id = $1 AND seat = $2 AND desired = 'present'",
            )
            .bind(id)
            .bind(seat)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let before = uuid(1).await;
    let page = d.post(&mut b, &format!("{base}/reset-seat"), &[("seat", "1")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_ne!(uuid(1).await, before, "the device has a new client");
    assert_eq!(audited(&pool, id, "subscription.reset_seat").await, 1);

    let token_now = state_of(&pool, id).await.3;
    let page = d.post(&mut b, &format!("{base}/rotate-url"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let rotated = state_of(&pool, id).await.3;
    assert!(rotated != token_now && rotated != token);
    assert_eq!(audited(&pool, id, "subscription.rotate_feed").await, 1);

    let page = d.post(&mut b, &format!("{base}/revoke"), &[("reason", "abuse report")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(state_of(&pool, id).await.0, "revoked");
    assert_eq!(audited(&pool, id, "subscription.revoke").await, 1);
    let again = d.post(&mut b, &format!("{base}/revoke"), &[("reason", "twice")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "revoked already");
}

#[sqlx::test]
async fn a_viewer_and_forged_or_missing_csrf_tokens_change_nothing(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (id, _) = active_subscription(&pool, 5_301, "active", Some(10 * GIB)).await;
    let before = state_of(&pool, id).await;
    let base = format!("/dash/subscriptions/{id}");
    let mut viewer = d.sign_in("viewer").await;
    for (action, field, value) in [
        ("extend", "days", "5"),
        ("add-data", "gb", "1"),
        ("reset-seat", "seat", "1"),
        ("rotate-url", "x", ""),
        ("revoke", "reason", "x"),
    ] {
        let page = d.post(&mut viewer, &format!("{base}/{action}"), &[(field, value)]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "viewer {action}");
    }
    let mut editor = d.sign_in("editor").await;
    let missing = d.post_raw(&mut editor, &format!("{base}/extend"), &[("days", "5")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let forged = d.post_raw(&mut editor, &format!("{base}/extend"), &[("days", "5"), ("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let borrowed = viewer.csrf.clone();
    let other = d.post_raw(&mut editor, &format!("{base}/add-data"), &[("gb", "1"), ("csrf", &borrowed)]).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "another session's token");
    assert_eq!(state_of(&pool, id).await, before, "nothing changed");
}

#[sqlx::test]
async fn bad_input_is_a_422_naming_the_field_and_writes_nothing_and_unknown_ids_are_404(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (id, _) = active_subscription(&pool, 5_401, "active", Some(10 * GIB)).await;
    let before = state_of(&pool, id).await;
    let base = format!("/dash/subscriptions/{id}");
    let mut b = d.sign_in("owner").await;
    let cases: &[Case] = &[
        ("extend", &[("days", "0")], "days"),
        ("extend", &[("days", "-3")], "days"),
        ("extend", &[("days", "3651")], "days"),
        ("extend", &[("days", "99999999999999999999999")], "days"),
        ("extend", &[("days", "ten")], "days"),
        ("extend", &[], "days"),
        ("add-data", &[("gb", "lots")], "gb"),
        ("add-data", &[("gb", "0")], "gb"),
        ("add-data", &[("gb", "-1")], "gb"),
        ("add-data", &[("gb", "1e9")], "gb"),
        ("add-data", &[("gb", "999999999999")], "gb"),
        ("reset-seat", &[("seat", "first")], "seat"),
        ("reset-seat", &[("seat", "0")], "seat"),
        ("revoke", &[("reason", "   ")], "reason"),
    ];
    for (action, form, field) in cases {
        let page = d.post(&mut b, &format!("{base}/{action}"), form).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{action} {form:?}: {}", page.body);
        assert!(page.body.contains(&format!("{field}:")), "{action} {form:?} names {field}: {}", page.body);
    }
    assert_eq!(state_of(&pool, id).await, before, "nothing written");

    assert_eq!(d.get(&mut b, "/dash/subscriptions/999999").await.status, StatusCode::NOT_FOUND);
    let unknown = d.post(&mut b, "/dash/subscriptions/999999/extend", &[("days", "5")]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let malformed = d.get(&mut b, "/dash/subscriptions/abc").await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(malformed.body.contains("id:"), "{}", malformed.body);
    let (_, page) = page_of(&d, "viewer", "/dash/subscriptions/999999").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}
