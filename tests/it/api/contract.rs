//! The contract: the OpenAPI document (valid, and exactly the routes served), problem documents for every kind
//! of bad request, and authentication on every route but sign-in.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{api, assert_problem};
use crate::helpers::{manifest_dir, tools_required};

/// (METHOD, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// (METHOD, path) of every `#[utoipa::path(...)]` in src/http/api: what the router serves (routes are only
/// added through `routes!`, which reads these).
fn handlers_in_source() -> BTreeSet<(String, String)> {
    let re = regex::Regex::new(r#"#\[utoipa::path\(\s*(get|post|put|patch|delete),\s*path\s*=\s*"([^"]+)""#).unwrap();
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(manifest_dir().join("src/http/api")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(".route("),
                "{}: routes are added with routes!() only, so they are documented",
                path.display()
            );
            for c in re.captures_iter(&text) {
                found.insert((c[1].to_uppercase(), c[2].to_owned()));
            }
        }
    }
    found
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_openapi_document_is_valid_and_lists_every_route(pool: PgPool) {
    let api = api(pool).await;
    let doc = api.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc.body["openapi"]);

    // an independent validator (scripts/dev test installs it)
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.body.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", std::env::var("VPNSHOP_PYTHONPATH").unwrap_or_default())
        .args(["-c", "import json,sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')"])
        .arg(file.path())
        .output();
    match out {
        Ok(out) if out.status.success() => assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid"),
        Ok(out) if !tools_required() && String::from_utf8_lossy(&out.stderr).contains("No module named") => {
            eprintln!("skipping the OpenAPI validator: not installed (scripts/dev test installs it)")
        }
        Ok(out) => panic!("the OpenAPI document is not valid:\n{}", String::from_utf8_lossy(&out.stderr)),
        Err(e) if !tools_required() => eprintln!("skipping the OpenAPI validator: {e}"),
        Err(e) => panic!("python3 is required: {e}"),
    }

    // the document and the handlers are the same set, and it has what the issue asks for
    let documented = operations(&doc.body);
    assert_eq!(documented, handlers_in_source(), "documented vs served");
    for needed in [("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh"), ("GET", "/api/v1/openapi.json")] {
        assert!(documented.contains(&(needed.0.to_owned(), needed.1.to_owned())), "{needed:?} missing");
    }
    // every schema a response or body refers to exists
    let text = doc.body.to_string();
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    for r in regex::Regex::new(r##""#/components/schemas/([^"]+)""##).unwrap().captures_iter(&text) {
        assert!(schemas.contains_key(&r[1]), "schema {} is referenced but not defined", &r[1]);
    }

    // every documented route is served: without credentials each answers 401 (or, for the open ones, not 404/405)
    let open: BTreeSet<&str> = ["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/openapi.json"].into();
    let param = regex::Regex::new(r"\{[^}]+\}").unwrap();
    for (method, path) in &documented {
        let concrete = param.replace_all(path, "1").into_owned();
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
        let a = api.call(m, &concrete, None, body).await;
        if open.contains(path.as_str()) {
            assert!(![404, 405, 500].contains(&a.status.as_u16()), "{method} {concrete}: {a:?}");
        } else {
            assert_problem(&a, 401, None);
        }
        // an operation with a security requirement says so
        let op = &doc.body["paths"][path][method.to_lowercase()];
        let declared_open =
            op["security"].as_array().is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty())));
        assert_eq!(declared_open, open.contains(path.as_str()), "{method} {path} security");
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn bad_requests_are_problem_documents(pool: PgPool) {
    let api = api(pool).await;
    let audit = api.count("audit_log").await;
    let keys = api.count("api_keys").await;

    let unknown = api.get("/api/v1/no-such-thing").await;
    assert_problem(&unknown, 404, None);
    let wrong_method = api.call(Method::PUT, "/api/v1/auth/me", Some(&api.write_key), None).await;
    assert_problem(&wrong_method, 405, None);

    let post = |path: &'static str, content_type: &'static str, body: &'static str| {
        api.app
            .http
            .post(api.app.url(path))
            .bearer_auth(&api.owner)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (ct, body, status) in [
        ("text/plain", r#"{"name":"x","scope":"read"}"#, 415),
        ("application/json", r#"{"name":"x","scope":"#, 400),
        ("application/json", "not json", 400),
        ("application/json", r#"{"name":"x","scope":"admin"}"#, 422),
        ("application/json", r#"{"name":"x","scope":"read","extra":1}"#, 422),
        ("application/json", r#"{"name":"","scope":"read"}"#, 422),
        ("application/json", r#"{"name":"'; DROP TABLE api_keys; --","scope":7}"#, 422),
    ] {
        let res = post("/api/v1/api-keys", ct, body).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{ct} {body}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{ct} {body}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{ct} {body}");
        let problem: Value = res.json().await.unwrap();
        assert!(problem["type"].as_str().unwrap().starts_with("https://vpnshop.dev/problems/"), "{problem}");
    }
    let named = api
        .call(Method::POST, "/api/v1/api-keys", Some(&api.owner), Some(json!({"name": "x", "scope": "admin"})))
        .await;
    assert_problem(&named, 422, Some("scope"));
    let bad_path = api.call(Method::DELETE, "/api/v1/api-keys/abc", Some(&api.owner), None).await;
    assert_problem(&bad_path, 400, Some("id"));
    let huge = api.call(Method::DELETE, "/api/v1/api-keys/99999999999999999999999", Some(&api.owner), None).await;
    assert_problem(&huge, 400, Some("id"));
    let missing = api.call(Method::DELETE, "/api/v1/api-keys/424242", Some(&api.owner), None).await;
    assert_problem(&missing, 404, None);

    // the database keeps no NUL character: refused up front, naming the field, never a 500
    let nul =
        api.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "a\u{0}b", "password": "x"}))).await;
    assert_problem(&nul, 422, Some("username"));
    let nul = api
        .call(Method::POST, "/api/v1/api-keys", Some(&api.owner), Some(json!({"name": "x\u{0}", "scope": "read"})))
        .await;
    assert_problem(&nul, 422, Some("name"));
    for path in ["/api/v1/plans?location=%00", "/api/v1/audit?action=a%00", "/api/v1/subscriptions?location=%00"] {
        assert_problem(&api.get(path).await, 400, None);
    }

    assert_eq!(api.count("api_keys").await, keys, "nothing written");
    assert_eq!(api.count("audit_log").await, audit, "nothing audited");
}
