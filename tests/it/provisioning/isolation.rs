//! Customers tunnel *through* a node, never *into* it. Through a real v2ray client built from a customer's
//! link, with the production default (no allowed private destinations): the node's core API, its sshd,
//! loopback in every spelling, and private addresses of the machine are unreachable, while a public address
//! works. Nodes whose config predates the blocking rules get them on their next sync, with one restart.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::provision::grpc::{self, GrpcChannel};
use vpnshop::provision::isolation::BLOCKED_NETWORKS;
use vpnshop::provision::render;
use vpnshop::services::nodes::probe::Outcome;

use super::{links_of, register_node, subscribe, wait_node_synced, wait_status};
use crate::helpers::{spawn_app_with, tools_required};
use crate::support::{TestNode, TestV2rayClient, node_tools_present};

const HELLO: &[u8] = b"HELLO from the banner\n";
const WAIT: Duration = Duration::from_secs(2);

/// A TCP server on every address of this machine (`[::]`, dual stack) that greets whoever connects.
struct Banner {
    port: u16,
    task: JoinHandle<()>,
}

impl Banner {
    async fn start() -> Banner {
        let listener = tokio::net::TcpListener::bind("[::]:0").await.expect("bind [::]:0");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = socket.write_all(HELLO).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        Banner { port, task }
    }
}

impl Drop for Banner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `addr` says first on a direct connection (the control: the destination itself answers).
async fn first_words_direct(addr: SocketAddr) -> Vec<u8> {
    let Ok(Ok(mut s)) = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr)).await else {
        return Vec::new();
    };
    let mut got = vec![0u8; 256];
    match tokio::time::timeout(WAIT, s.read(&mut got)).await {
        Ok(Ok(n)) => {
            got.truncate(n);
            got
        }
        _ => Vec::new(),
    }
}

/// Whether `ip` lies in one of the networks nodes block.
fn blocked(ip: IpAddr) -> bool {
    BLOCKED_NETWORKS.iter().any(|net| {
        let (base, bits) = net.split_once('/').unwrap();
        let (base, bits): (IpAddr, u32) = (base.parse().unwrap(), bits.parse().unwrap());
        match (ip, base) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    })
}

