//! The real `NodeApi` (`SshNodes`) against real nodes: our own sshd + Debian's v2ray on loopback, and real
//! v2ray clients browsing through them.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use base64::Engine;
use secrecy::SecretString;
use uuid::Uuid;
use vpnshop::domain::server::Protocol;
use vpnshop::provision::node::NodeApi;
use vpnshop::provision::ssh::{KeySource, SshOptions};
use vpnshop::provision::sshnode::SshNodes;
use vpnshop::provision::{NodeError, NodeUser};

use crate::support::{GREETING, Origin, TestNode, TestV2rayClient, node_tools_present};

fn options() -> SshOptions {
    SshOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(15),
        keepalive_interval: Duration::from_secs(5),
        keepalive_max: 3,
    }
}

fn nodes_for(node: &TestNode) -> SshNodes {
    SshNodes::new(&KeySource::Path(node.key_path()), options()).expect("client key loads")
}

fn user(email: &str) -> NodeUser {
    NodeUser { uuid: Uuid::new_v4(), email: email.into() }
}

async fn browses(node: &TestNode, origin: &Origin, uuid: Uuid) -> Result<String, String> {
    let client = TestV2rayClient::start(node.client_params(uuid)).await;
    client.fetch(&origin.url("/")).await
}

async fn a_user_added_at_runtime_browses_through_the_node(protocol: Protocol) {
    if !node_tools_present() {
        return;
    }
    let (node, origin) = (TestNode::start_with(protocol).await, Origin::start().await);
    let nodes = nodes_for(&node);
    let alice = user("alice@test");
    assert!(browses(&node, &origin, alice.uuid).await.is_err(), "an unknown user is refused");

    nodes.add_user(&node.target(), &alice).await.expect("add user");
    assert_eq!(browses(&node, &origin, alice.uuid).await.expect("browse via the node"), GREETING);
}

#[tokio::test]
async fn a_vmess_user_added_at_runtime_browses_through_the_node() {
    a_user_added_at_runtime_browses_through_the_node(Protocol::Vmess).await;
}

#[tokio::test]
async fn a_vless_user_added_at_runtime_browses_through_the_node() {
    a_user_added_at_runtime_browses_through_the_node(Protocol::Vless).await;
}

#[tokio::test]
async fn a_removed_user_cannot_open_new_connections() {
    if !node_tools_present() {
        return;
    }
    let (node, origin) = (TestNode::start().await, Origin::start().await);
    let nodes = nodes_for(&node);
    let bob = user("bob@test");
    nodes.add_user(&node.target(), &bob).await.unwrap();
    let client = TestV2rayClient::start(node.client_params(bob.uuid)).await;
    assert_eq!(client.fetch(&origin.url("/")).await.unwrap(), GREETING);

    nodes.remove_user(&node.target(), &bob.email).await.expect("remove user");
    let refused = client.fetch(&origin.url("/")).await;
    assert!(refused.is_err(), "a removed user still browses: {refused:?}");
}

#[tokio::test]
async fn adding_twice_and_removing_twice_are_success() {
    if !node_tools_present() {
        return;
    }
    let (node, origin) = (TestNode::start_with(Protocol::Vless).await, Origin::start().await);
    let (nodes, target, carol) = (nodes_for(&node), node.target(), user("carol@test"));
    nodes.add_user(&target, &carol).await.expect("first add");
    nodes.add_user(&target, &carol).await.expect("second add is success");
    assert_eq!(browses(&node, &origin, carol.uuid).await.unwrap(), GREETING);
    nodes.remove_user(&target, &carol.email).await.expect("first remove");
    nodes.remove_user(&target, &carol.email).await.expect("second remove is success");
    nodes.remove_user(&target, "never-added@test").await.expect("removing an unknown user is success");
}

