//! A node's config file: a base template (everything but the users) plus the active clients, rendered to
//! byte-identical pretty JSON for the same state. Also reads the users back from a node's file (drift
//! detection) and hashes the base alone, so the caller can tell "only users changed" (push them through the
//! API, no restart) from "the base changed" (rewrite the file and restart the core).
//!
//! The shape is the one checked against Debian's v2ray 4.34 in `shared/specs/v2ray.md`; Xray reads the same.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::node::NodeUser;
use crate::domain::inbound::{InboundSpec, Security, Transport};
use crate::domain::server::{Core, Protocol};

/// Longest email tag accepted (it names the client in stats: `user>>>{email}>>>traffic>>>uplink`).
pub const MAX_TAG_LEN: usize = 64;

/// Tag of the core's API inbound (and of the routing rule that sends it to the API).
pub const API_TAG: &str = "api";

/// An inbound our clients live in, and the core that reads the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInbound {
    /// The inbound's `tag`.
    pub tag: String,
    /// The inbound's `protocol`; clients are written in this protocol's shape.
    pub protocol: Protocol,
    /// Xray has no `alterId` (VMess is AEAD only there); v2ray gets `alterId: 0`.
    pub core: Core,
    /// The clients' `flow` (XTLS Vision on VLESS + REALITY over TCP), if any.
    pub flow: Option<String>,
}

impl ClientInbound {
    /// The client side of one of a node's inbounds.
    pub fn of(spec: &InboundSpec, core: Core) -> Self {
        Self { tag: spec.tag.clone(), protocol: spec.protocol, core, flow: spec.flow().map(str::to_owned) }
    }
}

/// What [`default_base`] needs to build a node's base config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeParams {
    pub core: Core,
    /// The core's gRPC API port, bound on the node's loopback only.
    pub api_port: u16,
    /// The client inbounds, in order (each one's `port` is where the core listens).
    pub inbounds: Vec<InboundSpec>,
}

/// What a REALITY inbound's `privateKey` says in the config we render: this prefix and the key file's path on
/// the node. The node's write step replaces it with the file's content, so the key never leaves the node.
pub const NODE_FILE_PREFIX: &str = "vpnshop-node-file:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The node's parameters cannot make a working config (bad tag, clashing ports).
    #[error("invalid node parameters: {0}")]
    InvalidParams(String),
    /// The config has no inbound with the node's inbound tag.
    #[error("the config has no inbound tagged {0:?}")]
    InboundMissing(String),
    /// The tagged inbound speaks another protocol than the node is set up for.
    #[error("inbound {tag:?} speaks {found:?}, but the node is set up for {expected}")]
    ProtocolMismatch { tag: String, expected: Protocol, found: String },
    /// An email tag with characters outside ASCII letters, digits, `.`, `_`, `-`, `@` (or empty or too long).
    #[error("{0:?} is not a safe email tag (1–64 of ASCII letters, digits, '.', '_', '-', '@')")]
    InvalidEmail(String),
    /// Two clients share an email tag or a UUID.
    #[error("client {0} appears twice")]
    DuplicateClient(String),
    /// The config is not JSON of the expected shape.
    #[error("malformed config: {0}")]
    Malformed(String),
}

pub use crate::domain::inbound::is_safe_tag;

/// Checks that an email tag is safe to put in a config and a stats name (see [`is_safe_tag`]).
pub fn validate_email(email: &str) -> Result<(), RenderError> {
    if is_safe_tag(email) { Ok(()) } else { Err(RenderError::InvalidEmail(email.to_owned())) }
}

