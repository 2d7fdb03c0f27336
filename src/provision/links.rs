//! Share links and the subscription feed, in the formats v2rayN, v2rayNG, Hiddify and Streisand import
//! (checked in `shared/specs/v2ray.md`): `vmess://` + base64 JSON, `vless://uuid@host:port?…#name`, the feed
//! body (base64 of the links, one per line) and its `subscription-userinfo` / `profile-title` headers. Also
//! a parser for both link schemes, and the client outbound a parsed link describes.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::server::{Host, Protocol};

/// Bytes percent-encoded in a link's name: everything but RFC 3986 unreserved characters.
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

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

/// What a share link says: where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLink {
    pub protocol: Protocol,
    /// Host name or IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub uuid: Uuid,
    /// The display name (decoded).
    pub name: String,
    /// Transport: `tcp`, `ws`, … (`net` in VMess, `type` in VLESS).
    pub network: String,
    /// `none`, `tls`, `reality` (VMess `tls: ""` reads as `none`).
    pub security: String,
    /// VMess `aid` (0 = AEAD); always 0 for VLESS.
    pub alter_id: u16,
}

/// The share link of one client on a node: [`vmess_link`] or [`vless_link`] by protocol.
pub fn share_link(protocol: Protocol, host: &str, port: u16, uuid: Uuid, name: &str) -> String {
    match protocol {
        Protocol::Vmess => vmess_link(host, port, uuid, name),
        Protocol::Vless => vless_link(host, port, uuid, name),
    }
}

/// `vmess://` + base64 of the v2rayN JSON (every value a string, `aid` "0" = AEAD, plain TCP, no TLS).
pub fn vmess_link(host: &str, port: u16, uuid: Uuid, name: &str) -> String {
    let payload = VmessJson {
        v: "2",
        ps: name,
        add: unbracket(host),
        port: port.to_string(),
        id: uuid.to_string(),
        aid: "0",
        scy: "auto",
        net: "tcp",
        kind: "none",
        host: "",
        path: "",
        tls: "",
        sni: "",
    };
    // Serialising a struct of strings cannot fail.
    let text = serde_json::to_string(&payload).unwrap_or_default();
    format!("vmess://{}", STANDARD.encode(text))
}

/// The v2rayN VMess JSON, fields in the order clients write them.
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
}

/// `vless://<uuid>@<host>:<port>?encryption=none&security=none&type=tcp#<percent-encoded name>`, with an
/// IPv6 host in brackets.
pub fn vless_link(host: &str, port: u16, uuid: Uuid, name: &str) -> String {
    let host = unbracket(host);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    format!(
        "vless://{uuid}@{host}:{port}?encryption=none&security=none&type=tcp#{}",
        utf8_percent_encode(name, NAME_ENCODE)
    )
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
    /// The v2ray/Xray client outbound (tagged `tag`) that connects as this link says. Carries what our
    /// links carry (address, port, id, transport and security names); WebSocket paths, SNI and Reality
    /// keys are not in [`ParsedLink`] and so not here.
    pub fn outbound(&self, tag: &str) -> Value {
        let user = match self.protocol {
            Protocol::Vmess => json!({
                "id": self.uuid.to_string(), "alterId": self.alter_id, "security": "auto", "level": 0
            }),
            Protocol::Vless => json!({ "id": self.uuid.to_string(), "encryption": "none", "level": 0 }),
        };
        json!({
            "tag": tag,
            "protocol": self.protocol.as_str(),
            "settings": { "vnext": [ { "address": self.host, "port": self.port, "users": [user] } ] },
            "streamSettings": { "network": self.network, "security": self.security }
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
    let port_text = field("port").ok_or(LinkError::Missing("port"))?;
    let aid_text = field("aid").unwrap_or_else(|| "0".to_owned());
    let tls = field("tls").unwrap_or_default();
    Ok(ParsedLink {
        protocol: Protocol::Vmess,
        host: parse_host(&field("add").ok_or(LinkError::Missing("address"))?)?,
        port: parse_port(&port_text)?,
        uuid: parse_uuid(&field("id").ok_or(LinkError::Missing("id"))?)?,
        name: field("ps").unwrap_or_default(),
        network: field("net").filter(|n| !n.is_empty()).unwrap_or_else(|| "tcp".to_owned()),
        security: if tls.is_empty() { "none".to_owned() } else { tls },
        alter_id: aid_text.parse().map_err(|_| LinkError::BadPayload(format!("aid {aid_text:?} is not a number")))?,
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
    };
    let name = percent_decode_str(fragment).decode_utf8().map_err(|_| LinkError::BadName)?.into_owned();
    Ok(ParsedLink {
        protocol: Protocol::Vless,
        host: parse_host(host)?,
        port: parse_port(port)?,
        uuid: parse_uuid(&percent_decode_str(user).decode_utf8_lossy())?,
        name,
        network: param("type").filter(|t| !t.is_empty()).unwrap_or_else(|| "tcp".to_owned()),
        security: param("security").filter(|s| !s.is_empty()).unwrap_or_else(|| "none".to_owned()),
        alter_id: 0,
    })
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
