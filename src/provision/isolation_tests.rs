use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::domain::server::{Core, Protocol};
use crate::provision::render::tests::assert_v2ray_accepts;
use crate::provision::render::{ClientInbound, NodeParams, default_base, render};

fn base() -> Value {
    default_base(&NodeParams {
        core: Core::V2ray,
        api_port: 10085,
        inbounds: vec![crate::domain::inbound::InboundSpec::plain_tcp("proxy", Protocol::Vmess, 443)],
    })
    .unwrap()
}

fn allowed(raw: &str) -> AllowedDestination {
    raw.parse().unwrap()
}

fn ip(raw: &str) -> IpAddr {
    raw.parse().unwrap()
}

#[test]
fn allowed_destinations_parse_with_and_without_ports() {
    assert_eq!(allowed("127.0.0.1:8080"), AllowedDestination { network: "127.0.0.1".into(), port: Some(8080) });
    assert_eq!(allowed("[::1]:443"), AllowedDestination { network: "::1".into(), port: Some(443) });
    assert_eq!(allowed("fd00::/8"), AllowedDestination { network: "fd00::/8".into(), port: None });
    assert_eq!(allowed(" 10.1.0.0/16 "), AllowedDestination { network: "10.1.0.0/16".into(), port: None });
    assert_eq!(allowed("[fd00::2]").port, None);
    for bad in
        ["", "localhost:80", "127.0.0.1:0", "127.0.0.1:99999", "10.0.0.0/33", "::1/129", "[::1", "[::1]x", "1.2.3.4:"]
    {
        assert!(bad.parse::<AllowedDestination>().is_err(), "{bad:?} must be refused");
    }
    for text in ["127.0.0.1:8080", "[::1]:443", "10.1.0.0/16", "fd00::2"] {
        assert_eq!(allowed(text).to_string(), text, "round trip");
    }
}

#[test]
fn blocked_networks_are_recognised() {
    for blocked in [
        "127.0.0.1",
        "127.9.9.9",
        "10.2.3.4",
        "172.31.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::2",
        "fe80::1",
        "::",
    ] {
        assert!(is_blocked(ip(blocked)), "{blocked}");
    }
    for public in ["8.8.8.8", "192.0.2.2", "172.32.0.1", "2001:db8::1", "100.128.0.1"] {
        assert!(!is_blocked(ip(public)), "{public}");
    }
}

#[test]
fn the_default_base_blocks_the_node_and_private_networks_behind_the_api_rule() {
    let base = base();
    assert_eq!(isolation_gap(&base, &[], &[]), None);
    let rules = base["routing"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["outboundTag"], "api", "the API's own rule comes first: it reaches 127.0.0.1");
    assert_eq!(rules[1], json!({"type": "field", "domain": ["domain:localhost"], "outboundTag": "block"}));
    assert_eq!(rules[2]["ip"], json!(BLOCKED_NETWORKS));
    for must in ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"] {
        assert!(BLOCKED_NETWORKS.contains(&must), "{must}");
    }
    for must in ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "224.0.0.0/4", "0.0.0.0/8"] {
        assert!(BLOCKED_NETWORKS.contains(&must), "{must}");
    }
    assert_eq!(base["routing"]["domainStrategy"], "IPOnDemand");
    let outbounds = base["outbounds"].as_array().unwrap();
    assert_eq!(outbounds[0]["protocol"], "freedom", "the default route stays the freedom outbound");
    assert_eq!(outbounds.last().unwrap(), &json!({"tag": "block", "protocol": "blackhole", "settings": {}}));
    let inbound = ClientInbound { tag: "proxy".into(), protocol: Protocol::Vmess, core: Core::V2ray, flow: None };
    assert_v2ray_accepts(&render(&base, &[inbound], &[]).unwrap());
}

#[test]
fn the_nodes_own_public_address_is_blocked_too() {
    let own = [ip("203.0.113.7"), ip("127.0.0.1"), ip("203.0.113.7")];
    let mut with = base();
    isolate(&mut with, &[], &own).unwrap();
    let rules = with["routing"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[3],
        json!({"type": "field", "ip": ["203.0.113.7"], "outboundTag": "block"}),
        "once, only the public one"
    );
    assert_eq!(isolation_gap(&with, &[], &own), None);
    assert!(
        isolation_gap(&base(), &[], &own).is_some_and(|g| g.contains("203.0.113.7")),
        "a config without it is reported"
    );
    assert_v2ray_accepts(&with.to_string());
}

