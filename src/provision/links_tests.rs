use serde_json::json;

use super::*;
use crate::domain::inbound::RealitySpec;
use crate::domain::server::Core;
use crate::provision::render::tests::assert_v2ray_accepts;

const ID: Uuid = Uuid::from_u128(0x6f1c_1f0e_9f5c_4c43_9d0a_1d7f_2b2c_9a11);
const PBK: &str = "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw";
const SID: &str = "6ba85179e30d4fc2";

/// The legacy single inbound: plain TCP, no TLS.
fn tcp(protocol: Protocol) -> InboundSpec {
    InboundSpec::plain_tcp("proxy", protocol, 10086)
}

/// An inbound as an operator would configure it: `/ws` path, `svc` gRPC service, a certificate with SNI
/// `node.example.com` and ALPN, or REALITY borrowing `www.microsoft.com` with a `firefox` fingerprint.
fn inbound(protocol: Protocol, transport: Transport, security: Security) -> InboundSpec {
    let mut spec = InboundSpec::plain_tcp("in", protocol, 8443);
    spec.transport = transport;
    spec.security = security;
    match transport {
        Transport::Tcp => {}
        Transport::Ws => spec.path = Some("/ws".to_owned()),
        Transport::Grpc => spec.service_name = Some("svc".to_owned()),
    }
    match security {
        Security::None => {}
        Security::Tls => {
            spec.cert_path = Some("/etc/vpnshop/tls/fullchain.pem".to_owned());
            spec.key_path = Some("/etc/vpnshop/tls/privkey.pem".to_owned());
            spec.sni = Some("node.example.com".to_owned());
            spec.alpn = match transport {
                Transport::Ws => vec!["http/1.1".to_owned()],
                Transport::Tcp | Transport::Grpc => vec!["h2".to_owned(), "http/1.1".to_owned()],
            };
        }
        Security::Reality => {
            spec.fingerprint = Some("firefox".to_owned());
            spec.reality = Some(RealitySpec {
                public_key: PBK.to_owned(),
                private_key_file: "/etc/vpnshop/reality.key".to_owned(),
                short_ids: vec![SID.to_owned(), "ab".to_owned()],
                server_names: vec!["www.microsoft.com".to_owned(), "microsoft.com".to_owned()],
                dest: "www.microsoft.com:443".to_owned(),
            });
        }
    }
    spec
}

/// A WebSocket + TLS inbound behind a CDN: customers connect to `cdn.example.net:2053`.
fn behind_cdn(protocol: Protocol) -> InboundSpec {
    let mut spec = inbound(protocol, Transport::Ws, Security::Tls);
    spec.sni = None;
    spec.cdn = true;
    spec.public_host = Some("cdn.example.net".to_owned());
    spec.public_port = Some(2053);
    spec
}

/// Every inbound shape we sell (plus the legacy VLESS without TLS), each checked valid where it is sold.
fn every_inbound() -> Vec<InboundSpec> {
    let mut all = Vec::new();
    for protocol in [Protocol::Vmess, Protocol::Vless] {
        for transport in [Transport::Tcp, Transport::Ws, Transport::Grpc] {
            for security in [Security::None, Security::Tls, Security::Reality] {
                let spec = inbound(protocol, transport, security);
                let legacy_vless =
                    protocol == Protocol::Vless && security == Security::None && transport == Transport::Tcp;
                if legacy_vless || spec.validate(Core::Xray).is_ok() {
                    all.push(spec);
                }
            }
        }
        all.push(behind_cdn(protocol));
    }
    for spec in &all[..] {
        let legacy_vless = spec.protocol == Protocol::Vless && spec.security == Security::None;
        assert!(legacy_vless || spec.validate(Core::Xray).is_ok(), "{spec:?}");
    }
    // VMess: 3 transports × none/TLS + CDN; VLESS: legacy TCP, 3 × TLS, REALITY over TCP and gRPC, CDN.
    assert_eq!(all.len(), 7 + 7, "{all:#?}");
    all
}