/// The base config of a node with no clients: API + stats + per-user stats policy, the API's
/// dokodemo-door inbound on `127.0.0.1:<api_port>`, one inbound per [`InboundSpec`] (VMess AEAD with
/// `alterId: 0`, or VLESS with `decryption: none`; its transport and TLS/REALITY in `streamSettings`), a freedom
/// outbound, the api→api routing rule, warning-level logging, and isolation (a blackhole for the node's own and
/// private networks, see [`super::isolation`]). A plain TCP inbound has no `streamSettings`, as before there were
/// several kinds: a node upgraded from then keeps its base, and its core is not restarted.
pub fn default_base(params: &NodeParams) -> Result<Value, RenderError> {
    // stored inbounds: a legacy plain VLESS inbound keeps its customers working (input refuses new ones)
    crate::domain::inbound::validate_stored(&params.inbounds, params.core)
        .map_err(|e| RenderError::InvalidParams(e.to_string()))?;
    if params.api_port == 0 || params.inbounds.iter().any(|i| i.port == params.api_port) {
        return Err(RenderError::InvalidParams(format!(
            "API port {} must be non-zero and differ from every client port",
            params.api_port
        )));
    }
    let mut inbounds = vec![json!({
        "tag": API_TAG,
        "listen": "127.0.0.1",
        "port": params.api_port,
        "protocol": "dokodemo-door",
        "settings": { "address": "127.0.0.1" }
    })];
    inbounds.extend(params.inbounds.iter().map(inbound_json));
    let mut base = json!({
        "log": { "loglevel": "warning" },
        "api": { "tag": API_TAG, "services": ["HandlerService", "StatsService"] },
        "stats": {},
        "policy": {
            "levels": { "0": { "statsUserUplink": true, "statsUserDownlink": true } },
            "system": { "statsInboundUplink": true, "statsInboundDownlink": true }
        },
        "inbounds": inbounds,
        "outbounds": [ { "tag": "direct", "protocol": "freedom", "settings": {} } ],
        "routing": {
            "rules": [ { "type": "field", "inboundTag": [API_TAG], "outboundTag": API_TAG } ]
        }
    });
    super::isolation::isolate(&mut base, &[], &[])?;
    Ok(base)
}

/// One client inbound of the base config, without clients.
fn inbound_json(spec: &InboundSpec) -> Value {
    let settings = match spec.protocol {
        Protocol::Vmess => json!({ "clients": [] }),
        Protocol::Vless => json!({ "clients": [], "decryption": "none" }),
    };
    let mut inbound = json!({
        "tag": spec.tag,
        "port": spec.port,
        "protocol": spec.protocol.as_str(),
        "settings": settings
    });
    if spec.transport != Transport::Tcp || spec.security != Security::None {
        inbound["streamSettings"] = stream_settings(spec);
    }
    inbound
}

/// The server side of an inbound's transport and security (Xray's and v2ray 4.34's `streamSettings`).
fn stream_settings(spec: &InboundSpec) -> Value {
    let mut stream = json!({ "network": spec.transport.as_str(), "security": spec.security.as_str() });
    match spec.transport {
        Transport::Tcp => {}
        Transport::Ws => stream["wsSettings"] = json!({ "path": spec.ws_path() }),
        Transport::Grpc => {
            stream["grpcSettings"] = json!({ "serviceName": spec.service_name.clone().unwrap_or_default() })
        }
    }
    match spec.security {
        Security::None => {}
        Security::Tls => {
            let mut tls = json!({
                "certificates": [ {
                    "certificateFile": spec.cert_path.clone().unwrap_or_default(),
                    "keyFile": spec.key_path.clone().unwrap_or_default()
                } ]
            });
            if let Some(sni) = &spec.sni {
                tls["serverName"] = json!(sni);
            }
            if !spec.alpn.is_empty() {
                tls["alpn"] = json!(spec.alpn);
            }
            stream["tlsSettings"] = tls;
        }
        Security::Reality => {
            if let Some(reality) = &spec.reality {
                stream["realitySettings"] = json!({
                    "show": false,
                    "dest": reality.dest,
                    "xver": 0,
                    "serverNames": reality.server_names,
                    "privateKey": format!("{NODE_FILE_PREFIX}{}", reality.private_key_file),
                    "shortIds": reality.short_ids
                });
            }
        }
    }
    stream
}

