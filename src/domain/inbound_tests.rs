use super::*;

fn tls(tag: &str, protocol: Protocol, transport: Transport, port: u16) -> InboundSpec {
    InboundSpec {
        security: Security::Tls,
        transport,
        cert_path: Some("/etc/v2ray/tls/fullchain.pem".into()),
        key_path: Some("/etc/v2ray/tls/privkey.pem".into()),
        sni: Some("node.example.com".into()),
        ..InboundSpec::plain_tcp(tag, protocol, port)
    }
}

fn reality() -> InboundSpec {
    InboundSpec {
        security: Security::Reality,
        reality: Some(RealitySpec {
            public_key: "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw".into(),
            private_key_file: "/usr/local/etc/xray/reality.key".into(),
            short_ids: vec!["6ba85179e30d4fc2".into(), String::new()],
            server_names: vec!["www.microsoft.com".into()],
            dest: "www.microsoft.com:443".into(),
        }),
        ..InboundSpec::plain_tcp("reality", Protocol::Vless, 443)
    }
}

fn field_of(result: Result<(), InboundError>) -> String {
    result.expect_err("refused").field
}

#[test]
fn vless_without_tls_or_reality_is_refused_and_vmess_plain_is_allowed() {
    let plain = InboundSpec::plain_tcp("proxy", Protocol::Vless, 443);
    let err = plain.validate(Core::V2ray).unwrap_err();
    assert_eq!(err.field, "security");
    assert!(err.message.contains("TLS or REALITY"), "{err}");
    InboundSpec::plain_tcp("proxy", Protocol::Vmess, 443).validate(Core::V2ray).unwrap();
    for protocol in [Protocol::Vmess, Protocol::Vless] {
        for transport in [Transport::Tcp, Transport::Ws] {
            tls("t", protocol, transport, 443).validate(Core::V2ray).unwrap();
        }
    }
}

#[test]
fn tls_needs_certificate_paths_and_checks_sni_alpn_and_fingerprint() {
    let base = tls("t", Protocol::Vless, Transport::Ws, 443);
    assert_eq!(field_of(InboundSpec { cert_path: None, ..base.clone() }.validate(Core::V2ray)), "cert_path");
    assert_eq!(
        field_of(InboundSpec { key_path: Some("relative.pem".into()), ..base.clone() }.validate(Core::V2ray)),
        "key_path"
    );
    assert_eq!(
        field_of(InboundSpec { key_path: Some("/etc/a b".into()), ..base.clone() }.validate(Core::V2ray)),
        "key_path"
    );
    assert_eq!(field_of(InboundSpec { sni: Some("10.0.0.1".into()), ..base.clone() }.validate(Core::V2ray)), "sni");
    assert_eq!(field_of(InboundSpec { alpn: vec!["spdy".into()], ..base.clone() }.validate(Core::V2ray)), "alpn");
    assert_eq!(field_of(InboundSpec { alpn: vec!["h2".into()], ..base.clone() }.validate(Core::V2ray)), "alpn");
    assert_eq!(
        field_of(InboundSpec { fingerprint: Some("netscape".into()), ..base.clone() }.validate(Core::V2ray)),
        "fingerprint"
    );
    InboundSpec { alpn: vec!["http/1.1".into()], fingerprint: Some("firefox".into()), ..base }
        .validate(Core::V2ray)
        .unwrap();
    // TLS-only fields on a plain VMess inbound
    let plain = InboundSpec::plain_tcp("p", Protocol::Vmess, 80);
    assert_eq!(field_of(InboundSpec { sni: Some("a.example".into()), ..plain.clone() }.validate(Core::V2ray)), "sni");
    assert_eq!(field_of(InboundSpec { path: Some("/ws".into()), ..plain }.validate(Core::V2ray)), "path");
}

#[test]
fn grpc_needs_xray_and_a_service_name() {
    let grpc = InboundSpec { service_name: Some("tun".into()), ..tls("g", Protocol::Vless, Transport::Grpc, 443) };
    assert_eq!(field_of(grpc.validate(Core::V2ray)), "transport");
    grpc.validate(Core::Xray).unwrap();
    assert_eq!(field_of(InboundSpec { service_name: None, ..grpc }.validate(Core::Xray)), "service_name");
}

#[test]
fn a_cdn_inbound_is_websocket_or_grpc_over_tls_with_the_cdns_host() {
    let ws = InboundSpec {
        cdn: true,
        public_host: Some("cdn.example.com".into()),
        public_port: Some(8443),
        ..tls("cdn", Protocol::Vless, Transport::Ws, 2053)
    };
    ws.validate(Core::V2ray).unwrap();
    assert_eq!(ws.connect_host("203.0.113.7"), "cdn.example.com");
    assert_eq!(ws.connect_port(), 8443);
    assert_eq!(field_of(InboundSpec { public_host: None, ..ws.clone() }.validate(Core::V2ray)), "public_host");
    let tcp = InboundSpec {
        cdn: true,
        public_host: Some("cdn.example.com".into()),
        ..tls("c", Protocol::Vmess, Transport::Tcp, 443)
    };
    assert_eq!(field_of(tcp.validate(Core::V2ray)), "cdn");
}