/// What the parser must give back for `spec`'s link on a node at `node_host`, from the inbound's own rules.
fn expected(spec: &InboundSpec, node_host: &str, name: &str) -> ParsedLink {
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    let reality = spec.reality.as_ref();
    ParsedLink {
        protocol: spec.protocol,
        host: spec.connect_host(node_host).trim_matches(['[', ']']).to_owned(),
        port: spec.connect_port(),
        uuid: ID,
        name: name.to_owned(),
        network: spec.transport.as_str().to_owned(),
        security: spec.security.as_str().to_owned(),
        alter_id: 0,
        ws_host: (spec.transport == Transport::Ws).then(|| spec.ws_host(node_host)).and_then(some),
        path: (spec.transport == Transport::Ws).then(|| spec.ws_path().to_owned()),
        service_name: spec.service_name.clone(),
        sni: spec.server_name(node_host),
        alpn: if spec.security == Security::Tls { spec.alpn.clone() } else { Vec::new() },
        fingerprint: spec.link_fingerprint().map(str::to_owned),
        public_key: reality.map(|r| r.public_key.clone()),
        short_id: reality.map(|r| r.short_ids[0].clone()),
        spider_x: reality.map(|_| "/".to_owned()),
        flow: spec.flow().map(str::to_owned),
    }
}

/// The JSON inside a `vmess://` link.
fn vmess_json(link: &str) -> Value {
    serde_json::from_str(&vmess_json_text(link)).unwrap()
}

fn vmess_json_text(link: &str) -> String {
    let payload = link.strip_prefix("vmess://").unwrap();
    String::from_utf8(STANDARD.decode(payload).unwrap()).unwrap()
}

#[test]
fn every_inbound_s_link_round_trips_every_field() {
    for spec in every_inbound() {
        for node_host in ["node1.example.com", "203.0.113.7", "2001:db8::1"] {
            let link = share_link(&spec, node_host, ID, "Frankfurt #2");
            let parsed = parse_link(&link).unwrap();
            assert_eq!(parsed, expected(&spec, node_host, "Frankfurt #2"), "{link}");
        }
    }
}

#[test]
fn the_round_trip_covers_what_each_kind_of_inbound_adds() {
    let p = |spec: &InboundSpec| parse_link(&share_link(spec, "node1.example.com", ID, "n")).unwrap();
    let ws = p(&inbound(Protocol::Vmess, Transport::Ws, Security::Tls));
    assert_eq!((ws.path.as_deref(), ws.ws_host.as_deref()), (Some("/ws"), Some("node.example.com")));
    assert_eq!((ws.sni.as_deref(), ws.fingerprint.as_deref()), (Some("node.example.com"), Some("chrome")));
    assert_eq!(ws.alpn, ["http/1.1"]);
    let grpc = p(&inbound(Protocol::Vmess, Transport::Grpc, Security::Tls));
    assert_eq!((grpc.service_name.as_deref(), grpc.path.as_deref()), (Some("svc"), None));
    assert_eq!(grpc.alpn, ["h2", "http/1.1"]);
    let reality = p(&inbound(Protocol::Vless, Transport::Tcp, Security::Reality));
    assert_eq!(reality.public_key.as_deref(), Some(PBK));
    assert_eq!(reality.short_id.as_deref(), Some(SID));
    assert_eq!(reality.sni.as_deref(), Some("www.microsoft.com"));
    assert_eq!(reality.fingerprint.as_deref(), Some("firefox"));
    assert_eq!(reality.flow.as_deref(), Some("xtls-rprx-vision"));
    let cdn = p(&behind_cdn(Protocol::Vless));
    assert_eq!((cdn.host.as_str(), cdn.port), ("cdn.example.net", 2053));
    assert_eq!((cdn.sni.as_deref(), cdn.ws_host.as_deref()), (Some("cdn.example.net"), Some("cdn.example.net")));
    let plain = p(&tcp(Protocol::Vmess));
    assert_eq!((plain.sni, plain.fingerprint, plain.path, plain.alpn), (None, None, None, Vec::<String>::new()));
}

