use serde_json::json;

use super::*;
use crate::provision::render::tests::assert_v2ray_accepts;

const ID: Uuid = Uuid::from_u128(0x6f1c_1f0e_9f5c_4c43_9d0a_1d7f_2b2c_9a11);

/// The JSON inside a `vmess://` link.
fn vmess_json(link: &str) -> Value {
    let payload = link.strip_prefix("vmess://").unwrap();
    serde_json::from_slice(&STANDARD.decode(payload).unwrap()).unwrap()
}

#[test]
fn a_vmess_link_is_base64_json_of_strings_with_aid_0() {
    let link = vmess_link("node1.example.com", 443, ID, "Germany 1");
    let json = vmess_json(&link);
    assert_eq!(
        json,
        json!({
            "v": "2", "ps": "Germany 1", "add": "node1.example.com", "port": "443",
            "id": ID.to_string(), "aid": "0", "scy": "auto", "net": "tcp", "type": "none",
            "host": "", "path": "", "tls": "", "sni": ""
        })
    );
    assert!(json.as_object().unwrap().values().all(Value::is_string));
    // Standard alphabet with padding, as v2rayN writes it.
    let payload = link.strip_prefix("vmess://").unwrap();
    assert_eq!(payload.len() % 4, 0);
    assert!(!payload.contains(['-', '_']));
}

#[test]
fn a_vmess_link_keeps_the_v2rayn_field_order() {
    let payload = vmess_json_text(&vmess_link("h.example", 1, ID, "n"));
    assert!(payload.starts_with(r#"{"v":"2","ps":"n","add":"h.example","port":"1","id":"#));
    assert!(payload.ends_with(r#""tls":"","sni":""}"#));
}

fn vmess_json_text(link: &str) -> String {
    let payload = link.strip_prefix("vmess://").unwrap();
    String::from_utf8(STANDARD.decode(payload).unwrap()).unwrap()
}

#[test]
fn a_vless_link_has_the_checked_shape() {
    assert_eq!(
        vless_link("node1.example.com", 8443, ID, "DE-1"),
        format!("vless://{ID}@node1.example.com:8443?encryption=none&security=none&type=tcp#DE-1")
    );
}

#[test]
fn both_links_round_trip_through_the_parser() {
    for protocol in [Protocol::Vmess, Protocol::Vless] {
        for host in ["node1.example.com", "203.0.113.7", "2001:db8::1"] {
            let link = share_link(protocol, host, 10086, ID, "Frankfurt #2");
            let parsed = parse_link(&link).unwrap();
            assert_eq!(
                parsed,
                ParsedLink {
                    protocol,
                    host: host.to_owned(),
                    port: 10086,
                    uuid: ID,
                    name: "Frankfurt #2".to_owned(),
                    network: "tcp".to_owned(),
                    security: "none".to_owned(),
                    alter_id: 0,
                },
                "{link}"
            );
        }
    }
}

#[test]
fn names_with_spaces_emoji_and_persian_are_encoded_and_decode_back() {
    for name in ["Germany 1", "🇩🇪 Frankfurt ⚡", "سرور آلمان ۱", "a&b?c#d%e/f+g"] {
        let link = vless_link("node.example", 443, ID, name);
        let fragment = link.split_once('#').unwrap().1;
        assert!(fragment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{fragment}");
        assert_eq!(parse_link(&link).unwrap().name, name);
        assert_eq!(parse_link(&vmess_link("node.example", 443, ID, name)).unwrap().name, name);
    }
    assert!(vless_link("h.example", 1, ID, "a b").ends_with("#a%20b"));
}

#[test]
fn ipv6_hosts_are_bracketed_in_vless_and_bare_in_vmess() {
    let vless = vless_link("2001:db8::1", 443, ID, "v6");
    assert!(vless.contains("@[2001:db8::1]:443?"), "{vless}");
    // Already bracketed input is not bracketed twice.
    assert_eq!(vless_link("[2001:db8::1]", 443, ID, "v6"), vless);
    assert_eq!(vmess_json(&vmess_link("[2001:db8::1]", 443, ID, "v6"))["add"], "2001:db8::1");
}

#[test]
fn the_parser_takes_common_variants_from_other_panels() {
    let numeric = json!({"v": "2", "ps": "x", "add": "h.example", "port": 443, "id": ID.to_string(),
                         "aid": 0, "net": "ws", "tls": "tls"});
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(numeric.to_string());
    let parsed = parse_link(&format!("vmess://{unpadded}")).unwrap();
    assert_eq!((parsed.port, parsed.alter_id), (443, 0));
    assert_eq!((parsed.network.as_str(), parsed.security.as_str()), ("ws", "tls"));

    let slash = format!("vless://{ID}@h.example:443/?type=ws&security=tls&encryption=none#n");
    let parsed = parse_link(&slash).unwrap();
    assert_eq!((parsed.network.as_str(), parsed.security.as_str()), ("ws", "tls"));
    let bare = parse_link(&format!("vless://{ID}@h.example:443")).unwrap();
    assert_eq!((bare.name.as_str(), bare.network.as_str()), ("", "tcp"));
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
    let links = [vmess_link("a.example", 1, ID, "A"), vless_link("b.example", 2, ID, "B ب")];
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

#[test]
fn v2ray_accepts_client_configs_built_from_our_links() {
    for protocol in [Protocol::Vmess, Protocol::Vless] {
        for host in ["127.0.0.1", "::1"] {
            let parsed = parse_link(&share_link(protocol, host, 10086, ID, "test")).unwrap();
            let client = json!({
                "log": {"loglevel": "warning"},
                "inbounds": [{"tag": "socks", "listen": "127.0.0.1", "port": 1080,
                              "protocol": "socks", "settings": {"udp": false}}],
                "outbounds": [parsed.outbound("proxy")]
            });
            if !assert_v2ray_accepts(&client.to_string()) {
                return;
            }
        }
    }
}

#[test]
fn outbounds_carry_the_links_fields() {
    let parsed = parse_link(&vmess_link("h.example", 443, ID, "n")).unwrap();
    let out = parsed.outbound("proxy");
    assert_eq!(out["protocol"], "vmess");
    assert_eq!(out["settings"]["vnext"][0]["address"], "h.example");
    assert_eq!(out["settings"]["vnext"][0]["port"], 443);
    assert_eq!(out["settings"]["vnext"][0]["users"][0]["id"], ID.to_string());
    assert_eq!(out["settings"]["vnext"][0]["users"][0]["alterId"], 0);
    let vless = parse_link(&vless_link("h.example", 443, ID, "n")).unwrap().outbound("p");
    assert_eq!(vless["settings"]["vnext"][0]["users"][0]["encryption"], "none");
}
