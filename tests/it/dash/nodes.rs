//! The nodes pages (`/dash/nodes`): the list and a node render for every role in every language; editors add a
//! node through the form (the checks of `server add` and the API, audited), enable and disable it and run the
//! step-by-step test (against a real sshd + v2ray on loopback when those are installed); viewers, forged forms,
//! bad input and unknown ids change nothing.

use reqwest::StatusCode;
use sqlx::PgPool;
use vpnshop::services::servers;

use super::{Dash, dash, dash_with};
use crate::helpers::server_input;
use crate::support::{TestNode, node_tools_present};

/// What a change could have touched: servers (name, enabled) and server audit entries.
async fn snapshot(pool: &PgPool) -> (Vec<(String, bool)>, i64) {
    let servers = sqlx::query_as("SELECT name, enabled FROM servers ORDER BY id").fetch_all(pool).await.unwrap();
    let audited =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE entity = 'server'").fetch_one(pool).await.unwrap();
    (servers, audited)
}

async fn seeded(pool: &PgPool) -> i64 {
    servers::add(pool, &server_input("de-1", "de"), servers::Actor::CLI).await.unwrap().id
}

/// The add form's fields for a node nobody contacts.
fn form(name: &str) -> Vec<(&str, &str)> {
    vec![
        ("name", name),
        ("location", "de"),
        ("public_host", "de-9.example.com"),
        ("public_port", "8443"),
        ("capacity", "250"),
        ("host_key", "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"),
        ("ssh_host", ""),
        ("ssh_port", "2222"),
        ("ssh_user", "vpnshop"),
        ("core", "xray"),
        ("protocol", "vmess"),
        ("inbound_tag", "proxy"),
        ("api_port", "10085"),
        ("config_path", ""),
        ("restart_command", "sudo -n systemctl restart xray"),
        ("base_config", ""),
    ]
}

fn with<'a>(mut fields: Vec<(&'a str, &'a str)>, name: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    fields.retain(|(k, _)| *k != name);
    fields.push((name, value));
    fields
}

async fn audited(pool: &PgPool, action: &str) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT actor_kind, actor_id, entity_id FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn admin_id(pool: &PgPool, name: &str) -> String {
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM admins WHERE username = $1").bind(name).fetch_one(pool).await.unwrap();
    id.to_string()
}