#[test]
fn a_vless_ws_tls_link_is_exactly_what_v2rayn_writes() {
    let mut spec = inbound(Protocol::Vless, Transport::Ws, Security::Tls);
    spec.port = 443;
    assert_eq!(
        share_link(&spec, "node1.example.com", ID, "DE 1"),
        format!(
            "vless://{ID}@node1.example.com:443?encryption=none&security=tls&type=ws&host=node.example.com\
             &path=%2Fws&sni=node.example.com&alpn=http%2F1.1&fp=chrome#DE%201"
        )
    );
}

#[test]
fn a_vmess_ws_tls_payload_has_v2rayn_s_fields_in_its_order() {
    let mut spec = inbound(Protocol::Vmess, Transport::Ws, Security::Tls);
    spec.port = 443;
    let link = share_link(&spec, "node1.example.com", ID, "DE 1");
    assert_eq!(
        vmess_json_text(&link),
        format!(
            concat!(
                r#"{{"v":"2","ps":"DE 1","add":"node1.example.com","port":"443","id":"{}","aid":"0","scy":"auto","#,
                r#""net":"ws","type":"none","host":"node.example.com","path":"/ws","tls":"tls","#,
                r#""sni":"node.example.com","alpn":"http/1.1","fp":"chrome"}}"#
            ),
            ID
        )
    );
    // Standard alphabet with padding, as v2rayN writes it.
    let payload = link.strip_prefix("vmess://").unwrap();
    assert_eq!(payload.len() % 4, 0);
    assert!(!payload.contains(['-', '_']));
}

#[test]
fn a_plain_vmess_link_keeps_every_field_a_string_and_aid_0() {
    let json = vmess_json(&share_link(&tcp(Protocol::Vmess), "node1.example.com", ID, "Germany 1"));
    assert_eq!(
        json,
        json!({
            "v": "2", "ps": "Germany 1", "add": "node1.example.com", "port": "10086",
            "id": ID.to_string(), "aid": "0", "scy": "auto", "net": "tcp", "type": "none",
            "host": "", "path": "", "tls": "", "sni": "", "alpn": "", "fp": ""
        })
    );
    assert!(json.as_object().unwrap().values().all(Value::is_string));
}

#[test]
fn a_vmess_grpc_link_puts_the_service_name_in_path_and_gun_in_type() {
    let json = vmess_json(&share_link(&inbound(Protocol::Vmess, Transport::Grpc, Security::Tls), "h.example", ID, "n"));
    assert_eq!((&json["net"], &json["type"], &json["path"]), (&json!("grpc"), &json!("gun"), &json!("svc")));
    assert_eq!((&json["host"], &json["alpn"]), (&json!(""), &json!("h2,http/1.1")));
}

#[test]
fn the_legacy_vless_link_is_unchanged() {
    assert_eq!(
        share_link(&InboundSpec::plain_tcp("proxy", Protocol::Vless, 8443), "node1.example.com", ID, "DE-1"),
        format!("vless://{ID}@node1.example.com:8443?encryption=none&security=none&type=tcp#DE-1")
    );
}

#[test]
fn a_vless_reality_link_has_pbk_sid_sni_fp_spx_and_the_vision_flow() {
    let spec = inbound(Protocol::Vless, Transport::Tcp, Security::Reality);
    assert_eq!(
        share_link(&spec, "203.0.113.7", ID, "NL"),
        format!(
            "vless://{ID}@203.0.113.7:8443?encryption=none&security=reality&type=tcp&sni=www.microsoft.com\
             &fp=firefox&pbk={PBK}&sid={SID}&spx=%2F&flow=xtls-rprx-vision#NL"
        )
    );
    // Over gRPC: the service name and mode, no flow (Vision is TCP only), no ALPN.
    let grpc = share_link(&inbound(Protocol::Vless, Transport::Grpc, Security::Reality), "203.0.113.7", ID, "NL");
    assert!(grpc.contains("&type=grpc&sni=www.microsoft.com&fp=firefox&serviceName=svc&mode=gun&pbk="), "{grpc}");
    assert!(!grpc.contains("flow=") && !grpc.contains("alpn="), "{grpc}");
}

