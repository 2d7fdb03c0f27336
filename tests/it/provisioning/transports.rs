//! Transports that survive real networks, for real: a node with VMess and VLESS over TCP and WebSocket, each
//! with TLS from a throwaway CA (what a censor sees is TLS to a name), plus plain VMess. Real v2ray clients built
//! from the feed's links fetch a page through every inbound; one that does not trust the CA gets nothing; one
//! customer seat is one client on every inbound, its usage the sum over them; revoking it cuts every inbound.

use base64::Engine;
use serde_json::{Value, json};
use sqlx::PgPool;
use vpnshop::domain::inbound::{InboundSpec, Security, Transport};
use vpnshop::domain::server::Protocol;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::provision::links;
use vpnshop::services::servers::{self, Actor};
use vpnshop::services::{access, subscriptions};

use super::{Shop, links_of, meter, shop, subscribe, wait_node_synced, wait_status};
use crate::support::{TestCa, TestV2rayClient, free_port, node_tools_present};

const NAME: &str = "node.test";

fn tls(tag: &str, protocol: Protocol, transport: Transport, ca: &TestCa) -> InboundSpec {
    InboundSpec {
        security: Security::Tls,
        transport,
        cert_path: Some(ca.cert().to_string_lossy().into_owned()),
        key_path: Some(ca.key().to_string_lossy().into_owned()),
        sni: Some(NAME.into()),
        path: (transport == Transport::Ws).then(|| format!("/{tag}")),
        ..InboundSpec::plain_tcp(tag, protocol, free_port())
    }
}

/// The node's inbounds: plain VMess (the shop's registration), then the four TLS kinds.
fn inbounds(shop: &Shop, ca: &TestCa) -> Vec<InboundSpec> {
    vec![
        InboundSpec::plain_tcp("proxy", Protocol::Vmess, shop.node.proxy_port),
        tls("vmess-tls", Protocol::Vmess, Transport::Tcp, ca),
        tls("vmess-ws", Protocol::Vmess, Transport::Ws, ca),
        tls("vless-tls", Protocol::Vless, Transport::Tcp, ca),
        InboundSpec { alpn: vec!["http/1.1".into()], ..tls("vless-ws", Protocol::Vless, Transport::Ws, ca) },
    ]
}

/// A client built from `link` as an app would (everything the link says), trusting `ca` when given.
async fn client(link: &str, ca: Option<&TestCa>) -> TestV2rayClient {
    let mut outbound = links::parse_link(link).expect("our own link parses").outbound("node");
    if let Some(tls) = outbound.pointer_mut("/streamSettings/tlsSettings") {
        // what the CA-signed certificate needs on a client: the CA, and no system roots (so trust is the CA's)
        tls["disableSystemRoot"] = json!(true);
        if let Some(ca) = ca {
            tls["certificates"] = json!([{ "usage": "verify", "certificateFile": ca.ca_cert() }]);
        }
        // v2ray 4.34 (the client here) has no uTLS: apps send the fingerprint, our test client cannot
        if let Some(map) = tls.as_object_mut() {
            map.remove("fingerprint");
        }
    }
    TestV2rayClient::start_outbound(outbound).await
}

async fn download(shop: &Shop, client: &TestV2rayClient, bytes: usize) -> Result<(), String> {
    let body = client.fetch(&shop.origin.url(&format!("/bytes/{bytes}"))).await?;
    if body.len() == bytes { Ok(()) } else { Err(format!("got {} of {bytes} bytes", body.len())) }
}

