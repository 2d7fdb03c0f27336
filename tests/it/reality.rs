//! REALITY for real, where an Xray binary exists. Xray is not packaged in Debian, so CI has none and this test
//! says so and stops; the REALITY inbound and links are checked against Xray's documented config by the unit
//! tests (src/provision/render_tests.rs, links_tests.rs, src/domain/inbound_tests.rs). With Xray (on PATH, or
//! `VPNSHOP_XRAY=/path/to/xray`): a key pair from `xray x25519`, the private key only in a file (put into the
//! config the way a node's write step does), a local TLS 1.3 server as the REALITY `dest`, our rendered server
//! config run by `xray run`, and an Xray client built from our `vless://…security=reality…` link fetching a page.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use vpnshop::domain::inbound::{InboundSpec, RealitySpec, Security};
use vpnshop::domain::server::{Core, Protocol};
use vpnshop::provision::node::NodeUser;
use vpnshop::provision::render::{self, ClientInbound, NODE_FILE_PREFIX, NodeParams};
use vpnshop::provision::{isolation, links};

use crate::support::{Origin, TestCa, free_port, wait_for_port};

/// The Xray binary to use, if there is one.
fn xray() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("VPNSHOP_XRAY") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("sh").args(["-c", "command -v xray"]).output().ok()?;
    let text = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    (found.status.success() && !text.is_empty()).then(|| PathBuf::from(text))
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Running {
    Running(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn"))
}

/// `xray x25519` → (private, public); both the old ("Private key:/Public key:") and the new
/// ("PrivateKey:/Password:") output.
fn key_pair(xray: &PathBuf) -> (String, String) {
    let out = Command::new(xray).arg("x25519").output().expect("xray x25519");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = |names: &[&str]| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                names.contains(&k.trim()).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {names:?} in `xray x25519` output: {text}"))
    };
    (value(&["Private key", "PrivateKey"]), value(&["Public key", "Password", "PublicKey"]))
}

#[tokio::test]
async fn a_reality_link_carries_a_client_through_a_real_xray() {
    let Some(xray) = xray() else {
        eprintln!(
            "SKIP a_reality_link_carries_a_client_through_a_real_xray: no `xray` binary. Xray is not packaged in \
             Debian, so REALITY runs for real only where one is installed (on PATH or VPNSHOP_XRAY); the REALITY \
             config and links are checked against Xray's documented shapes by the unit tests."
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(&xray);
    let key_file = dir.path().join("reality.key");
    std::fs::write(&key_file, format!("{private}\n")).unwrap();

    // the REALITY dest: a real TLS 1.3 server on loopback
    let ca = TestCa::new("node.test", 2);
    let dest_port = free_port();
    let _dest = spawn(
        Command::new("openssl")
            .args(["s_server", "-tls1_3", "-www", "-accept"])
            .arg(dest_port.to_string())
            .arg("-cert")
            .arg(ca.cert())
            .arg("-key")
            .arg(ca.key()),
    );
    wait_for_port(dest_port, Duration::from_secs(10)).await.expect("the dest TLS server");

    let origin = Origin::start().await;
    let spec = InboundSpec {
        security: Security::Reality,
        reality: Some(RealitySpec {
            public_key: public,
            private_key_file: key_file.to_string_lossy().into_owned(),
            short_ids: vec!["6ba85179e30d4fc2".into()],
            server_names: vec!["node.test".into()],
            dest: format!("127.0.0.1:{dest_port}"),
        }),
        ..InboundSpec::plain_tcp("reality", Protocol::Vless, free_port())
    };
    let mut base =
        render::default_base(&NodeParams { core: Core::Xray, api_port: free_port(), inbounds: vec![spec.clone()] })
            .expect("a REALITY base");
    isolation::isolate(&mut base, &[origin.allowance()], &[]).unwrap();
    let seat = NodeUser { uuid: Uuid::new_v4(), email: "reality@test".into() };
    let text = render::render(&base, &[ClientInbound::of(&spec, Core::Xray)], std::slice::from_ref(&seat)).unwrap();
    // what the node's write step does with the placeholder (tests/it/node_api.rs runs that step for real)
    let text = text.replace(&format!("{NODE_FILE_PREFIX}{}", key_file.display()), &private);
    let server_config = dir.path().join("server.json");
    std::fs::write(&server_config, &text).unwrap();
    let test = Command::new(&xray).args(["run", "-test", "-c"]).arg(&server_config).output().unwrap();
    assert!(
        test.status.success(),
        "xray refused our REALITY config: {}\n{text}",
        String::from_utf8_lossy(&test.stdout)
    );
    let _server = spawn(Command::new(&xray).args(["run", "-c"]).arg(&server_config));
    wait_for_port(spec.port, Duration::from_secs(10)).await.expect("the REALITY inbound");

    // a client built from the link alone
    let link = links::share_link(&spec, "127.0.0.1", seat.uuid, "reality");
    let http_port = free_port();
    let client_config = dir.path().join("client.json");
    let client = json!({
        "log": {"loglevel": "warning"},
        "inbounds": [{"listen": "127.0.0.1", "port": http_port, "protocol": "http", "settings": {}}],
        "outbounds": [links::parse_link(&link).unwrap().outbound("node")]
    });
    std::fs::write(&client_config, client.to_string()).unwrap();
    let _client = spawn(Command::new(&xray).args(["run", "-c"]).arg(&client_config));
    wait_for_port(http_port, Duration::from_secs(10)).await.expect("the client");
    let http = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://127.0.0.1:{http_port}")).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let body = http.get(origin.url("/")).send().await.expect("through REALITY").text().await.unwrap();
    assert_eq!(body, crate::support::GREETING);
}