#[tokio::test]
async fn an_unknown_inbound_tag_is_an_api_error() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let mut target = node.target();
    target.inbounds[0].tag = "no-such-inbound".into();
    let nodes = nodes_for(&node);
    let err = nodes.add_user(&target, &user("dan@test")).await.unwrap_err();
    assert!(matches!(err, NodeError::Api(_)), "{err:?}");
    let err = nodes.remove_user(&target, "dan@test").await.unwrap_err();
    assert!(matches!(err, NodeError::Api(ref m) if m.contains("not found")), "{err:?}");
}

#[tokio::test]
async fn counters_appear_after_traffic_and_survive_removal() {
    if !node_tools_present() {
        return;
    }
    let (node, origin) = (TestNode::start().await, Origin::start().await);
    let (nodes, target, erin) = (nodes_for(&node), node.target(), user("erin@test"));
    nodes.add_user(&target, &erin).await.unwrap();
    let before = nodes.user_counters(&target).await.expect("counters");
    assert!(before.iter().all(|(email, _)| email != &erin.email), "no counter before traffic: {before:?}");

    let client = TestV2rayClient::start(node.client_params(erin.uuid)).await;
    let body = client.fetch(&origin.url("/bytes/20000")).await.unwrap();
    assert_eq!(body.len(), 20_000);
    let counter = |all: Vec<(String, vpnshop::provision::UserCounter)>| {
        all.into_iter().find(|(email, _)| email == &erin.email).map(|(_, c)| c)
    };
    let after = counter(nodes.user_counters(&target).await.unwrap()).expect("a counter after traffic");
    assert!(after.downlink >= 20_000, "{after:?}");
    assert!(after.uplink > 0, "{after:?}");

    nodes.remove_user(&target, &erin.email).await.unwrap();
    let kept = counter(nodes.user_counters(&target).await.unwrap()).expect("counter survives removal");
    assert_eq!(kept, after);
}

#[tokio::test]
async fn core_uptime_is_small_after_a_restart_and_the_api_reconnects() {
    if !node_tools_present() {
        return;
    }
    let (node, origin) = (TestNode::start().await, Origin::start().await);
    let (nodes, target, fay) = (nodes_for(&node), node.target(), user("fay@test"));
    nodes.add_user(&target, &fay).await.unwrap();
    assert_eq!(browses(&node, &origin, fay.uuid).await.unwrap(), GREETING);
    // uptime has a one-second resolution: let the core age a little to see the reset
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(nodes.core_uptime(&target).await.unwrap() >= Duration::from_secs(2));

    nodes.restart_core(&target).await.expect("restart");
    node.wait_core().await;
    assert!(nodes.core_uptime(&target).await.expect("uptime after restart") < Duration::from_secs(2));
    assert!(nodes.user_counters(&target).await.unwrap().is_empty(), "counters reset on restart");
    assert!(browses(&node, &origin, fay.uuid).await.is_err(), "runtime users are lost on restart");
    nodes.add_user(&target, &fay).await.expect("the API works on the restarted core");
    assert_eq!(browses(&node, &origin, fay.uuid).await.unwrap(), GREETING);
}

#[tokio::test]
async fn a_stopped_core_is_unreachable_until_it_is_back() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let (nodes, target) = (nodes_for(&node), node.target());
    nodes.core_uptime(&target).await.unwrap();
    node.kill_core().await;
    let err = nodes.add_user(&target, &user("gus@test")).await.unwrap_err();
    assert!(matches!(err, NodeError::Unreachable(_)), "{err:?}");
    node.start_core().await;
    nodes.add_user(&target, &user("gus@test")).await.expect("works again");
}

#[tokio::test]
async fn write_config_replaces_the_file_atomically_with_mode_0640_and_read_config_round_trips() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let (nodes, target) = (nodes_for(&node), node.target());
    let original = nodes.read_config(&target).await.unwrap().expect("config exists");
    assert_eq!(original, node.base_config());

    let updated = node.base_config().replace("\"warning\"", "\"error\"");
    assert_ne!(updated, original);
    nodes.write_config(&target, &updated).await.expect("a good config is written");
    assert_eq!(nodes.read_config(&target).await.unwrap().as_deref(), Some(updated.as_str()));
    let mode = std::fs::metadata(node.config_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    nodes.write_config(&target, &updated).await.expect("writing the same config again is fine");
    assert_no_temp_files(&node);
}