/// The global addresses of this machine's interfaces (`ip -o addr show scope global`).
fn machine_addresses() -> Vec<IpAddr> {
    let out = Command::new("ip").args(["-o", "addr", "show", "scope", "global"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// A real `GetSysStats` call to the core's API over `stream`: whether it answered.
async fn api_answers(stream: tokio::net::TcpStream) -> bool {
    let call = async {
        let channel = GrpcChannel::handshake(stream).await.ok()?;
        grpc::uptime(&channel, vpnshop::domain::server::Core::V2ray).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(3), call).await, Ok(Some(_)))
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_customers_tunnel_reaches_public_addresses_but_never_the_node_or_private_networks(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let banner = Banner::start().await;
    let key = node.key_path();
    // the production default: nothing private is allowed through
    let app = spawn_app_with(pool, |s| {
        s.provision.ssh_key_path = Some(key);
        s.provision.op_timeout_secs = 15;
    })
    .await;
    assert!(app.state.settings.provision.allow_private_destinations.is_empty());
    let server_id = register_node(&app.state.pool, &node).await;
    let shop = super::Shop { app, node, server_id, origin: crate::support::Origin::start().await };
    let sub = subscribe(&shop, 801, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let link = links_of(&shop, sub).await.remove(0);
    let client = TestV2rayClient::start(link.as_str()).await;

    // the public path works: an address of this machine outside every blocked network
    let addresses = machine_addresses();
    match addresses.iter().find(|ip| ip.is_ipv4() && !blocked(**ip)) {
        Some(public) => {
            let ip = public.to_string();
            assert_eq!(first_words_direct(SocketAddr::new(*public, banner.port)).await, HELLO, "control");
            assert_eq!(
                client.first_words_through(&ip, banner.port, WAIT).await,
                HELLO,
                "a public destination ({ip}) is reachable through the tunnel"
            );
        }
        None => {
            assert!(!tools_required(), "no public address on this machine to prove the public path: {addresses:?}");
            eprintln!("note: no public IPv4 address here ({addresses:?}); the public path is not checked");
        }
    }

    // the node's sshd, in every spelling of the node itself
    let ssh = shop.node.ssh_port;
    assert!(
        first_words_direct(SocketAddr::from(([127, 0, 0, 1], ssh))).await.starts_with(b"SSH-"),
        "control: sshd greets"
    );
    for host in ["127.0.0.1", "localhost", "0.0.0.0", "::ffff:127.0.0.1"] {
        let got = client.first_words_through(host, ssh, WAIT).await;
        assert!(
            got.is_empty(),
            "the node's sshd answered through the tunnel at {host}: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    // the core's unauthenticated API
    let api = SocketAddr::from(([127, 0, 0, 1], shop.node.api_port));
    assert!(api_answers(tokio::net::TcpStream::connect(api).await.unwrap()).await, "control: the API answers directly");
    for host in ["127.0.0.1", "localhost"] {
        let stream = client.connect_through(host, shop.node.api_port).await.expect("the client accepts CONNECT");
        assert!(!api_answers(stream).await, "the core API answered a customer through {host}");
    }
    // loopback and private addresses of this machine (a server listening on all of them)
    let mut private: Vec<IpAddr> = ["127.0.0.1", "127.1.2.3", "::1"].iter().map(|a| a.parse().unwrap()).collect();
    private.extend(addresses.iter().filter(|ip| blocked(**ip)));
    for ip in private {
        if first_words_direct(SocketAddr::new(ip, banner.port)).await != HELLO {
            continue; // not reachable from here at all (no IPv6 loopback, say): nothing to prove
        }
        let got = client.first_words_through(&ip.to_string(), banner.port, WAIT).await;
        assert!(got.is_empty(), "{ip} (private) answered through the tunnel: {:?}", String::from_utf8_lossy(&got));
    }
    // cloud metadata
    assert!(client.first_words_through("169.254.169.254", 80, WAIT).await.is_empty());

    // and `server test` agrees
    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    let isolation = checks.iter().find(|c| c.name == "isolation").expect("an isolation check");
    assert_eq!(isolation.outcome, Outcome::Ok, "{checks:#?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_node_without_the_blocking_rules_is_reported_and_gets_them_on_its_next_sync(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = super::shop(pool).await;
    let sub = subscribe(&shop, 802, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    let link = links_of(&shop, sub).await.remove(0);

    // an upgrade: the node runs the config an older shop wrote (same users, no blocking rules), and the
    // shop's records say it wrote exactly that
    let file = std::fs::read_to_string(shop.node.config_path()).unwrap();
    let mut old: serde_json::Value = serde_json::from_str(&file).unwrap();
    old["outbounds"] = serde_json::json!([{"tag": "direct", "protocol": "freedom", "settings": {}}]);
    old["routing"] = serde_json::json!({"rules": [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]});
    let old_text = format!("{}\n", serde_json::to_string_pretty(&old).unwrap());
    std::fs::write(shop.node.config_path(), &old_text).unwrap();
    shop.node.kill_core().await;
    shop.node.start_core().await;
    let old_config_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(old_text.as_bytes()));
    sqlx::query(
        "UPDATE servers SET applied_base_hash = $2, applied_config_hash = $3, users_synced_at = now() WHERE id = $1",
    )
    .bind(shop.server_id)
    .bind(render::base_hash(&old))
    .bind(old_config_hash)
    .execute(shop.pool())
    .await
    .unwrap();

    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    let isolation = checks.iter().find(|c| c.name == "isolation").unwrap();
    assert_eq!(isolation.outcome, Outcome::Failed, "{checks:#?}");
    assert!(isolation.detail.contains("lets customers reach the node itself"), "{}", isolation.detail);
    let restarts_before = restarts(&shop).await;

    let report = loop {
        match shop.app.state.nodes.reconcile(shop.server_id).await {
            Err(vpnshop::services::nodes::SyncError::Busy) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => break other.expect("reconcile"),
        }
    };
    assert!(report.config_written && report.restarted, "{report:?}");
    shop.node.wait_core().await;
    // the new core's banner reaches its log a moment after the restart returns
    let started = std::time::Instant::now();
    while restarts(&shop).await == restarts_before && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarts(&shop).await, restarts_before + 1, "one restart");
    let isolated: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shop.node.config_path()).unwrap()).unwrap();
    assert_eq!(render::clients_in(&isolated.to_string(), "proxy").unwrap().len(), 1, "the customer stays on the node");
    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    assert!(checks.iter().all(|c| c.outcome == Outcome::Ok), "{checks:#?}");

    // the customer still browses; the API stays out of reach
    wait_node_synced(shop.pool(), shop.server_id).await;
    let client = TestV2rayClient::start(link.as_str()).await;
    super::eventually("the customer browses after the restart", Duration::from_secs(20), || async {
        client.fetch(&shop.origin.url("/")).await.is_ok()
    })
    .await;
    let stream = client.connect_through("127.0.0.1", shop.node.api_port).await.unwrap();
    assert!(!api_answers(stream).await);
}

/// How many times the node's v2ray started (each start prints its banner into the node's log).
async fn restarts(shop: &super::Shop) -> usize {
    shop.node.log("v2ray.log").matches("A unified platform for anti-censorship").count()
}
