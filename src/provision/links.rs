//! Share links and the subscription feed, in the formats v2rayN, v2rayNG, Hiddify and Streisand import
//! (checked in `shared/specs/v2ray.md`): `vmess://` + base64 JSON, `vless://uuid@host:port?…#name`, the feed
//! body (base64 of the links, one per line) and its `subscription-userinfo` / `profile-title` headers. Also
//! a parser for both link schemes, and the client outbound a parsed link describes.
//!
//! Field names and where each value goes, as checked against:
//! - v2rayN `ServiceLib/Models/VmessQRCode.cs` (the VMess JSON: `v ps add port id aid scy net type host path
//!   tls sni alpn fp`, every value written as a string; gRPC puts its service name in `path` and its mode,
//!   `gun`, in `type`) and `ServiceLib/Handler/Fmt/VmessFmt.cs`;
//! - v2rayN `ServiceLib/Handler/Fmt/VLESSFmt.cs` and `BaseFmt.cs` (`ToUriQuery`/`ResolveUriQuery`: `encryption`,
//!   `security`, `sni`, `fp`, `pbk`, `sid`, `spx`, `alpn` only with TLS, `type`, WebSocket `host`/`path`, gRPC
//!   `serviceName`/`mode`; every value `Uri.EscapeDataString`-encoded; an IPv6 host in brackets);
//! - Xray's "VMessAEAD / VLESS 分享链接标准提案" (XTLS/Xray-core discussion #716), which names the same VLESS
//!   query keys (`type`, `security`, `host`, `path`, `serviceName`, `mode`, `sni`, `alpn`, `fp`, `flow`; REALITY
//!   added `pbk`, `sid`, `spx`).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::domain::inbound::{InboundSpec, Security, Transport};
use crate::domain::server::{Host, Protocol};

/// Bytes percent-encoded in a link's name and query values: everything but RFC 3986 unreserved characters
/// (what v2rayN's `Uri.EscapeDataString` leaves alone), so `/ws` is `%2Fws` and `h2,http/1.1` is
/// `h2%2Chttp%2F1.1`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The REALITY `spiderX` links carry: the first path a REALITY client fetches when it spies (the site root).
const SPIDER_X: &str = "/";

/// The gRPC mode links carry (`gun`: one stream per request, what every client and Xray understand).
const GRPC_MODE: &str = "gun";

/// Decoders that take padded or unpadded input (clients produce both).
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("not a vmess:// or vless:// link")]
    UnknownScheme,
    #[error("the vmess link's payload is not base64 of UTF-8 JSON: {0}")]
    BadPayload(String),
    #[error("the link has no {0}")]
    Missing(&'static str),
    #[error("{0:?} is not a port")]
    BadPort(String),
    #[error("{0:?} is not a UUID")]
    BadUuid(String),
    #[error("{0:?} is not a host name or IP address")]
    BadHost(String),
    #[error("the link's name is not percent-encoded UTF-8")]
    BadName,
}

/// What a share link says: where to connect, as whom, and how (transport, TLS or REALITY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLink {
    pub protocol: Protocol,
    /// Host name or IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub uuid: Uuid,
    /// The display name (decoded).
    pub name: String,
    /// Transport: `tcp`, `ws`, `grpc`, … (`net` in VMess, `type` in VLESS).
    pub network: String,
    /// `none`, `tls`, `reality` (VMess `tls: ""` reads as `none`).
    pub security: String,
    /// VMess `aid` (0 = AEAD); always 0 for VLESS.
    pub alter_id: u16,
    /// WebSocket `Host` header (`host`).
    pub ws_host: Option<String>,
    /// WebSocket path (`path`).
    pub path: Option<String>,
    /// gRPC service name (VLESS `serviceName`; VMess `path` when `net` is `grpc`).
    pub service_name: Option<String>,
    /// TLS or REALITY server name (`sni`).
    pub sni: Option<String>,
    /// TLS ALPN (`alpn`, comma-separated in links).
    pub alpn: Vec<String>,
    /// uTLS fingerprint (`fp`).
    pub fingerprint: Option<String>,
    /// REALITY public key (`pbk`).
    pub public_key: Option<String>,
    /// REALITY short id (`sid`).
    pub short_id: Option<String>,
    /// REALITY spider path (`spx`).
    pub spider_x: Option<String>,
    /// VLESS flow (`flow`), e.g. `xtls-rprx-vision`.
    pub flow: Option<String>,
}