#[test]
fn a_vless_grpc_tls_link_has_the_service_name_and_gun_mode() {
    let link = share_link(&inbound(Protocol::Vless, Transport::Grpc, Security::Tls), "h.example", ID, "n");
    assert!(
        link.ends_with(
            "?encryption=none&security=tls&type=grpc&sni=node.example.com&alpn=h2%2Chttp%2F1.1&fp=chrome\
             &serviceName=svc&mode=gun#n"
        ),
        "{link}"
    );
}

#[test]
fn a_tls_link_to_an_ip_address_carries_no_sni_and_no_host() {
    let mut spec = inbound(Protocol::Vless, Transport::Ws, Security::Tls);
    spec.sni = None;
    let link = share_link(&spec, "2001:db8::1", ID, "v6");
    assert!(link.starts_with(&format!("vless://{ID}@[2001:db8::1]:8443?")), "{link}");
    assert!(!link.contains("sni=") && !link.contains("host="), "{link}");
    let json = vmess_json(&share_link(&InboundSpec { protocol: Protocol::Vmess, ..spec }, "[2001:db8::1]", ID, "v6"));
    assert_eq!((&json["add"], &json["sni"], &json["host"]), (&json!("2001:db8::1"), &json!(""), &json!("")));
}

#[test]
fn ipv6_hosts_are_bracketed_in_vless_and_bare_in_vmess() {
    let vless = share_link(&tcp(Protocol::Vless), "2001:db8::1", ID, "v6");
    assert!(vless.contains("@[2001:db8::1]:10086?"), "{vless}");
    // Already bracketed input is not bracketed twice.
    assert_eq!(share_link(&tcp(Protocol::Vless), "[2001:db8::1]", ID, "v6"), vless);
    assert_eq!(vmess_json(&share_link(&tcp(Protocol::Vmess), "[2001:db8::1]", ID, "v6"))["add"], "2001:db8::1");
}