/// Bytes the subscription used (up + down), from Postgres.
async fn used(pool: &PgPool, sub: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(up_bytes + down_bytes), 0)::int8
           FROM traffic t JOIN clients c ON c.id = t.client_id WHERE c.subscription_id = $1",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn every_transport_carries_one_seat_and_revocation_cuts_them_all(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let ca = TestCa::new(NAME, 30);
    let specs = inbounds(&shop, &ca);
    let jobs = &shop.app.state.settings.jobs;

    // a customer on the plain node first: changing the node's inbounds must carry them over
    let sub = subscribe(&shop, 701, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    wait_node_synced(shop.pool(), shop.server_id).await;
    servers::set_inbounds(shop.pool(), shop.server_id, &specs, Actor::CLI, jobs).await.expect("new inbounds");
    wait_node_synced(shop.pool(), shop.server_id).await;
    let file = std::fs::read_to_string(shop.node.config_path()).unwrap();
    for spec in &specs {
        let users = vpnshop::provision::render::clients_in(&file, &spec.tag).expect("the inbound is in the file");
        assert_eq!(users.len(), 1, "the seat is on inbound {}", spec.tag);
    }

    // one link per inbound, in the node's order, named so apps tell them apart; the feed lists every one
    let links = links_of(&shop, sub).await;
    assert_eq!(links.len(), specs.len(), "{links:#?}");
    let names: Vec<String> = links.iter().map(|l| links::parse_link(l).unwrap().name).collect();
    for (name, spec) in names.iter().zip(&specs) {
        assert!(name.ends_with(&spec.display_label()), "{name:?} names {}", spec.display_label());
    }
    let row = vpnshop::db::subscriptions::find(shop.pool(), sub).await.unwrap().unwrap();
    let feed = access::feed(shop.pool(), &row.token, &shop.app.state.settings.provision).await.unwrap();
    let body = base64::engine::general_purpose::STANDARD.decode(&feed.body).unwrap();
    let fed: Vec<String> = String::from_utf8(body).unwrap().lines().map(str::to_owned).collect();
    let shop_name = &shop.app.state.settings.provision.shop_name;
    let listed: Vec<String> =
        access::links(shop.pool(), &row, shop_name).await.unwrap().into_iter().map(|l| l.link).collect();
    assert_eq!(fed, listed, "the feed lists every inbound's link");
    let parsed: Vec<links::ParsedLink> = links.iter().map(|l| links::parse_link(l).unwrap()).collect();
    assert_eq!(
        parsed.iter().map(|p| (p.network.as_str(), p.security.as_str())).collect::<Vec<_>>(),
        [("tcp", "none"), ("tcp", "tls"), ("ws", "tls"), ("tcp", "tls"), ("ws", "tls")]
    );

    // every link works for a client that trusts the CA; with TLS, one that does not trust it gets nothing
    let before = {
        meter(&shop).await;
        used(shop.pool(), sub).await
    };
    let mut moved = 0;
    for (i, link) in links.iter().enumerate() {
        let trusting = client(link, Some(&ca)).await;
        let bytes = 20_000 * (i + 1);
        if let Err(e) = download(&shop, &trusting, bytes).await {
            panic!("a client from {} did not get through: {e}\n{}", specs[i].display_label(), trusting.log());
        }
        moved += bytes;
        if specs[i].security == Security::Tls {
            let doubting = client(link, None).await;
            assert!(
                doubting.fetch(&shop.origin.url("/")).await.is_err(),
                "a client that does not trust the CA must not get through {}",
                specs[i].display_label()
            );
        }
    }

    // the seat's usage is the sum over its inbounds (the core counts per client email, whatever the inbound)
    meter(&shop).await;
    let delta = used(shop.pool(), sub).await - before;
    let moved = i64::try_from(moved).unwrap();
    assert!(delta >= moved, "usage grew by {delta} bytes, but {moved} bytes were downloaded over the inbounds");
    assert!(delta < moved * 2, "usage grew by {delta} bytes for {moved} bytes downloaded: counted twice?");

    // revoking the seat cuts it on every inbound
    assert!(subscriptions::end(shop.pool(), sub, SubscriptionStatus::Revoked, "test", jobs).await.unwrap());
    wait_node_synced(shop.pool(), shop.server_id).await;
    for (i, link) in links.iter().enumerate() {
        let c = client(link, Some(&ca)).await;
        assert!(c.fetch(&shop.origin.url("/")).await.is_err(), "{} still works after revocation", specs[i].tag);
    }
    let file = std::fs::read_to_string(shop.node.config_path()).unwrap();
    for spec in &specs {
        assert!(vpnshop::provision::render::clients_in(&file, &spec.tag).unwrap().is_empty(), "{}", spec.tag);
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn inbounds_that_cannot_work_are_refused_with_the_field_and_nothing_changes(pool: PgPool) {
    let app = crate::helpers::spawn_app(pool).await;
    let pool = &app.state.pool;
    let jobs = &app.state.settings.jobs;
    let server = servers::add(pool, &crate::helpers::server_input("de-x", "de"), Actor::CLI).await.unwrap();
    let plain_vless = InboundSpec::plain_tcp("v", Protocol::Vless, 443);
    let no_cert = InboundSpec { security: Security::Tls, ..InboundSpec::plain_tcp("t", Protocol::Vmess, 443) };
    let on_api = InboundSpec::plain_tcp("p", Protocol::Vmess, 10085);
    let twice =
        vec![InboundSpec::plain_tcp("a", Protocol::Vmess, 443), InboundSpec::plain_tcp("a", Protocol::Vmess, 444)];
    let grpc_on_v2ray = InboundSpec {
        transport: Transport::Grpc,
        service_name: Some("t".into()),
        security: Security::Tls,
        cert_path: Some("/etc/v2ray/tls/fullchain.pem".into()),
        key_path: Some("/etc/v2ray/tls/privkey.pem".into()),
        ..InboundSpec::plain_tcp("g", Protocol::Vless, 443)
    };
    for (list, field) in [
        (vec![plain_vless.clone()], "inbounds[0].security"),
        (vec![no_cert], "inbounds[0].cert_path"),
        (vec![on_api], "inbounds[0].port"),
        (twice, "inbounds[1].tag"),
        (vec![grpc_on_v2ray], "inbounds[0].transport"),
        (vec![], "inbounds"),
    ] {
        let err = servers::set_inbounds(pool, server.id, &list, Actor::CLI, jobs).await.unwrap_err();
        match err {
            vpnshop::error::AppError::Field { field: got, .. } => assert_eq!(got, field, "{list:?}"),
            other => panic!("{list:?}: expected a field error, got {other:?}"),
        }
    }
    // a VLESS node registered the old way (protocol vless, no TLS) is refused as well
    let legacy = vpnshop::services::servers::ServerInput {
        protocol: Protocol::Vless,
        ..crate::helpers::server_input("de-y", "de")
    };
    match servers::add(pool, &legacy, Actor::CLI).await.unwrap_err() {
        vpnshop::error::AppError::Field { field, message } => {
            assert_eq!(field, "protocol");
            assert!(message.contains("TLS or REALITY"), "{message}");
        }
        other => panic!("expected a field error, got {other:?}"),
    }
    let stored: Value =
        sqlx::query_scalar("SELECT inbounds FROM servers WHERE id = $1").bind(server.id).fetch_one(pool).await.unwrap();
    assert_eq!(stored.as_array().map(Vec::len), Some(1), "the node keeps its one inbound: {stored}");
    let reconciles: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'node.reconcile'").fetch_one(pool).await.unwrap();
    assert_eq!(reconciles, 0, "nothing was asked of the node");
}

/// A node an earlier release registered with VLESS over bare TCP (now refused for anything new) keeps its
/// customers working after the upgrade: it is still rendered, synced and linked; `server test` fails it and says
/// what to do.
#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_legacy_plain_vless_node_keeps_working_and_server_test_flags_it(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    // the row as the previous release wrote it: protocol vless, no inbounds
    sqlx::query("UPDATE servers SET protocol = 'vless', inbounds = '[]' WHERE id = $1")
        .bind(shop.server_id)
        .execute(shop.pool())
        .await
        .unwrap();
    let sub = subscribe(&shop, 702, "de-30d-1dev-50gb").await;
    wait_status(shop.pool(), sub, SubscriptionStatus::Active).await;
    let links = links_of(&shop, sub).await;
    assert_eq!(links.len(), 1);
    assert!(links[0].starts_with("vless://") && links[0].contains("security=none"), "{}", links[0]);
    assert!(super::browses(&shop, &links[0]).await, "its customer still gets through");

    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    let flagged: Vec<_> = checks
        .iter()
        .filter(|c| c.outcome == vpnshop::services::nodes::probe::Outcome::Failed)
        .map(|c| c.detail.clone())
        .collect();
    assert_eq!(flagged.len(), 1, "{checks:#?}");
    assert!(
        flagged[0].contains("unencrypted") && flagged[0].contains("vpnshop server inbounds de-test"),
        "{flagged:?}"
    );
}