/// What one inbound's links carry, worked out once for both schemes.
struct LinkFields<'a> {
    /// Unbracketed.
    host: &'a str,
    port: u16,
    network: &'static str,
    security: Security,
    /// WebSocket `Host` header (may be empty: none).
    ws_host: String,
    /// WebSocket path (`/` by default); gRPC keeps its service name apart.
    path: Option<&'a str>,
    service_name: Option<&'a str>,
    sni: Option<String>,
    /// TLS only, as v2rayN writes it.
    alpn: String,
    fingerprint: Option<&'a str>,
    public_key: Option<&'a str>,
    short_id: Option<&'a str>,
    flow: Option<&'static str>,
}

impl<'a> LinkFields<'a> {
    fn of(spec: &'a InboundSpec, node_public_host: &'a str) -> Self {
        let ws = spec.transport == Transport::Ws;
        let grpc = spec.transport == Transport::Grpc;
        let reality = spec.reality.as_ref().filter(|_| spec.security == Security::Reality);
        Self {
            host: unbracket(spec.connect_host(node_public_host)),
            port: spec.connect_port(),
            network: spec.transport.as_str(),
            security: spec.security,
            ws_host: if ws { spec.ws_host(node_public_host) } else { String::new() },
            path: ws.then(|| spec.ws_path()),
            service_name: spec.service_name.as_deref().filter(|_| grpc),
            sni: spec.server_name(node_public_host).filter(|_| spec.security != Security::None),
            alpn: if spec.security == Security::Tls { spec.alpn.join(",") } else { String::new() },
            fingerprint: spec.link_fingerprint(),
            public_key: reality.map(|r| r.public_key.as_str()),
            short_id: reality.and_then(|r| r.short_ids.first()).map(String::as_str),
            flow: spec.flow(),
        }
    }
}

/// The share link of one client on one inbound of a node: [`vmess_link`] or [`vless_link`] by protocol.
pub fn share_link(spec: &InboundSpec, node_public_host: &str, uuid: Uuid, name: &str) -> String {
    match spec.protocol {
        Protocol::Vmess => vmess_link(spec, node_public_host, uuid, name),
        Protocol::Vless => vless_link(spec, node_public_host, uuid, name),
    }
}

/// `vmess://` + standard padded base64 of the v2rayN JSON: every value a string, `aid` "0" (AEAD), `tls`
/// "tls" or "", gRPC's service name in `path` and `gun` in `type`, as v2rayN reads and writes them.
pub fn vmess_link(spec: &InboundSpec, node_public_host: &str, uuid: Uuid, name: &str) -> String {
    let f = LinkFields::of(spec, node_public_host);
    let (kind, path) = match spec.transport {
        Transport::Grpc => (GRPC_MODE, f.service_name.unwrap_or_default()),
        Transport::Tcp | Transport::Ws => ("none", f.path.unwrap_or_default()),
    };
    let payload = VmessJson {
        v: "2",
        ps: name,
        add: f.host,
        port: f.port.to_string(),
        id: uuid.to_string(),
        aid: "0",
        scy: "auto",
        net: f.network,
        kind,
        host: &f.ws_host,
        path,
        tls: match f.security {
            Security::None => "",
            other => other.as_str(),
        },
        sni: f.sni.as_deref().unwrap_or_default(),
        alpn: &f.alpn,
        fp: f.fingerprint.unwrap_or_default(),
    };
    // Serialising a struct of strings cannot fail.
    let text = serde_json::to_string(&payload).unwrap_or_default();
    format!("vmess://{}", STANDARD.encode(text))
}

/// The v2rayN VMess JSON (`VmessQRCode`), fields in the order v2rayN writes them.
#[derive(serde::Serialize)]
struct VmessJson<'a> {
    v: &'a str,
    ps: &'a str,
    add: &'a str,
    port: String,
    id: String,
    aid: &'a str,
    scy: &'a str,
    net: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    host: &'a str,
    path: &'a str,
    tls: &'a str,
    sni: &'a str,
    alpn: &'a str,
    fp: &'a str,
}

