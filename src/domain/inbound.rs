//! A node's client inbounds: what customers connect to (protocol, transport, security, port) and how their
//! apps must be told to connect (the public host and port, a CDN in front, SNI, ALPN, the uTLS fingerprint,
//! REALITY's public key). A customer's seat is one client (one UUID, one email tag) on every inbound of its
//! node; each inbound gives the customer one share link.
//!
//! Stored as JSON on the node's row (`servers.inbounds`), given to `vpnshop server add` as repeated
//! `--inbound key=value,…` flags or a TOML/JSON file, and validated here: a VLESS inbound without TLS or
//! REALITY (no encryption at all) is refused, REALITY only where the core is Xray.

use serde::{Deserialize, Serialize};

use super::server::{Core, Host, Protocol};

crate::text_enum! {
    /// How the bytes travel: raw TCP, WebSocket (what a CDN can proxy), or gRPC (HTTP/2).
    pub enum Transport {
        Tcp => "tcp",
        Ws => "ws",
        Grpc => "grpc",
    }
}

crate::text_enum! {
    /// What wraps the transport: nothing (VMess only: it encrypts itself), TLS, or Xray's REALITY.
    pub enum Security {
        None => "none",
        Tls => "tls",
        Reality => "reality",
    }
}

/// uTLS fingerprints the common apps (v2rayN, v2rayNG, Hiddify, Streisand) and Xray accept in `fp`.
pub const FINGERPRINTS: &[&str] =
    &["chrome", "firefox", "safari", "ios", "android", "edge", "360", "qq", "random", "randomized"];

/// ALPN protocols a client may offer.
pub const ALPNS: &[&str] = &["h2", "http/1.1", "h3"];

/// The fingerprint links carry when the operator names none (what v2rayN and Hiddify default to).
pub const DEFAULT_FINGERPRINT: &str = "chrome";

/// The flow REALITY over TCP is sold with (XTLS Vision: no TLS-in-TLS for censors to see).
pub const VISION_FLOW: &str = "xtls-rprx-vision";

/// Xray REALITY settings of an inbound. The private key never leaves the node: the shop renders a
/// placeholder naming `private_key_file`, and the node's write step puts the key in (see `provision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RealitySpec {
    /// The x25519 public key (`xray x25519` prints it; 43 characters of unpadded URL-safe base64): `pbk`.
    pub public_key: String,
    /// Absolute path on the node of the file holding the private key (`setup.sh --reality` makes it).
    pub private_key_file: String,
    /// Short ids the inbound accepts (0–16 hex digits, even length); links carry the first.
    pub short_ids: Vec<String>,
    /// Server names (SNI) the inbound accepts; links carry the first.
    pub server_names: Vec<String>,
    /// Where REALITY forwards what is not ours (`host:port` of a real TLS site), e.g. `www.microsoft.com:443`.
    pub dest: String,
}

/// One client inbound of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundSpec {
    /// The inbound's tag on the node (1–64 of ASCII letters, digits, `.`, `_`, `-`, `@`; not `api`).
    pub tag: String,
    pub protocol: Protocol,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    #[serde(default = "default_security")]
    pub security: Security,
    /// The port the core listens on.
    pub port: u16,
    /// The host customers connect to when it is not the node's public host (a CDN's host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// The port customers connect to when it is not `port` (a CDN's HTTPS port, a NAT mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    /// Behind a CDN (WebSocket or gRPC over TLS only): links use `public_host`, the CDN's name, and the node is
    /// tested at its own address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cdn: bool,
    /// WebSocket path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// WebSocket `Host` header (default: the SNI, else the public host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// gRPC service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The TLS server name clients send (default: the public host when it is a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN the server offers and links carry (default: none given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// uTLS fingerprint for links (default `chrome` with TLS or REALITY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Certificate chain (PEM) on the node, for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<String>,
    /// Private key (PEM) on the node, for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reality: Option<RealitySpec>,
    /// What apps show for this inbound's link, after the node's name (default e.g. `VLESS WS TLS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

fn default_transport() -> Transport {
    Transport::Tcp
}

fn default_security() -> Security {
    Security::None
}