#[tokio::test]
async fn a_config_the_core_rejects_leaves_the_old_file() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let (nodes, target) = (nodes_for(&node), node.target());
    for bad in [r#"{"inbounds": [{"protocol": "no-such-protocol"}]}"#, "{ not json"] {
        let err = nodes.write_config(&target, bad).await.unwrap_err();
        assert!(matches!(err, NodeError::Command(ref out) if out.contains("v2ray -test")), "{err:?}");
        assert_eq!(std::fs::read_to_string(node.config_path()).unwrap(), node.base_config());
    }
    assert_no_temp_files(&node);
}

/// What the shop writes where a REALITY private key belongs: the key file's name on the node. The node's write
/// step puts the file's content there, so the key never travels to (or through) the shop. Checked with v2ray:
/// the placeholder sits in an outbound's tag, a place any core reads as plain text.
#[tokio::test]
async fn a_node_file_placeholder_is_replaced_on_the_node_and_a_bad_key_file_leaves_the_old_config() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let (nodes, target) = (nodes_for(&node), node.target());
    let key = "cKA3Pq0mD1cfG5k6kRZ1q6m9lq1C9c3ZgqP8l5V0b3E";
    let key_file = node.dir().join("reality.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let with = |file: &std::path::Path| {
        let mut config: serde_json::Value = serde_json::from_str(&node.base_config()).unwrap();
        let tag = format!("{}{}", vpnshop::provision::render::NODE_FILE_PREFIX, file.display());
        config["outbounds"].as_array_mut().unwrap().push(serde_json::json!({"tag": tag, "protocol": "blackhole"}));
        serde_json::to_string_pretty(&config).unwrap()
    };
    nodes.write_config(&target, &with(&key_file)).await.expect("written with the key put in");
    let on_node = std::fs::read_to_string(node.config_path()).unwrap();
    assert!(on_node.contains(&format!("\"{key}\"")), "{on_node}");
    assert!(!on_node.contains(vpnshop::provision::render::NODE_FILE_PREFIX), "{on_node}");

    for (file, why) in [
        (node.dir().join("missing.key"), "cannot read the REALITY key file"),
        (node.dir().join("bad.key"), "does not hold an x25519 key"),
    ] {
        std::fs::write(node.dir().join("bad.key"), "not a key; rm -rf /\n").unwrap();
        let err = nodes.write_config(&target, &with(&file)).await.unwrap_err();
        assert!(matches!(err, NodeError::Command(ref out) if out.contains(why)), "{err:?}");
        assert_eq!(std::fs::read_to_string(node.config_path()).unwrap(), on_node, "the old file stays");
    }
    assert_no_temp_files(&node);
}

#[tokio::test]
async fn read_config_of_a_missing_file_is_none() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let mut target = node.target();
    target.config_path = node.dir().join("nothing here.json").to_string_lossy().into_owned();
    assert_eq!(nodes_for(&node).read_config(&target).await.unwrap(), None);
}

fn assert_no_temp_files(node: &TestNode) {
    let leftovers: Vec<_> = std::fs::read_dir(node.dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".vpnshop-config"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
}

#[tokio::test]
async fn a_wrong_or_missing_host_key_pin_is_refused_and_nothing_runs() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let nodes = nodes_for(&node);
    let marker = node.dir().join("ran");
    let mut target = node.target();
    target.restart_command = format!("touch '{}'", marker.display());
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    target.host_key_fingerprint = Some(wrong.clone());
    let err = nodes.restart_core(&target).await.unwrap_err();
    assert_eq!(err, NodeError::HostKeyMismatch { expected: wrong, presented: node.host_fingerprint.clone() });

    target.host_key_fingerprint = None;
    assert_eq!(nodes.restart_core(&target).await.unwrap_err(), NodeError::HostKeyNotPinned);
    assert!(!marker.exists(), "a command ran on a node we do not trust");
    assert_eq!(node.logins(), 0);

    target.host_key_fingerprint = Some(node.host_fingerprint.clone());
    nodes.restart_core(&target).await.expect("the right pin runs the command");
    assert!(marker.exists());
}