/// `vless://<uuid>@<host>:<port>?encryption=none&security=…&type=…[&host=…&path=…][&sni=…&alpn=…&fp=…]
/// [&serviceName=…&mode=gun][&pbk=…&sid=…&spx=%2F][&flow=…]#<name>`: only the parameters that apply, values
/// and name percent-encoded, an IPv6 host in brackets.
pub fn vless_link(spec: &InboundSpec, node_public_host: &str, uuid: Uuid, name: &str) -> String {
    let f = LinkFields::of(spec, node_public_host);
    let host = if f.host.contains(':') { format!("[{}]", f.host) } else { f.host.to_owned() };
    let mut query = vec![("encryption", "none"), ("security", f.security.as_str()), ("type", f.network)];
    let optional = [
        ("host", Some(f.ws_host.as_str())),
        ("path", f.path),
        ("sni", f.sni.as_deref()),
        ("alpn", Some(f.alpn.as_str())),
        ("fp", f.fingerprint),
        ("serviceName", f.service_name),
        ("mode", f.service_name.map(|_| GRPC_MODE)),
        ("pbk", f.public_key),
        ("sid", f.short_id),
        ("spx", f.public_key.map(|_| SPIDER_X)),
        ("flow", f.flow),
    ];
    query.extend(optional.into_iter().filter_map(|(key, value)| Some((key, value.filter(|v| !v.is_empty())?))));
    let query: Vec<String> =
        query.iter().map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, COMPONENT))).collect();
    format!("vless://{uuid}@{host}:{}?{}#{}", f.port, query.join("&"), utf8_percent_encode(name, COMPONENT))
}

/// A subscription feed's body: standard base64 of the links joined by `\n`.
pub fn feed_body<S: AsRef<str>>(links: &[S]) -> String {
    let joined = links.iter().map(AsRef::as_ref).collect::<Vec<_>>().join("\n");
    STANDARD.encode(joined)
}

/// The `subscription-userinfo` header value: `upload=…; download=…; total=…; expire=…` in bytes and unix
/// seconds; an unlimited plan has `total=0`, as clients expect. A negative expiry is written as 0.
pub fn subscription_userinfo(upload: u64, download: u64, total: Option<u64>, expire_unix: i64) -> String {
    format!("upload={upload}; download={download}; total={}; expire={}", total.unwrap_or(0), expire_unix.max(0))
}

/// The `profile-title` header value: `base64:` + base64 of the UTF-8 title (headers are ASCII only).
pub fn profile_title(name: &str) -> String {
    format!("base64:{}", STANDARD.encode(name))
}

/// Parses a `vmess://` or `vless://` link (ours, or the common variants other panels produce: numeric
/// `port`/`aid`, unpadded or URL-safe base64, a `/` before the query).
pub fn parse_link(link: &str) -> Result<ParsedLink, LinkError> {
    let link = link.trim();
    if let Some(payload) = link.strip_prefix("vmess://") {
        parse_vmess(payload)
    } else if let Some(rest) = link.strip_prefix("vless://") {
        parse_vless(rest)
    } else {
        Err(LinkError::UnknownScheme)
    }
}

impl ParsedLink {
    /// The v2ray/Xray client outbound (tagged `tag`) that connects as this link says, with its full
    /// `streamSettings`: `wsSettings` (path, `Host` header), `grpcSettings` (service name), `tlsSettings`
    /// (server name, ALPN, uTLS fingerprint) or `realitySettings`, and the VLESS user's `flow`.
    /// `tlsSettings` is always an object with TLS, so callers can add `certificates`. Debian's v2ray 4.34
    /// has no uTLS and ignores `fingerprint` (its `-test` accepts the field; checked in the tests), so one
    /// outbound serves both cores; it has no gRPC or REALITY, which only Xray nodes are given.
    pub fn outbound(&self, tag: &str) -> Value {
        let user = match self.protocol {
            Protocol::Vmess => json!({
                "id": self.uuid.to_string(), "alterId": self.alter_id, "security": "auto", "level": 0
            }),
            Protocol::Vless => {
                let mut user = json!({ "id": self.uuid.to_string(), "encryption": "none", "level": 0 });
                if let Some(flow) = &self.flow {
                    user["flow"] = json!(flow);
                }
                user
            }
        };
        let mut stream = Map::new();
        stream.insert("network".into(), json!(self.network));
        stream.insert("security".into(), json!(self.security));
        match self.network.as_str() {
            "ws" => {
                let mut headers = Map::new();
                if let Some(host) = &self.ws_host {
                    headers.insert("Host".into(), json!(host));
                }
                let path = self.path.as_deref().unwrap_or("/");
                stream.insert("wsSettings".into(), json!({ "path": path, "headers": headers }));
            }
            "grpc" => {
                let service = self.service_name.as_deref().unwrap_or_default();
                stream.insert("grpcSettings".into(), json!({ "serviceName": service }));
            }
            _ => {}
        }
        let mut optional = Map::new();
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                optional.insert(key.into(), json!(value));
            }
        };
        match self.security.as_str() {
            "tls" => {
                put("serverName", &self.sni);
                put("fingerprint", &self.fingerprint);
                if !self.alpn.is_empty() {
                    optional.insert("alpn".into(), json!(self.alpn));
                }
                stream.insert("tlsSettings".into(), Value::Object(optional));
            }
            "reality" => {
                put("serverName", &self.sni);
                put("fingerprint", &self.fingerprint);
                put("publicKey", &self.public_key);
                put("shortId", &self.short_id);
                put("spiderX", &self.spider_x);
                stream.insert("realitySettings".into(), Value::Object(optional));
            }
            _ => {}
        }
        json!({
            "tag": tag,
            "protocol": self.protocol.as_str(),
            "settings": { "vnext": [ { "address": self.host, "port": self.port, "users": [user] } ] },
            "streamSettings": stream
        })
    }
}