#[test]
fn names_with_spaces_emoji_and_persian_are_encoded_and_decode_back() {
    for name in ["Germany 1", "🇩🇪 Frankfurt ⚡", "سرور آلمان ۱", "a&b?c#d%e/f+g", "x=y&sni=evil.example#z"]
    {
        for spec in every_inbound() {
            let link = share_link(&spec, "node.example", ID, name);
            let parsed = parse_link(&link).unwrap();
            assert_eq!(parsed, expected(&spec, "node.example", name), "{link}");
            if spec.protocol == Protocol::Vless {
                let fragment = link.split_once('#').unwrap().1;
                assert!(fragment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{fragment}");
            }
        }
    }
    assert!(share_link(&tcp(Protocol::Vless), "h.example", ID, "a b#c&d").ends_with("#a%20b%23c%26d"));
}

#[test]
fn query_values_are_percent_encoded() {
    let mut spec = inbound(Protocol::Vless, Transport::Ws, Security::Tls);
    spec.path = Some("/a&b=c/%".to_owned());
    let link = share_link(&spec, "h.example", ID, "n");
    assert!(link.contains("&path=%2Fa%26b%3Dc%2F%25&"), "{link}");
    assert_eq!(parse_link(&link).unwrap().path.as_deref(), Some("/a&b=c/%"));
}

#[test]
fn the_parser_takes_common_variants_from_other_panels() {
    let numeric = json!({"v": "2", "ps": "x", "add": "h.example", "port": 443, "id": ID.to_string(),
                         "aid": 0, "net": "ws", "tls": "tls", "path": "/ray", "host": "cdn.example"});
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(numeric.to_string());
    let parsed = parse_link(&format!("vmess://{unpadded}")).unwrap();
    assert_eq!((parsed.port, parsed.alter_id), (443, 0));
    assert_eq!((parsed.network.as_str(), parsed.security.as_str()), ("ws", "tls"));
    assert_eq!((parsed.path.as_deref(), parsed.ws_host.as_deref()), (Some("/ray"), Some("cdn.example")));
    assert_eq!((parsed.sni, parsed.alpn), (None, Vec::<String>::new()));

    // Unencoded values, another order, a `/` before the query (as some panels write them).
    let slash = format!(
        "vless://{ID}@h.example:443/?type=ws&encryption=none&path=/ws?ed%3D2560&security=tls&alpn=h2,http/1.1\
         &fp=&sni=s.example#n"
    );
    let parsed = parse_link(&slash).unwrap();
    assert_eq!((parsed.network.as_str(), parsed.security.as_str()), ("ws", "tls"));
    assert_eq!(parsed.path.as_deref(), Some("/ws?ed=2560"));
    assert_eq!(
        (parsed.alpn, parsed.fingerprint, parsed.sni.as_deref()),
        (vec!["h2".into(), "http/1.1".into()], None, Some("s.example"))
    );
    let bare = parse_link(&format!("vless://{ID}@h.example:443")).unwrap();
    assert_eq!((bare.name.as_str(), bare.network.as_str(), bare.security.as_str()), ("", "tcp", "none"));
}

#[test]
fn broken_links_are_refused() {
    let cases = [
        ("ss://abc", LinkError::UnknownScheme),
        ("vless://h.example:443", LinkError::Missing("id")),
        (&format!("vless://{ID}@h.example")[..], LinkError::Missing("port")),
        (&format!("vless://{ID}@h.example:0")[..], LinkError::BadPort("0".to_owned())),
        (&format!("vless://{ID}@h.example:99999")[..], LinkError::BadPort("99999".to_owned())),
        ("vless://not-a-uuid@h.example:1", LinkError::BadUuid("not-a-uuid".to_owned())),
        (&format!("vless://{ID}@bad host:1")[..], LinkError::BadHost("bad host".to_owned())),
        (&format!("vless://{ID}@h.example:1#%FF")[..], LinkError::BadName),
    ];
    for (link, expected) in cases {
        assert_eq!(parse_link(link), Err(expected), "{link}");
    }
    assert!(matches!(parse_link("vmess://!!!"), Err(LinkError::BadPayload(_))));
    let no_port = STANDARD.encode(json!({"add": "h.example", "id": ID.to_string()}).to_string());
    assert_eq!(parse_link(&format!("vmess://{no_port}")), Err(LinkError::Missing("port")));
}

#[test]
fn the_feed_body_decodes_to_the_links() {
    let links = [
        share_link(&tcp(Protocol::Vmess), "a.example", ID, "A"),
        share_link(&tcp(Protocol::Vless), "b.example", ID, "B ب"),
    ];
    let body = feed_body(&links);
    let decoded = String::from_utf8(STANDARD.decode(&body).unwrap()).unwrap();
    assert_eq!(decoded, format!("{}\n{}", links[0], links[1]));
    assert_eq!(decoded.lines().collect::<Vec<_>>(), links);
    assert_eq!(feed_body::<&str>(&[]), "");
}

#[test]
fn subscription_userinfo_counts_bytes_and_unlimited_is_zero() {
    assert_eq!(
        subscription_userinfo(1024, 5_368_709_120, Some(32_212_254_720), 1_767_225_600),
        "upload=1024; download=5368709120; total=32212254720; expire=1767225600"
    );
    assert_eq!(subscription_userinfo(0, 0, None, 1_767_225_600), "upload=0; download=0; total=0; expire=1767225600");
    assert_eq!(subscription_userinfo(0, 0, None, -5), "upload=0; download=0; total=0; expire=0");
}

#[test]
fn the_profile_title_is_base64_of_utf8() {
    let title = profile_title("وی‌پی‌ان شاپ 🚀");
    let encoded = title.strip_prefix("base64:").unwrap();
    assert!(encoded.is_ascii());
    assert_eq!(String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap(), "وی‌پی‌ان شاپ 🚀");
}

/// A client config around `outbound`, trusting a private CA the way our integration tests do.
fn client_config(mut outbound: Value) -> String {
    if let Some(tls) = outbound["streamSettings"].get_mut("tlsSettings").and_then(Value::as_object_mut) {
        tls.insert("disableSystemRoot".into(), json!(true));
        tls.insert("certificates".into(), json!([{"usage": "verify", "certificateFile": "/etc/hostname"}]));
    }
    json!({
        "log": {"loglevel": "warning"},
        "inbounds": [{"tag": "socks", "listen": "127.0.0.1", "port": 1080, "protocol": "socks",
                      "settings": {"udp": false}}],
        "outbounds": [outbound]
    })
    .to_string()
}

#[test]
fn v2ray_accepts_client_configs_built_from_tcp_and_ws_tls_links() {
    for protocol in [Protocol::Vmess, Protocol::Vless] {
        let mut cases = vec![
            inbound(protocol, Transport::Ws, Security::Tls),
            inbound(protocol, Transport::Tcp, Security::Tls),
            behind_cdn(protocol),
        ];
        if protocol == Protocol::Vmess {
            cases.push(inbound(protocol, Transport::Ws, Security::None));
        }
        cases.push(tcp(protocol));
        for spec in cases {
            for host in ["127.0.0.1", "::1", "node.example.com"] {
                let parsed = parse_link(&share_link(&spec, host, ID, "test")).unwrap();
                let outbound = parsed.outbound("proxy");
                // The uTLS fingerprint is there: v2ray 4.34 must not refuse it.
                if spec.security == Security::Tls {
                    assert_eq!(outbound["streamSettings"]["tlsSettings"]["fingerprint"], "chrome");
                }
                if !assert_v2ray_accepts(&client_config(outbound)) {
                    return;
                }
            }
        }
    }
}

#[test]
fn a_ws_tls_outbound_has_full_stream_settings() {
    let parsed = parse_link(&share_link(&behind_cdn(Protocol::Vless), "203.0.113.7", ID, "n")).unwrap();
    let out = parsed.outbound("proxy");
    assert_eq!(out["protocol"], "vless");
    assert_eq!(out["settings"]["vnext"][0]["address"], "cdn.example.net");
    assert_eq!(out["settings"]["vnext"][0]["port"], 2053);
    assert_eq!(
        out["settings"]["vnext"][0]["users"][0],
        json!({"id": ID.to_string(), "encryption": "none", "level": 0})
    );
    assert_eq!(
        out["streamSettings"],
        json!({
            "network": "ws", "security": "tls",
            "wsSettings": {"path": "/ws", "headers": {"Host": "cdn.example.net"}},
            "tlsSettings": {"serverName": "cdn.example.net", "fingerprint": "chrome", "alpn": ["http/1.1"]}
        })
    );
}

#[test]
fn a_grpc_outbound_names_its_service() {
    let parsed =
        parse_link(&share_link(&inbound(Protocol::Vmess, Transport::Grpc, Security::Tls), "h.example", ID, "n"));
    let out = parsed.unwrap().outbound("proxy");
    assert_eq!(out["settings"]["vnext"][0]["users"][0]["alterId"], 0);
    assert_eq!(
        out["streamSettings"],
        json!({
            "network": "grpc", "security": "tls",
            "grpcSettings": {"serviceName": "svc"},
            "tlsSettings": {"serverName": "node.example.com", "fingerprint": "chrome", "alpn": ["h2", "http/1.1"]}
        })
    );
}

#[test]
fn a_reality_outbound_has_reality_settings_and_the_vision_flow() {
    let link = share_link(&inbound(Protocol::Vless, Transport::Tcp, Security::Reality), "203.0.113.7", ID, "n");
    let out = parse_link(&link).unwrap().outbound("proxy");
    assert_eq!(out["settings"]["vnext"][0]["users"][0]["flow"], "xtls-rprx-vision");
    assert_eq!(
        out["streamSettings"],
        json!({
            "network": "tcp", "security": "reality",
            "realitySettings": {"serverName": "www.microsoft.com", "fingerprint": "firefox", "publicKey": PBK,
                                "shortId": SID, "spiderX": "/"}
        })
    );
}

#[test]
fn a_plain_outbound_has_no_tls_settings() {
    let out = parse_link(&share_link(&tcp(Protocol::Vmess), "h.example", ID, "n")).unwrap().outbound("proxy");
    assert_eq!(out["streamSettings"], json!({"network": "tcp", "security": "none"}));
    assert_eq!(out["settings"]["vnext"][0]["users"][0]["id"], ID.to_string());
}