#[test]
fn isolating_twice_changes_nothing_and_allowed_destinations_go_first() {
    let mut twice = base();
    isolate(&mut twice, &[], &[]).unwrap();
    assert_eq!(twice, base(), "idempotent");
    let allow = [allowed("127.0.0.1:8080"), allowed("[::1]:9090")];
    let mut with = base();
    isolate(&mut with, &allow, &[]).unwrap();
    let again = with.clone();
    isolate(&mut with, &allow, &[]).unwrap();
    assert_eq!(with, again, "idempotent with allowed destinations too");
    let rules = with["routing"]["rules"].as_array().unwrap();
    assert_eq!(rules[1], json!({"type": "field", "ip": ["127.0.0.1"], "port": "8080", "outboundTag": "direct"}));
    assert_eq!(rules[2], json!({"type": "field", "ip": ["::1"], "port": "9090", "outboundTag": "direct"}));
    assert_eq!(rules[3]["outboundTag"], "block");
    assert_eq!(isolation_gap(&with, &allow, &[]), None, "configured exceptions are known");
    assert!(isolation_gap(&with, &[], &[]).is_some_and(|g| g.contains("in the way")), "unknown ones are reported");
    assert_v2ray_accepts(&with.to_string());
}

#[test]
fn an_operators_base_gets_isolation_ahead_of_its_own_rules() {
    let mut custom = json!({
        "api": {"tag": "ctl", "services": ["HandlerService", "StatsService"]},
        "inbounds": [{"tag": "proxy", "port": 443, "protocol": "vless", "settings": {"clients": [], "decryption": "none"}}],
        "outbounds": [{"tag": "out", "protocol": "freedom"}],
        "routing": {"domainStrategy": "IPIfNonMatch", "rules": [
            {"type": "field", "network": "tcp,udp", "outboundTag": "out"},
            {"type": "field", "inboundTag": ["ctl"], "outboundTag": "ctl"},
            {"type": "field", "protocol": ["bittorrent"], "outboundTag": "out"}
        ]}
    });
    assert!(isolation_gap(&custom, &[], &[]).is_some_and(|g| g.contains("no blackhole")));
    isolate(&mut custom, &[allowed("10.9.0.0/16")], &[]).unwrap();
    let rules = custom["routing"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["outboundTag"], "ctl", "the API's rule first");
    assert_eq!(rules[1], json!({"type": "field", "ip": ["10.9.0.0/16"], "outboundTag": "out"}));
    assert_eq!(rules[3]["ip"], json!(BLOCKED_NETWORKS));
    assert_eq!(rules[4]["network"], "tcp,udp", "a catch-all of the operator's comes after the blocking rules");
    assert_eq!(rules[5]["protocol"], json!(["bittorrent"]));
    assert_eq!(custom["routing"]["domainStrategy"], "IPOnDemand", "names are resolved when the block looks at them");
    assert_eq!(isolation_gap(&custom, &[allowed("10.9.0.0/16")], &[]), None);

    let mut clash =
        json!({"outbounds": [{"tag": "out", "protocol": "freedom"}, {"tag": "block", "protocol": "freedom"}]});
    assert!(matches!(isolate(&mut clash, &[], &[]), Err(RenderError::InvalidParams(_))));
    let mut empty = json!({});
    isolate(&mut empty, &[], &[]).unwrap();
    assert_eq!(empty["outbounds"][0]["protocol"], "freedom", "never make the blackhole the default route");
    assert_eq!(isolation_gap(&empty, &[], &[]), None);
}

#[test]
fn gaps_in_a_nodes_config_are_named() {
    let unblocked = json!({
        "outbounds": [{"tag": "direct", "protocol": "freedom"}],
        "routing": {"rules": [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]}
    });
    assert!(isolation_gap(&unblocked, &[], &[]).unwrap().contains("no blackhole"));

    let mut partial = base();
    partial["routing"]["rules"][2]["ip"] = json!(["127.0.0.0/8"]);
    assert!(isolation_gap(&partial, &[], &[]).unwrap().contains("10.0.0.0/8"));

    let mut narrowed = base();
    narrowed["routing"]["rules"][2]["inboundTag"] = json!(["other"]);
    assert!(isolation_gap(&narrowed, &[], &[]).is_some(), "a block for another inbound only does not count");

    let mut bypass = base();
    bypass["routing"]["rules"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"type": "field", "port": "22", "outboundTag": "direct"}));
    assert!(isolation_gap(&bypass, &[], &[]).unwrap().contains("in the way"));

    for strategy in ["AsIs", "IPIfNonMatch"] {
        let mut lazy = base();
        lazy["routing"]["domainStrategy"] = json!(strategy);
        assert!(isolation_gap(&lazy, &[], &[]).unwrap().contains("domainStrategy"), "{strategy}");
    }
}