/// The node's config file: `base` with `clients` (sorted by email) as the users of the inbound tagged
/// `inbound.tag`, as pretty JSON with sorted keys and a final newline. The same base and the same set of
/// clients always give the same bytes.
pub fn render(base: &Value, inbounds: &[ClientInbound], clients: &[NodeUser]) -> Result<String, RenderError> {
    let mut sorted: Vec<&NodeUser> = clients.iter().collect();
    sorted.sort_by(|a, b| a.email.cmp(&b.email).then(a.uuid.cmp(&b.uuid)));
    check_clients(&sorted)?;

    let mut config = base.clone();
    for inbound in inbounds {
        let target = find_inbound_mut(&mut config, &inbound.tag)?;
        let found = target.get("protocol").and_then(Value::as_str).unwrap_or("");
        if found != inbound.protocol.as_str() {
            return Err(RenderError::ProtocolMismatch {
                tag: inbound.tag.clone(),
                expected: inbound.protocol,
                found: found.to_owned(),
            });
        }
        let settings = target
            .as_object_mut()
            .ok_or_else(|| RenderError::Malformed(format!("inbound {:?} is not an object", inbound.tag)))?
            .entry("settings")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| RenderError::Malformed(format!("settings of inbound {:?} is not an object", inbound.tag)))?;
        let users = sorted.iter().map(|user| client_json(inbound, user)).collect();
        settings.insert("clients".to_owned(), Value::Array(users));
    }

    let mut text =
        serde_json::to_string_pretty(&canonical(&config)).map_err(|e| RenderError::Malformed(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// SHA-256 (hex) of the canonical JSON of `config` with the `clients` of every inbound left out: equal for
/// a base and any config rendered from it, different when anything else (a port, a tag, the log level)
/// differs. Works on a base template as well as on a node's parsed config file. A REALITY `privateKey` is
/// left out too: ours names the key file, the node's file holds the key.
pub fn base_hash(config: &Value) -> String {
    let mut stripped = config.clone();
    if let Some(inbounds) = stripped.get_mut("inbounds").and_then(Value::as_array_mut) {
        for inbound in inbounds {
            if let Some(settings) = inbound.get_mut("settings").and_then(Value::as_object_mut) {
                settings.remove("clients");
            }
            if let Some(reality) = inbound.pointer_mut("/streamSettings/realitySettings").and_then(Value::as_object_mut)
            {
                reality.remove("privateKey");
            }
        }
    }
    // Serialising a `Value` cannot fail: its map keys are always strings.
    let text = canonical(&stripped).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Parses a config file's text (e.g. the node's current file, for [`base_hash`]).
pub fn parse_config(config_json: &str) -> Result<Value, RenderError> {
    serde_json::from_str(config_json).map_err(|e| RenderError::Malformed(e.to_string()))
}

/// The users of the inbound tagged `tag` in a config file, sorted by email. Emails are returned as found
/// (not validated), so a drifted file's odd users can still be seen and removed.
pub fn clients_in(config_json: &str, tag: &str) -> Result<Vec<NodeUser>, RenderError> {
    let mut config = parse_config(config_json)?;
    let inbound = find_inbound_mut(&mut config, tag)?;
    let Some(clients) = inbound.get("settings").and_then(|s| s.get("clients")) else {
        return Ok(Vec::new());
    };
    let clients = clients
        .as_array()
        .ok_or_else(|| RenderError::Malformed(format!("clients of inbound {tag:?} is not a list")))?;
    let mut users = clients
        .iter()
        .map(|client| {
            let id = client.get("id").and_then(Value::as_str).unwrap_or("");
            let uuid =
                Uuid::parse_str(id).map_err(|_| RenderError::Malformed(format!("client id {id:?} is not a UUID")))?;
            let email = client
                .get("email")
                .and_then(Value::as_str)
                .ok_or_else(|| RenderError::Malformed(format!("client {id} has no email")))?;
            Ok(NodeUser { uuid, email: email.to_owned() })
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    users.sort_by(|a, b| a.email.cmp(&b.email).then(a.uuid.cmp(&b.uuid)));
    Ok(users)
}

/// Rejects unsafe emails and duplicate emails or UUIDs; `sorted` is sorted by email.
fn check_clients(sorted: &[&NodeUser]) -> Result<(), RenderError> {
    for user in sorted {
        validate_email(&user.email)?;
    }
    if let Some(pair) = sorted.windows(2).find(|w| w[0].email == w[1].email) {
        return Err(RenderError::DuplicateClient(format!("email {:?}", pair[0].email)));
    }
    let mut ids: Vec<Uuid> = sorted.iter().map(|u| u.uuid).collect();
    ids.sort();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(RenderError::DuplicateClient(format!("id {}", pair[0])));
    }
    Ok(())
}

/// One user as the inbound's protocol and core expect it.
fn client_json(inbound: &ClientInbound, user: &NodeUser) -> Value {
    let mut client = json!({ "id": user.uuid.to_string(), "level": 0, "email": user.email });
    if inbound.protocol == Protocol::Vmess && inbound.core == Core::V2ray {
        client["alterId"] = json!(0);
    }
    if let Some(flow) = &inbound.flow {
        client["flow"] = json!(flow);
    }
    client
}

/// The single inbound tagged `tag`.
fn find_inbound_mut<'a>(config: &'a mut Value, tag: &str) -> Result<&'a mut Value, RenderError> {
    let inbounds = config
        .get_mut("inbounds")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| RenderError::Malformed("no \"inbounds\" list".to_owned()))?;
    let mut matching = inbounds.iter_mut().filter(|i| i.get("tag").and_then(Value::as_str) == Some(tag));
    let found = matching.next().ok_or_else(|| RenderError::InboundMissing(tag.to_owned()))?;
    if matching.next().is_some() {
        return Err(RenderError::Malformed(format!("two inbounds are tagged {tag:?}")));
    }
    Ok(found)
}

/// `value` with every object's keys in sorted order, whatever order the map type keeps.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
pub(crate) mod tests;
