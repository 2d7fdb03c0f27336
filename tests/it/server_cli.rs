//! `vpnshop server add --trust-host-key`, `server pin-key` and `server test`: the real binary against a real
//! node (our own sshd + Debian's v2ray on loopback), as an operator would run them.

use std::path::Path;
use std::process::{Command, Output};

use sqlx::PgPool;

use crate::helpers::database_url;
use crate::support::{TestNode, node_tools_present};

/// The real binary on the test's database, logging in to nodes with `key`.
pub fn vpnshop(db: &str, key: &Path) -> Command {
    let mut cmd = crate::process::vpnshop(db);
    cmd.env("RUST_LOG", "warn").env("VPNSHOP__PROVISION__SSH_KEY_PATH", key);
    cmd
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs the command and returns its output; panics if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A migrated, seeded database and the `server add` line for `node` (its own config path, restart command
/// and base config), pinning whatever key it presents.
fn add_node(db: &str, node: &TestNode, name: &str) -> Output {
    let seed = run(vpnshop(db, &node.key_path()).args(["catalog", "seed"]));
    assert!(seed.status.success(), "{}", text(&seed));
    // the node runs the isolated base (as setup.sh leaves it), and the shop is given the same
    let base = node.dir().join("base.json");
    std::fs::write(&base, node.isolated_base_config()).unwrap();
    std::fs::write(node.config_path(), node.isolated_base_config()).unwrap();
    let t = node.target();
    run(vpnshop(db, &node.key_path())
        .args(["server", "add", "--name", name, "--location", "de", "--host", "127.0.0.1"])
        .args(["--port", &node.proxy_port.to_string(), "--ssh-port", &node.ssh_port.to_string()])
        .args(["--ssh-user", &t.ssh_user, "--core", "v2ray", "--protocol", &node.protocol.to_string()])
        .args(["--inbound-tag", "proxy", "--api-port", &node.api_port.to_string()])
        .args(["--config-path", &t.config_path, "--restart-command", &t.restart_command])
        .arg("--base-config")
        .arg(&base)
        .arg("--trust-host-key"))
}

async fn pinned(pool: &PgPool, name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT host_key_fingerprint FROM servers WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn server_test(db: &str, node: &TestNode, name: &str) -> (Output, String) {
    let out = run(vpnshop(db, &node.key_path()).args(["server", "test", name]));
    let report = text(&out);
    (out, report)
}

/// The lines of `server test` that start with `label` (`ok`, `FAIL`, `skip`).
fn lines<'a>(report: &'a str, label: &str) -> Vec<&'a str> {
    report.lines().filter(|l| l.split_whitespace().next() == Some(label)).collect()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn server_add_trusting_the_host_key_pins_what_ssh_keygen_shows(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let db = database_url(&pool);
    let add = add_node(&db, &node, "de-1");
    assert!(add.status.success(), "{}", text(&add));
    // node.host_fingerprint is the second field of `ssh-keygen -lf <host key>.pub`
    assert_eq!(pinned(&pool, "de-1").await.as_deref(), Some(node.host_fingerprint.as_str()));
    assert!(
        text(&add).contains(&format!("pinned the host key the node presents: {}", node.host_fingerprint)),
        "{}",
        text(&add)
    );
    assert_eq!(node.logins(), 0, "reading the host key does not log in");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn server_test_says_ok_for_each_check_on_a_healthy_node(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let db = database_url(&pool);
    assert!(add_node(&db, &node, "de-1").status.success());

    let (out, report) = server_test(&db, &node, "de-1");
    assert!(out.status.success(), "{report}");
    let ok = lines(&report, "ok");
    let names: Vec<&str> = ok.iter().map(|l| l[4..].trim_start()).collect();
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
    assert_eq!(ok.len(), expected.len(), "{report}");
    for (line, name) in names.iter().zip(expected) {
        assert!(line.starts_with(name), "checks in order: {name:?} expected, got {line:?}\n{report}");
    }
    assert!(report.contains(&format!("{} is the pinned key", node.host_fingerprint)), "{report}");
    assert!(report.contains("holds 0 users and our base config"), "{report}");
    assert!(report.contains(&format!("v2ray answers on 127.0.0.1:{}", node.api_port)), "{report}");
    assert!(report.trim_end().ends_with("server de-1 is ready"), "{report}");
    assert!(lines(&report, "FAIL").is_empty() && lines(&report, "skip").is_empty(), "{report}");

    // as an operator runs it (no RUST_LOG, the default environment): the report on stdout, nothing else
    let out = run(vpnshop(&db, &node.key_path())
        .env_remove("RUST_LOG")
        .env_remove("VPNSHOP_ENV")
        .args(["server", "test", "de-1"]));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(lines(&stdout, "ok").len(), expected.len(), "{stdout}");
    assert!(stderr.trim().is_empty(), "no log lines among the report: {stderr}");
    assert!(!stdout.contains("DEBUG") && !stdout.contains("INFO"), "{stdout}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_wrong_pinned_key_fails_the_test_in_plain_words_without_logging_in(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let db = database_url(&pool);
    assert!(add_node(&db, &node, "de-1").status.success());
    let wrong = format!("SHA256:{}", "A".repeat(43));
    let pin = run(vpnshop(&db, &node.key_path()).args(["server", "pin-key", "de-1", "--fingerprint", &wrong]));
    assert!(pin.status.success(), "{}", text(&pin));
    assert!(text(&pin).contains(&format!("replaces {}", node.host_fingerprint)), "{}", text(&pin));
    assert_eq!(pinned(&pool, "de-1").await.as_deref(), Some(wrong.as_str()));

    let (out, report) = server_test(&db, &node, "de-1");
    assert_eq!(out.status.code(), Some(1), "{report}");
    let fail = lines(&report, "FAIL");
    assert_eq!(fail.len(), 1, "one failure, the first: {report}");
    assert!(fail[0].contains("host key"), "{report}");
    assert!(fail[0].contains("differs from the pinned one"), "{report}");
    assert!(fail[0].contains(&format!("pinned {wrong}")), "{report}");
    assert!(fail[0].contains(&format!("the node presents {}", node.host_fingerprint)), "{report}");
    assert!(fail[0].contains("Not logging in"), "{report}");
    assert_eq!(lines(&report, "skip").len(), 5, "login, config, API, stats and isolation are skipped: {report}");
    assert!(report.contains("server de-1 is not ready (failed check: host key)"), "{report}");
    assert_eq!(node.logins(), 0, "a node with another key never sees a login:\n{}", node.log("sshd.log"));

    // pinning the right key again makes it pass
    let fix = run(vpnshop(&db, &node.key_path())
        .args(["server", "pin-key", "de-1", "--fingerprint"])
        .arg(&node.host_fingerprint));
    assert!(fix.status.success(), "{}", text(&fix));
    let (out, report) = server_test(&db, &node, "de-1");
    assert!(out.status.success(), "{report}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_stopped_core_fails_the_test_with_the_core_api_not_answering(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let db = database_url(&pool);
    assert!(add_node(&db, &node, "de-1").status.success());
    node.kill_core().await;

    let (out, report) = server_test(&db, &node, "de-1");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(lines(&report, "ok").len(), 5, "sshd, key, login, config and its isolation are fine: {report}");
    let fail = lines(&report, "FAIL");
    // the stopped core also leaves the customers' port closed
    assert_eq!(fail.len(), 2, "{report}");
    assert!(fail[1].contains("inbound port") && fail[1].contains("nothing accepts connections"), "{report}");
    assert!(fail[0].contains("core API"), "{report}");
    assert!(fail[0].contains(&format!("the core API does not answer on 127.0.0.1:{}", node.api_port)), "{report}");
    assert!(fail[0].contains("is v2ray running"), "{report}");
    assert_eq!(lines(&report, "skip").len(), 1, "stats are skipped: {report}");
    assert!(report.contains("(failed check: core API)"), "{report}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_stopped_sshd_fails_the_test_saying_the_node_cannot_be_reached(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let db = database_url(&pool);
    assert!(add_node(&db, &node, "de-1").status.success());
    node.stop_sshd().await;

    let (out, report) = server_test(&db, &node, "de-1");
    assert_eq!(out.status.code(), Some(1), "{report}");
    let fail = lines(&report, "FAIL");
    assert_eq!(fail.len(), 1, "{report}");
    assert!(fail[0].contains("reach sshd"), "{report}");
    assert!(fail[0].contains(&format!("cannot reach the node over SSH at 127.0.0.1:{}", node.ssh_port)), "{report}");
    assert!(fail[0].contains("sshd running"), "{report}");
    assert!(lines(&report, "ok").is_empty(), "{report}");
    assert_eq!(lines(&report, "skip").len(), 7, "{report}");
}

/// `server add --inbound …` (repeated) and `--inbounds FILE`, and `server inbounds`: what is stored, and bad
/// inbounds refused in plain words with nothing written. No node is contacted.
#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn server_add_and_server_inbounds_take_inbound_flags_and_files(pool: PgPool) {
    let db = database_url(&pool);
    // no SSH key: these commands never contact a node
    let shop = || {
        let mut cmd = crate::process::vpnshop(&db);
        cmd.env("RUST_LOG", "warn");
        cmd
    };
    let seed = run(shop().args(["catalog", "seed"]));
    assert!(seed.status.success(), "{}", text(&seed));
    let add = |name: &str, extra: &[&str]| {
        run(shop()
            .args(["server", "add", "--name", name, "--location", "de", "--host", "203.0.113.7"])
            .args(["--host-key", "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"])
            .args(extra))
    };
    let tls = "cert_path=/etc/v2ray/tls/fullchain.pem,key_path=/etc/v2ray/tls/privkey.pem";
    let ws = format!("tag=ws,protocol=vless,transport=ws,security=tls,port=443,path=/ws,sni=de1.example.com,{tls}");
    let out = add("de-1", &["--inbound", "tag=plain,protocol=vmess,port=8443", "--inbound", &ws]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let json: serde_json::Value = sqlx::query_scalar("SELECT inbounds FROM servers WHERE name = $1")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap();
            json.as_array().unwrap().iter().map(|i| i["tag"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(stored("de-1").await, ["plain", "ws"]);

    // plain VLESS: refused, naming the inbound and the field; nothing stored
    let out = add("de-2", &["--inbound", "tag=v,protocol=vless,port=443"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("inbounds[0].security"), "{}", text(&out));
    assert!(text(&out).contains("TLS or REALITY"), "{}", text(&out));
    let out = add("de-2", &["--inbound", "tag=v,protocol=vmess,port=443,colour=red"]);
    assert!(!out.status.success() && text(&out).contains("colour"), "{}", text(&out));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM servers").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1, "refused nodes are not stored");

    // a TOML file replaces de-1's inbounds and asks for a sync
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inbounds.toml");
    std::fs::write(
        &file,
        "[[inbound]]\ntag = \"vmess-ws\"\nprotocol = \"vmess\"\ntransport = \"ws\"\nsecurity = \"tls\"\nport = 2053\n\
             path = \"/v\"\ncert_path = \"/etc/v2ray/tls/fullchain.pem\"\nkey_path = \"/etc/v2ray/tls/privkey.pem\"\n\
             cdn = true\npublic_host = \"cdn.example.com\"\npublic_port = 443\n",
    )
    .unwrap();
    let out = run(shop().args(["server", "inbounds", "de-1", "--inbounds"]).arg(&file));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("VMess WS TLS CDN"), "{}", text(&out));
    assert_eq!(stored("de-1").await, ["vmess-ws"]);
    let reconcile: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'node.reconcile'").fetch_one(&pool).await.unwrap();
    assert_eq!(reconcile, 1, "the change asks for a sync at once");
    // a broken file changes nothing
    std::fs::write(&file, "[[inbound]]\ntag = 7\n").unwrap();
    let out = run(shop().args(["server", "inbounds", "de-1", "--inbounds"]).arg(&file));
    assert!(!out.status.success() && text(&out).contains("inbounds.toml"), "{}", text(&out));
    assert_eq!(stored("de-1").await, ["vmess-ws"]);
}