#[sqlx::test]
async fn the_node_pages_render_for_every_role_in_every_language_and_viewers_see_no_change_forms(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let id = seeded(&pool).await;
    sqlx::query(
        "UPDATE servers SET health = 'down', health_detail = 'connection refused', last_seen_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            let mut paths = vec!["/dash/nodes".to_owned(), format!("/dash/nodes/{id}")];
            if who != "viewer" {
                paths.push("/dash/nodes/new".to_owned());
            }
            for path in &paths {
                let page = d.get(&mut b, path).await;
                page.assert_ok();
                let body = &page.body;
                assert_eq!(body.contains(r#"dir="rtl""#), lang == "fa", "{who}/{lang} {path}");
                assert!(!body.contains(" style=") && !body.contains("<script>"), "{who}/{lang} {path}");
                assert!(!body.contains("dash-nodes-"), "{who}/{lang} {path}: every key has a text");
                let changes = body.contains(&format!("/dash/nodes/{id}/disable")) || body.contains("/dash/nodes/new");
                assert_eq!(changes, who != "viewer" && !path.ends_with("/new"), "{who}/{lang} {path}: change forms");
            }
            let list = d.get(&mut b, "/dash/nodes").await;
            assert!(list.body.contains("connection refused"), "{who}/{lang}: the last error is shown");
        }
        let new = d.get(&mut b, "/dash/nodes/new").await;
        assert_eq!(new.status, if who == "viewer" { StatusCode::FORBIDDEN } else { StatusCode::OK }, "{who}");
    }
    let mut b = d.sign_in("viewer").await;
    let list = d.get(&mut b, "/dash/nodes").await;
    for text in ["de-1", "de-1.example.com:443", "v2ray / vmess", "down", "0 of 100 clients (0%)", "0 GB"] {
        assert!(list.body.contains(text), "{text}\n{}", list.body);
    }
}

#[sqlx::test]
async fn an_editor_adds_a_node_through_the_form_and_it_is_audited(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/nodes/new").await.assert_ok();
    let done = d.post(&mut b, "/dash/nodes", &form("de-9")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let id: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE name = 'de-9'").fetch_one(&pool).await.unwrap();
    assert_eq!(done.location(), Some(format!("/dash/nodes/{id}?done=node-added").as_str()));
    let s = servers::view(&pool, id).await.unwrap();
    assert_eq!(
        (s.public_host.as_str(), s.public_port, s.ssh_host.as_str(), s.ssh_port),
        ("de-9.example.com", 8443, "de-9.example.com", 2222)
    );
    assert_eq!((s.core.as_str(), s.protocol.as_str(), s.capacity), ("xray", "vmess", 250));
    assert_eq!(s.config_path, "/etc/xray/config.json");
    assert_eq!(s.restart_command.as_deref(), Some("sudo -n systemctl restart xray"));
    assert!(s.enabled);
    assert_eq!(
        audited(&pool, "server.add").await,
        vec![("admin".into(), Some(admin_id(&pool, "editor").await), Some(id.to_string()))]
    );
    let shown = d.get(&mut b, &format!("/dash/nodes/{id}?done=node-added")).await;
    shown.assert_ok();
    assert!(
        shown.body.contains("The node was added.") && shown.body.contains("de-9.example.com:8443"),
        "{}",
        shown.body
    );

    // the same name again: 409, the form kept with the error beside the name
    let again = d.post(&mut b, "/dash/nodes", &form("de-9")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains(r#"id="f-name" type="text" name="name" value="de-9""#), "{}", again.body);
    assert!(again.body.contains(r#"aria-invalid="true""#) && again.body.contains("already exists"), "{}", again.body);
    assert_eq!(audited(&pool, "server.add").await.len(), 1);
}

#[sqlx::test]
async fn bad_input_re_renders_the_form_naming_the_field_and_writes_nothing(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut b = d.sign_in("owner").await;
    d.get(&mut b, "/dash/nodes/new").await.assert_ok();
    let before = snapshot(&pool).await;
    let cases = [
        ("name", "", "Name: required"),
        ("name", "Bad Name", "must be 1-63 lowercase letters"),
        ("location", "atlantis", "unknown location"),
        ("public_host", "not a host!", "Public host: public host"),
        ("public_port", "70000", "Public port: a port is a number from 1 to 65535"),
        ("capacity", "0", "Capacity (clients): a positive whole number"),
        ("host_key", "SHA256:short", "SSH host key fingerprint:"),
        ("ssh_port", "x", "SSH port: a port is a number"),
        ("ssh_user", "root; rm", "SSH user:"),
        ("core", "wireguard", "Core: not one of the choices"),
        ("config_path", "relative/config.json", "config path must be absolute"),
        ("restart_command", "rm -rf /", "Restart command:"),
        ("base_config", "{", "Base config (JSON): not valid JSON"),
        ("base_config", r#"{"inbounds": []}"#, "base config:"),
    ];
    for (field, value, message) in cases {
        let page = d.post(&mut b, "/dash/nodes", &with(form("de-9"), field, value)).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={value}: {}", page.body);
        assert!(
            page.body.contains(&format!(r##"<a href="#f-{field}">"##)),
            "{field}: the summary links the field\n{}",
            page.body
        );
        assert!(page.body.contains(message), "{field}={value}: {message}\n{}", page.body);
        let input =
            regex::Regex::new(&format!(r#"<(input|select|textarea) id="f-{field}"[^>]*aria-invalid="true""#)).unwrap();
        assert!(input.is_match(&page.body), "{field}: marked invalid\n{}", page.body);
        if field != "name" {
            assert!(page.body.contains(r#"value="de-9""#), "{field}: the operator's values are kept");
        }
    }
    // a form that cannot be read at all is a 422 page too
    let nul = d.post(&mut b, "/dash/nodes", &[("name", "a\0b")]).await;
    assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(snapshot(&pool).await, before, "nothing was written");
}

#[sqlx::test]
async fn enabling_and_disabling_change_the_node_and_are_audited(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let id = seeded(&pool).await;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, &format!("/dash/nodes/{id}")).await.assert_ok();
    let off = d.post(&mut b, &format!("/dash/nodes/{id}/disable"), &[("back", "list")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    assert_eq!(off.location(), Some("/dash/nodes?done=node-disabled"));
    assert!(!servers::view(&pool, id).await.unwrap().enabled);
    let on = d.post(&mut b, &format!("/dash/nodes/{id}/enable"), &[]).await;
    assert_eq!(on.location(), Some(format!("/dash/nodes/{id}?done=node-enabled").as_str()));
    assert!(servers::view(&pool, id).await.unwrap().enabled);
    let editor = Some(admin_id(&pool, "editor").await);
    for action in ["server.disable", "server.enable"] {
        assert_eq!(
            audited(&pool, action).await,
            vec![("admin".into(), editor.clone(), Some(id.to_string()))],
            "{action}"
        );
    }
}

/// Every change a node page offers.
fn changes(id: i64) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        ("/dash/nodes".to_owned(), form("de-9")),
        (format!("/dash/nodes/{id}/disable"), vec![]),
        (format!("/dash/nodes/{id}/enable"), vec![]),
        (format!("/dash/nodes/{id}/test"), vec![]),
    ]
}

#[sqlx::test]
async fn viewers_and_forged_forms_change_nothing(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let id = seeded(&pool).await;
    sqlx::query("UPDATE servers SET enabled = FALSE WHERE id = $1").bind(id).execute(&pool).await.unwrap();
    let before = snapshot(&pool).await;
    let mut viewer = d.sign_in("viewer").await;
    let mut editor = d.sign_in("editor").await;
    for (path, fields) in changes(id) {
        let page = d.post(&mut viewer, &path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "viewer {path}");
        assert!(page.body.contains("viewer role"), "viewer {path}: {}", page.body);
        let missing = d.post_raw(&mut editor, &path, &fields).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "no token {path}");
        let forged = d.post_raw(&mut editor, &path, &[fields.as_slice(), &[("csrf", "forged-token")]].concat()).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "forged token {path}");
    }
    assert_eq!(snapshot(&pool).await, before, "nothing changed");
}

#[sqlx::test]
async fn an_unknown_node_is_a_404_page_and_a_malformed_id_names_the_field(pool: PgPool) {
    let d = dash(pool).await;
    let mut b = d.sign_in("owner").await;
    assert_eq!(d.get(&mut b, "/dash/nodes/999999").await.status, StatusCode::NOT_FOUND);
    for action in ["enable", "disable", "test"] {
        let page = d.post(&mut b, &format!("/dash/nodes/999999/{action}"), &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}: {}", page.body);
    }
    let bad = d.get(&mut b, "/dash/nodes/abc").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id: not a node id"), "{}", bad.body);
    let cursor = d.get(&mut b, "/dash/nodes?cursor=junk").await;
    assert_eq!(cursor.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(cursor.body.contains("cursor:"), "{}", cursor.body);
}

/// The checks of a test report page, in order: (check, outcome).
fn checks(body: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(r#"<li data-check="([^"]+)" data-outcome="([^"]+)">"#).unwrap();
    re.captures_iter(body).map(|c| (c[1].to_owned(), c[2].to_owned())).collect()
}

#[sqlx::test]
async fn testing_an_unreachable_node_shows_the_failed_step_and_skips_the_rest(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/nodes/new").await.assert_ok();
    let fields = with(with(form("de-9"), "ssh_host", "127.0.0.1"), "ssh_port", &port);
    assert_eq!(d.post(&mut b, "/dash/nodes", &fields).await.status, StatusCode::SEE_OTHER);
    let id: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE name = 'de-9'").fetch_one(&pool).await.unwrap();
    let before = snapshot(&pool).await;
    let page = d.post(&mut b, &format!("/dash/nodes/{id}/test"), &[]).await;
    page.assert_ok();
    let found = checks(&page.body);
    assert_eq!(found.len(), 8, "{}", page.body);
    assert_eq!(found[0], ("reach sshd".to_owned(), "failed".to_owned()));
    assert!(found[1..].iter().all(|(_, o)| o == "skipped"), "{found:?}");
    assert!(page.body.contains("A check failed: Reach sshd."), "{}", page.body);
    assert_eq!(snapshot(&pool).await, before, "a test changes nothing");
}

async fn add_real_node(d: &Dash, b: &mut super::Browser, node: &TestNode) {
    // the node runs the isolated base config (as setup.sh leaves it), and the shop is given the same
    std::fs::write(node.config_path(), node.isolated_base_config()).unwrap();
    let t = node.target();
    let (proxy, ssh, api) = (node.proxy_port.to_string(), node.ssh_port.to_string(), node.api_port.to_string());
    let (config, base, protocol) = (t.config_path.clone(), node.isolated_base_config(), node.protocol.to_string());
    let fields = [
        ("name", "de-1"),
        ("location", "de"),
        ("public_host", "127.0.0.1"),
        ("public_port", proxy.as_str()),
        ("host_key", node.host_fingerprint.as_str()),
        ("ssh_port", ssh.as_str()),
        ("ssh_user", t.ssh_user.as_str()),
        ("core", "v2ray"),
        ("protocol", protocol.as_str()),
        ("inbound_tag", "proxy"),
        ("api_port", api.as_str()),
        ("config_path", config.as_str()),
        ("base_config", base.as_str()),
    ];
    let done = d.post(b, "/dash/nodes", &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
}

#[sqlx::test]
async fn a_real_node_added_through_the_form_passes_its_test_step_by_step(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let d = dash_with(pool.clone(), |s| s.provision.ssh_key_path = Some(node.key_path())).await;
    let mut b = d.sign_in("editor").await;
    d.get(&mut b, "/dash/nodes/new").await.assert_ok();
    add_real_node(&d, &mut b, &node).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE name = 'de-1'").fetch_one(&pool).await.unwrap();

    let page = d.post(&mut b, &format!("/dash/nodes/{id}/test"), &[]).await;
    page.assert_ok();
    let expected = [
        "reach sshd",
        "host key",
        "ssh login",
        "config file",
        "core API",
        "traffic stats",
        "isolation",
        "inbound port",
    ];
    let found = checks(&page.body);
    assert_eq!(found.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), expected, "{}", page.body);
    assert!(found.iter().all(|(_, o)| o == "ok"), "{found:?}\n{}", page.body);
    assert!(page.body.contains("Every check passed"), "{}", page.body);
    assert!(page.body.contains(&format!("{} is the pinned key", node.host_fingerprint)), "{}", page.body);

    // in Persian the steps are named in Persian, with their outcome
    b.set_cookie("vpnshop_lang", "fa");
    let fa = d.post(&mut b, &format!("/dash/nodes/{id}/test"), &[]).await;
    fa.assert_ok();
    assert!(
        fa.body.contains("دسترسی به sshd") && fa.body.contains(r#"<span class="badge ok">درست</span>"#),
        "{}",
        fa.body
    );
}