#[tokio::test]
async fn fetch_host_key_returns_what_ssh_keygen_prints() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let fingerprint = nodes_for(&node).fetch_host_key("127.0.0.1", node.ssh_port).await.unwrap();
    assert_eq!(fingerprint, node.host_fingerprint);
}

#[tokio::test]
async fn one_session_is_reused_and_a_stopped_sshd_is_unreachable_quickly_until_it_is_back() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let (nodes, target) = (nodes_for(&node), node.target());
    nodes.add_user(&target, &user("hal@test")).await.unwrap();
    nodes.read_config(&target).await.unwrap();
    nodes.user_counters(&target).await.unwrap();
    nodes.remove_user(&target, "hal@test").await.unwrap();
    assert_eq!(node.logins(), 1, "one SSH login serves every call");

    node.stop_sshd().await;
    let started = Instant::now();
    let err = nodes.read_config(&target).await.unwrap_err();
    assert!(matches!(err, NodeError::Unreachable(_)), "{err:?}");
    let err = nodes.user_counters(&target).await.unwrap_err();
    assert!(matches!(err, NodeError::Unreachable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    node.start_sshd().await;
    nodes.read_config(&target).await.expect("reconnects once the node is back");
    nodes.user_counters(&target).await.expect("the API reconnects too");
}

#[tokio::test]
async fn a_node_that_never_answers_is_unreachable_after_the_connect_timeout() {
    // a listener that accepts and then says nothing: no SSH banner ever comes
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let key = tempfile::tempdir().unwrap();
    let key_path = key.path().join("id");
    let generated =
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key_path).status();
    if !matches!(generated, Ok(s) if s.success()) {
        assert!(!crate::helpers::tools_required(), "ssh-keygen is required");
        return;
    }
    let options = SshOptions { connect_timeout: Duration::from_secs(1), ..options() };
    let nodes = SshNodes::new(&KeySource::Path(key_path), options).unwrap();
    let started = Instant::now();
    let err = nodes.fetch_host_key("127.0.0.1", port).await.unwrap_err();
    assert!(matches!(err, NodeError::Unreachable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn rsa_keys_and_key_text_log_in_too() {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let rsa = SshNodes::new(&KeySource::Path(node.rsa_key_path()), options()).expect("RSA key loads");
    rsa.read_config(&node.target()).await.expect("RSA login");
    let text = SecretString::from(std::fs::read_to_string(node.key_path()).unwrap());
    let from_text = SshNodes::new(&KeySource::Text(text), options()).expect("key text parses");
    from_text.read_config(&node.target()).await.expect("login with a key given as text");
    let garbage = SshNodes::new(&KeySource::Text(SecretString::from("not a key")), options());
    assert!(garbage.is_err());
}

#[tokio::test]
async fn a_client_built_from_a_vmess_share_link_browses() {
    if !node_tools_present() {
        return;
    }
    let (node, origin) = (TestNode::start().await, Origin::start().await);
    let ivy = user("ivy@test");
    nodes_for(&node).add_user(&node.target(), &ivy).await.unwrap();
    let json = serde_json::json!({"v": "2", "ps": "test", "add": "127.0.0.1", "port": node.proxy_port.to_string(),
        "id": ivy.uuid.to_string(), "aid": "0", "scy": "auto", "net": "tcp", "type": "none", "host": "",
        "path": "", "tls": "", "sni": ""});
    let link = format!("vmess://{}", base64::engine::general_purpose::STANDARD.encode(json.to_string()));
    let client = TestV2rayClient::start(link.as_str()).await;
    assert_eq!(client.fetch(&origin.url("/")).await.unwrap(), GREETING);
}