fn parse_vmess(payload: &str) -> Result<ParsedLink, LinkError> {
    let bytes = STANDARD_LENIENT
        .decode(payload)
        .or_else(|_| URL_SAFE_LENIENT.decode(payload))
        .map_err(|e| LinkError::BadPayload(e.to_string()))?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| LinkError::BadPayload(e.to_string()))?;
    let field = |key: &str| -> Option<String> {
        match json.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let given = |key: &str| field(key).filter(|v| !v.is_empty());
    let port_text = field("port").ok_or(LinkError::Missing("port"))?;
    let aid_text = field("aid").unwrap_or_else(|| "0".to_owned());
    let network = given("net").unwrap_or_else(|| "tcp".to_owned());
    // v2rayN keeps gRPC's service name in `path`.
    let (path, service_name) = if network == "grpc" { (None, given("path")) } else { (given("path"), None) };
    Ok(ParsedLink {
        protocol: Protocol::Vmess,
        host: parse_host(&field("add").ok_or(LinkError::Missing("address"))?)?,
        port: parse_port(&port_text)?,
        uuid: parse_uuid(&field("id").ok_or(LinkError::Missing("id"))?)?,
        name: field("ps").unwrap_or_default(),
        network,
        security: given("tls").unwrap_or_else(|| "none".to_owned()),
        alter_id: aid_text.parse().map_err(|_| LinkError::BadPayload(format!("aid {aid_text:?} is not a number")))?,
        ws_host: given("host"),
        path,
        service_name,
        sni: given("sni"),
        alpn: split_alpn(&field("alpn").unwrap_or_default()),
        fingerprint: given("fp"),
        public_key: given("pbk"),
        short_id: given("sid"),
        spider_x: given("spx"),
        flow: None,
    })
}

fn parse_vless(rest: &str) -> Result<ParsedLink, LinkError> {
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    let (user, host_port) = authority.split_once('@').ok_or(LinkError::Missing("id"))?;
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| LinkError::BadHost(host_port.to_owned()))?;
        let port = after.strip_prefix(':').ok_or(LinkError::Missing("port"))?;
        (host, port)
    } else {
        host_port.rsplit_once(':').ok_or(LinkError::Missing("port"))?
    };
    let param = |key: &str| -> Option<String> {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
            .filter(|v| !v.is_empty())
    };
    let name = percent_decode_str(fragment).decode_utf8().map_err(|_| LinkError::BadName)?.into_owned();
    Ok(ParsedLink {
        protocol: Protocol::Vless,
        host: parse_host(host)?,
        port: parse_port(port)?,
        uuid: parse_uuid(&percent_decode_str(user).decode_utf8_lossy())?,
        name,
        network: param("type").unwrap_or_else(|| "tcp".to_owned()),
        security: param("security").unwrap_or_else(|| "none".to_owned()),
        alter_id: 0,
        ws_host: param("host"),
        path: param("path"),
        service_name: param("serviceName"),
        sni: param("sni"),
        alpn: split_alpn(&param("alpn").unwrap_or_default()),
        fingerprint: param("fp"),
        public_key: param("pbk"),
        short_id: param("sid"),
        spider_x: param("spx"),
        flow: param("flow"),
    })
}

/// `h2,http/1.1` as a list, blanks dropped.
fn split_alpn(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()
}

/// `host` without the brackets an IPv6 address may come in.
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn parse_host(raw: &str) -> Result<String, LinkError> {
    Host::parse(unbracket(raw)).map(|h| h.as_str().to_owned()).map_err(|_| LinkError::BadHost(raw.to_owned()))
}

fn parse_port(raw: &str) -> Result<u16, LinkError> {
    raw.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| LinkError::BadPort(raw.to_owned()))
}

fn parse_uuid(raw: &str) -> Result<Uuid, LinkError> {
    Uuid::parse_str(raw.trim()).map_err(|_| LinkError::BadUuid(raw.to_owned()))
}

#[cfg(test)]
#[path = "links_tests.rs"]
mod tests;
