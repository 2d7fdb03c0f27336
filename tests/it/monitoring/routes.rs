//! Route labels: the matched route, never the path (feed tokens and ids live in paths, and every new label value
//! is a new series forever); unknown paths and methods collapse to one value each.

use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn requests_are_labelled_by_their_matched_route_never_by_their_path(pool: PgPool) {
    let app = spawn_app(pool).await;
    let token = format!("tok{}", uuid::Uuid::new_v4().simple());
    let stray = format!("stray{}", uuid::Uuid::new_v4().simple());
    let odd_method = reqwest::Method::from_bytes(b"PROPFINDX").unwrap();
    for (method, path) in [
        (reqwest::Method::GET, format!("/sub/{token}")),
        (reqwest::Method::GET, format!("/{stray}/deeper")),
        (reqwest::Method::GET, format!("/dash/nodes/{stray}")),
        (odd_method, "/healthz".to_owned()),
    ] {
        let res = app.http.request(method, app.url(&path)).send().await.unwrap();
        assert!(!res.status().is_server_error(), "{path}: {}", res.status());
    }
    let text = app
        .http
        .get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests: Vec<&str> = text.lines().filter(|l| l.starts_with("vpnshop_http_requests_total{")).collect();
    assert!(!text.contains(&token) && !text.contains(&stray), "a path reached a label:\n{}", requests.join("\n"));
    assert!(!text.contains("PROPFINDX"), "a client's method reached a label");
    let has = |route: &str, method: &str| {
        requests
            .iter()
            .any(|l| l.contains(&format!("route=\"{route}\"")) && l.contains(&format!("method=\"{method}\"")))
    };
    assert!(has("/sub/{token}", "GET"), "the feed counts as its route:\n{}", requests.join("\n"));
    assert!(has("unmatched", "GET"), "unknown paths count as one route:\n{}", requests.join("\n"));
    assert!(has("/dash/nodes/{id}", "GET"), "{}", requests.join("\n"));
    assert!(has("/healthz", "other"), "an unknown method counts as `other`:\n{}", requests.join("\n"));
}