#[test]
fn reality_needs_xray_vless_and_valid_keys() {
    let r = reality();
    r.validate(Core::Xray).unwrap();
    assert_eq!(r.flow(), Some(VISION_FLOW));
    assert_eq!(r.server_name("203.0.113.7").as_deref(), Some("www.microsoft.com"));
    assert_eq!(field_of(r.validate(Core::V2ray)), "security");
    let with = |f: &dyn Fn(&mut RealitySpec)| {
        let mut spec = reality();
        f(spec.reality.as_mut().unwrap());
        spec.validate(Core::Xray).map_err(|e| e.field)
    };
    assert_eq!(with(&|r| r.public_key = "short".into()), Err("reality.public_key".into()));
    assert_eq!(with(&|r| r.short_ids = vec!["abc".into()]), Err("reality.short_ids".into()));
    assert_eq!(with(&|r| r.short_ids = vec!["0123456789abcdef01".into()]), Err("reality.short_ids".into()));
    assert_eq!(with(&|r| r.server_names.clear()), Err("reality.server_names".into()));
    assert_eq!(with(&|r| r.dest = "www.microsoft.com".into()), Err("reality.dest".into()));
    assert_eq!(with(&|r| r.private_key_file = "reality.key".into()), Err("reality.private_key_file".into()));
    assert_eq!(field_of(InboundSpec { reality: None, ..reality() }.validate(Core::Xray)), "reality");
    assert_eq!(field_of(InboundSpec { protocol: Protocol::Vmess, ..reality() }.validate(Core::Xray)), "protocol");
    assert_eq!(field_of(InboundSpec { transport: Transport::Ws, ..reality() }.validate(Core::Xray)), "transport");
}

#[test]
fn a_set_of_inbounds_has_unique_tags_and_ports() {
    let a = tls("a", Protocol::Vless, Transport::Tcp, 443);
    let b = tls("b", Protocol::Vmess, Transport::Ws, 8443);
    validate_all(&[a.clone(), b.clone()], Core::V2ray).unwrap();
    assert_eq!(validate_all(&[], Core::V2ray).unwrap_err().field, "inbounds");
    let same_tag = InboundSpec { tag: "a".into(), ..b.clone() };
    assert_eq!(validate_all(&[a.clone(), same_tag], Core::V2ray).unwrap_err().field, "inbounds[1].tag");
    let same_port = InboundSpec { port: 443, ..b };
    assert_eq!(validate_all(&[a.clone(), same_port], Core::V2ray).unwrap_err().field, "inbounds[1].port");
    let bad = InboundSpec { port: 0, ..a.clone() };
    assert_eq!(validate_all(&[a, bad], Core::V2ray).unwrap_err().field, "inbounds[1].port");
}

#[test]
fn labels_name_protocol_transport_and_security() {
    assert_eq!(InboundSpec::plain_tcp("p", Protocol::Vmess, 1).display_label(), "VMess TCP");
    assert_eq!(tls("w", Protocol::Vless, Transport::Ws, 1).display_label(), "VLESS WS TLS");
    assert_eq!(reality().display_label(), "VLESS TCP REALITY");
    let named = InboundSpec { label: Some("Fast".into()), ..reality() };
    assert_eq!(named.display_label(), "Fast");
}

#[test]
fn flags_and_files_parse_into_the_same_spec() {
    let flag = parse_flag(
        "tag=ws, protocol=vless, transport=ws, security=tls, port=2053, path=/ws, sni=node.example.com, \
         cert_path=/etc/v2ray/tls/fullchain.pem, key_path=/etc/v2ray/tls/privkey.pem, alpn=http/1.1, cdn=true, \
         public_host=cdn.example.com, public_port=443",
    )
    .unwrap();
    assert_eq!(flag.transport, Transport::Ws);
    assert_eq!(flag.alpn, vec!["http/1.1".to_owned()]);
    assert!(flag.cdn);
    flag.validate(Core::V2ray).unwrap();
    let toml = r#"
[[inbound]]
tag = "ws"
protocol = "vless"
transport = "ws"
security = "tls"
port = 2053
path = "/ws"
sni = "node.example.com"
cert_path = "/etc/v2ray/tls/fullchain.pem"
key_path = "/etc/v2ray/tls/privkey.pem"
alpn = ["http/1.1"]
cdn = true
public_host = "cdn.example.com"
public_port = 443
"#;
    assert_eq!(parse_file(toml).unwrap(), vec![flag.clone()]);
    let json = serde_json::to_string(&vec![flag.clone()]).unwrap();
    assert_eq!(parse_file(&json).unwrap(), vec![flag.clone()]);
    assert_eq!(parse_file(&format!("{{\"inbounds\": {json}}}")).unwrap(), vec![flag]);

    let r = parse_flag(
        "tag=r,protocol=vless,security=reality,port=443,reality.public_key=Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw,\
         reality.private_key_file=/usr/local/etc/xray/reality.key,reality.short_ids=6ba85179e30d4fc2|,\
         reality.server_names=www.microsoft.com,reality.dest=www.microsoft.com:443",
    )
    .unwrap();
    assert_eq!(r, reality().clone_with_tag("r"));

    assert_eq!(parse_flag("tag=a,port=x").unwrap_err().field, "port");
    assert_eq!(parse_flag("tag=a,tag=b").unwrap_err().field, "tag");
    assert_eq!(parse_flag("tag").unwrap_err().field, "tag");
    assert!(parse_flag("tag=a,protocol=vmess,port=1,colour=red").unwrap_err().message.contains("colour"));
    assert!(parse_file("[[inbound]]\ntag = 1").is_err());
}

impl InboundSpec {
    fn clone_with_tag(&self, tag: &str) -> Self {
        Self { tag: tag.into(), ..self.clone() }
    }
}