/// A field of an inbound that is wrong, and why (`field` is `inbounds[i].name` once [`validate_all`] ran).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InboundError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> InboundError {
    InboundError { field: field.to_owned(), message: message.into() }
}

/// Whether `tag` is safe in a config, a stats name and a shell word: 1–64 ASCII letters, digits, `.`, `_`, `-`, `@`.
pub fn is_safe_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

impl InboundSpec {
    /// The single plain TCP inbound every node had before inbounds were configurable.
    pub fn plain_tcp(tag: &str, protocol: Protocol, port: u16) -> Self {
        Self {
            tag: tag.to_owned(),
            protocol,
            transport: Transport::Tcp,
            security: Security::None,
            port,
            public_host: None,
            public_port: None,
            cdn: false,
            path: None,
            host: None,
            service_name: None,
            sni: None,
            alpn: Vec::new(),
            fingerprint: None,
            cert_path: None,
            key_path: None,
            reality: None,
            label: None,
        }
    }

    /// The host customers connect to: this inbound's own public host, else the node's.
    pub fn connect_host<'a>(&'a self, node_public_host: &'a str) -> &'a str {
        self.public_host.as_deref().unwrap_or(node_public_host)
    }

    /// The port customers connect to.
    pub fn connect_port(&self) -> u16 {
        self.public_port.unwrap_or(self.port)
    }

    /// The TLS server name clients send: the configured SNI, REALITY's first server name, else the connect
    /// host when it is a DNS name (an IP address is not a valid SNI).
    pub fn server_name(&self, node_public_host: &str) -> Option<String> {
        if let Some(sni) = &self.sni {
            return Some(sni.clone());
        }
        if let Some(reality) = &self.reality {
            return reality.server_names.first().cloned();
        }
        let host = self.connect_host(node_public_host).trim_matches(['[', ']']);
        (self.security == Security::Tls && host.parse::<std::net::IpAddr>().is_err()).then(|| host.to_owned())
    }

    /// The WebSocket path (default `/`).
    pub fn ws_path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }

    /// The WebSocket `Host` header links carry: the configured one, else the server name, else empty.
    pub fn ws_host(&self, node_public_host: &str) -> String {
        self.host.clone().or_else(|| self.server_name(node_public_host)).unwrap_or_default()
    }

    /// The uTLS fingerprint links carry (none without TLS or REALITY).
    pub fn link_fingerprint(&self) -> Option<&str> {
        match self.security {
            Security::None => None,
            Security::Tls | Security::Reality => Some(self.fingerprint.as_deref().unwrap_or(DEFAULT_FINGERPRINT)),
        }
    }

    /// The flow of this inbound's clients: XTLS Vision for VLESS + REALITY over TCP, else none.
    pub fn flow(&self) -> Option<&'static str> {
        (self.protocol == Protocol::Vless && self.security == Security::Reality && self.transport == Transport::Tcp)
            .then_some(VISION_FLOW)
    }

    /// What apps show for this inbound: the label, else e.g. `VLESS WS TLS` (`VMess TCP`, `VLESS REALITY`).
    pub fn display_label(&self) -> String {
        if let Some(label) = &self.label {
            return label.clone();
        }
        let protocol = match self.protocol {
            Protocol::Vmess => "VMess",
            Protocol::Vless => "VLESS",
        };
        let transport = match self.transport {
            Transport::Tcp => "TCP",
            Transport::Ws => "WS",
            Transport::Grpc => "gRPC",
        };
        let mut label = format!("{protocol} {transport}");
        match self.security {
            Security::None => {}
            Security::Tls => label.push_str(" TLS"),
            Security::Reality => label.push_str(" REALITY"),
        }
        if self.cdn {
            label.push_str(" CDN");
        }
        label
    }

    /// Whether this is the one kind refused now but kept running where it already was: VLESS over bare TCP
    /// without encryption (nodes registered before inbounds had security).
    pub fn is_plain_vless(&self) -> bool {
        self.protocol == Protocol::Vless && self.security == Security::None && self.transport == Transport::Tcp
    }

    /// Checks this inbound on its own, for a node running `core`.
    pub fn validate(&self, core: Core) -> Result<(), InboundError> {
        self.check(core, false)
    }

    fn check(&self, core: Core, stored: bool) -> Result<(), InboundError> {
        if !is_safe_tag(&self.tag) || self.tag == "api" {
            return Err(bad("tag", "1–64 of ASCII letters, digits, '.', '_', '-', '@', and not \"api\""));
        }
        if self.port == 0 {
            return Err(bad("port", "a port is a number from 1 to 65535"));
        }
        if self.public_port == Some(0) {
            return Err(bad("public_port", "a port is a number from 1 to 65535"));
        }
        if let Some(host) = &self.public_host {
            Host::parse(host).map_err(|e| bad("public_host", e.to_string()))?;
        }
        if let Some(label) = &self.label
            && (label.trim().is_empty() || label.chars().count() > 40 || label.chars().any(char::is_control))
        {
            return Err(bad("label", "1–40 printable characters"));
        }
        self.validate_security(core, stored)?;
        self.validate_transport(core)?;
        if self.cdn {
            if !matches!(self.transport, Transport::Ws | Transport::Grpc) || self.security != Security::Tls {
                return Err(bad("cdn", "only a WebSocket or gRPC inbound with TLS can be behind a CDN"));
            }
            if self.public_host.is_none() {
                return Err(bad("public_host", "an inbound behind a CDN needs the CDN's host name (public_host)"));
            }
        }
        Ok(())
    }

    fn validate_security(&self, core: Core, stored: bool) -> Result<(), InboundError> {
        let tls_only = |field: &str, set: bool| {
            if set { Err(bad(field, "only an inbound with TLS has this")) } else { Ok(()) }
        };
        match self.security {
            Security::None => {
                if self.protocol == Protocol::Vless && !(stored && self.is_plain_vless()) {
                    return Err(bad(
                        "security",
                        "VLESS does not encrypt: a VLESS inbound needs TLS or REALITY (or use VMess)",
                    ));
                }
                tls_only("cert_path", self.cert_path.is_some())?;
                tls_only("key_path", self.key_path.is_some())?;
                tls_only("sni", self.sni.is_some())?;
                tls_only("alpn", !self.alpn.is_empty())?;
                tls_only("fingerprint", self.fingerprint.is_some())?;
            }
            Security::Tls => {
                for (field, path) in [("cert_path", &self.cert_path), ("key_path", &self.key_path)] {
                    match path {
                        Some(p) if is_node_path(p) => {}
                        Some(_) => return Err(bad(field, "an absolute path on the node, without spaces or quotes")),
                        None => {
                            return Err(bad(field, "a TLS inbound needs the certificate and key paths on the node"));
                        }
                    }
                }
                if let Some(sni) = &self.sni {
                    Host::parse(sni)
                        .ok()
                        .filter(|_| sni.parse::<std::net::IpAddr>().is_err())
                        .ok_or_else(|| bad("sni", "a DNS name"))?;
                }
                for alpn in &self.alpn {
                    if !ALPNS.contains(&alpn.as_str()) {
                        return Err(bad("alpn", format!("one of {}", ALPNS.join(", "))));
                    }
                }
                if self.transport == Transport::Ws && self.alpn.iter().any(|a| a != "http/1.1") {
                    return Err(bad("alpn", "WebSocket runs over HTTP/1.1 only: use alpn http/1.1 or none"));
                }
                if self.reality.is_some() {
                    return Err(bad("reality", "only an inbound with security reality has REALITY settings"));
                }
            }
            Security::Reality => {
                if core != Core::Xray {
                    return Err(bad("security", "REALITY needs Xray on the node (v2ray does not have it)"));
                }
                if self.protocol != Protocol::Vless {
                    return Err(bad("protocol", "REALITY carries VLESS only"));
                }
                if !matches!(self.transport, Transport::Tcp | Transport::Grpc) {
                    return Err(bad("transport", "REALITY runs over TCP or gRPC"));
                }
                if self.cert_path.is_some() || self.key_path.is_some() {
                    return Err(bad("cert_path", "REALITY borrows its dest's certificate: give no certificate"));
                }
                let reality = self.reality.as_ref().ok_or_else(|| bad("reality", "REALITY settings are missing"))?;
                reality.validate()?;
            }
        }
        if let Some(fp) = &self.fingerprint
            && !FINGERPRINTS.contains(&fp.as_str())
        {
            return Err(bad("fingerprint", format!("one of {}", FINGERPRINTS.join(", "))));
        }
        Ok(())
    }

    fn validate_transport(&self, core: Core) -> Result<(), InboundError> {
        let unused = |field: &str, set: bool, what: &str| {
            if set { Err(bad(field, format!("only a {what} inbound has this"))) } else { Ok(()) }
        };
        match self.transport {
            Transport::Tcp => {
                unused("path", self.path.is_some(), "WebSocket")?;
                unused("host", self.host.is_some(), "WebSocket")?;
                unused("service_name", self.service_name.is_some(), "gRPC")?;
            }
            Transport::Ws => {
                unused("service_name", self.service_name.is_some(), "gRPC")?;
                if let Some(path) = &self.path
                    && (!path.starts_with('/')
                        || path.len() > 128
                        || !path.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'#' | b'?')))
                {
                    return Err(bad("path", "a path starting with '/', printable ASCII without '\"', '\\', '#', '?'"));
                }
                if let Some(host) = &self.host {
                    Host::parse(host).map_err(|e| bad("host", e.to_string()))?;
                }
            }
            Transport::Grpc => {
                if core == Core::V2ray {
                    return Err(bad("transport", "v2ray 4.34 (Debian's) has no gRPC transport: use Xray or WebSocket"));
                }
                unused("path", self.path.is_some(), "WebSocket")?;
                unused("host", self.host.is_some(), "WebSocket")?;
                match &self.service_name {
                    Some(name) if is_safe_tag(name) => {}
                    _ => {
                        return Err(bad(
                            "service_name",
                            "a gRPC inbound needs a service name (letters, digits, '.', '_', '-')",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl RealitySpec {
    fn validate(&self) -> Result<(), InboundError> {
        let key_ok = self.public_key.len() == 43
            && self.public_key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !key_ok {
            return Err(bad("reality.public_key", "the 43-character public key `xray x25519` prints"));
        }
        if !is_node_path(&self.private_key_file) {
            return Err(bad("reality.private_key_file", "an absolute path on the node, without spaces or quotes"));
        }
        let short_ok =
            |s: &String| s.len() <= 16 && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if self.short_ids.is_empty() || !self.short_ids.iter().all(short_ok) {
            return Err(bad("reality.short_ids", "one or more short ids of 0–16 hex digits, an even number of them"));
        }
        if self.server_names.is_empty() || self.server_names.iter().any(|n| Host::parse(n).is_err()) {
            return Err(bad("reality.server_names", "one or more DNS names the dest serves"));
        }
        let dest_ok = self
            .dest
            .rsplit_once(':')
            .is_some_and(|(host, port)| Host::parse(host).is_ok() && port.parse::<u16>().is_ok_and(|p| p != 0));
        if !dest_ok {
            return Err(bad("reality.dest", "host:port of a real TLS site, e.g. www.microsoft.com:443"));
        }
        Ok(())
    }
}

/// An absolute path that is safe to put in a config and a shell word.
fn is_node_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 255
        && !path.contains("/../")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+' | b'@'))
}

/// Checks a node's whole set of inbounds: at least one, each valid, tags and ports unique.
pub fn validate_all(inbounds: &[InboundSpec], core: Core) -> Result<(), InboundError> {
    check_all(inbounds, core, false)
}

/// [`validate_all`] for inbounds already stored: a plain VLESS inbound from before inbounds had security is
/// let through, so its customers keep working after an upgrade (`server test` fails it until the operator
/// gives it TLS or REALITY); new ones are refused.
pub fn validate_stored(inbounds: &[InboundSpec], core: Core) -> Result<(), InboundError> {
    check_all(inbounds, core, true)
}

fn check_all(inbounds: &[InboundSpec], core: Core, stored: bool) -> Result<(), InboundError> {
    if inbounds.is_empty() {
        return Err(bad("inbounds", "a node needs at least one inbound"));
    }
    if inbounds.len() > 16 {
        return Err(bad("inbounds", "at most 16 inbounds per node"));
    }
    for (i, inbound) in inbounds.iter().enumerate() {
        inbound
            .check(core, stored)
            .map_err(|e| InboundError { field: format!("inbounds[{i}].{}", e.field), message: e.message })?;
        if let Some(j) = inbounds[..i].iter().position(|o| o.tag == inbound.tag) {
            return Err(bad(&format!("inbounds[{i}].tag"), format!("the same tag as inbounds[{j}]")));
        }
        if let Some(j) = inbounds[..i].iter().position(|o| o.port == inbound.port) {
            return Err(bad(&format!("inbounds[{i}].port"), format!("the same port as inbounds[{j}]")));
        }
    }
    Ok(())
}

/// A node's inbounds as stored (`servers.inbounds`): the list, or, when it is empty (a node registered before
/// inbounds were configurable, or by the previous release during an upgrade), the one plain TCP inbound its
/// `protocol`, `inbound_tag` and `public_port` columns describe.
pub fn from_stored(
    stored: &serde_json::Value,
    protocol: Protocol,
    tag: &str,
    port: i32,
) -> Result<Vec<InboundSpec>, InboundError> {
    let list: Vec<InboundSpec> =
        serde_json::from_value(stored.clone()).map_err(|e| bad("inbounds", format!("stored inbounds: {e}")))?;
    if !list.is_empty() {
        return Ok(list);
    }
    let port = u16::try_from(port).map_err(|_| bad("public_port", format!("{port} is not a port")))?;
    Ok(vec![InboundSpec::plain_tcp(tag, protocol, port)])
}

/// Parses one `--inbound` flag: `key=value` pairs separated by commas, list values (`alpn`, `short_ids`,
/// `server_names`) separated by `|`, REALITY's keys as `reality.public_key=…` and so on, e.g.
/// `tag=ws,protocol=vless,transport=ws,security=tls,port=443,path=/ws,sni=cdn.example.com,cert_path=/etc/…`.
pub fn parse_flag(text: &str) -> Result<InboundSpec, InboundError> {
    let mut top = serde_json::Map::new();
    let mut reality = serde_json::Map::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| bad(pair, "expected key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let list = || serde_json::Value::from(value.split('|').map(str::trim).collect::<Vec<_>>());
        let (map, name) = match key.strip_prefix("reality.") {
            Some(name) => (&mut reality, name),
            None => (&mut top, key),
        };
        let json = match name {
            "port" | "public_port" => serde_json::Value::from(
                value.parse::<u16>().map_err(|_| bad(key, "a port is a number from 1 to 65535"))?,
            ),
            "cdn" => serde_json::Value::from(match value {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => return Err(bad(key, "true or false")),
            }),
            "alpn" | "short_ids" | "server_names" => list(),
            _ => serde_json::Value::from(value),
        };
        if map.insert(name.to_owned(), json).is_some() {
            return Err(bad(key, "given twice"));
        }
    }
    if !reality.is_empty() {
        top.insert("reality".to_owned(), serde_json::Value::Object(reality));
    }
    serde_json::from_value(serde_json::Value::Object(top)).map_err(|e| bad("inbound", e.to_string()))
}

/// A file of inbounds: TOML (`[[inbound]]` tables) or JSON (a list, or `{"inbounds": [...]}`).
pub fn parse_file(text: &str) -> Result<Vec<InboundSpec>, InboundError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TomlFile {
        inbound: Vec<InboundSpec>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum JsonFile {
        List(Vec<InboundSpec>),
        Wrapped { inbounds: Vec<InboundSpec> },
    }
    if text.trim_start().starts_with(['[', '{']) && serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return match serde_json::from_str::<JsonFile>(text).map_err(|e| bad("inbounds", e.to_string()))? {
            JsonFile::List(list) | JsonFile::Wrapped { inbounds: list } => Ok(list),
        };
    }
    toml::from_str::<TomlFile>(text).map(|f| f.inbound).map_err(|e| bad("inbounds", e.to_string()))
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
