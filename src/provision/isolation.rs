//! Node isolation: customers tunnel *through* a node, never *into* it. Every rendered config sends traffic
//! for the node itself, its networks and other special-purpose addresses to a blackhole outbound, so no
//! customer reaches the core's unauthenticated API, the node's sshd, cloud metadata (169.254.169.254) or the
//! node's private network — nor the node's own public address. Names are resolved when the blocking rule
//! looks at them (`IPOnDemand`), so `localhost` or a name pointing at 127.0.0.1 is caught too.
//!
//! Tests (and labs) may let named private destinations through with [`AllowedDestination`]s; production runs
//! with none.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde_json::{Value, json};

use super::render::{API_TAG, RenderError};

/// Tag of the blackhole outbound that drops what customers must not reach.
pub const BLOCK_TAG: &str = "block";

/// Destinations no customer may reach through a node: "this network" (0.0.0.0 connects to the node
/// itself), RFC 1918 private networks, CGNAT, loopback, link-local (cloud metadata), multicast, reserved and
/// broadcast; for IPv6 the unspecified and loopback addresses, unique-local, link-local and multicast.
/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) need no entry of their own: the core reads them as the IPv4
/// address (v2ray 4.34 even refuses `::ffff:0:0/96` as a rule), so the IPv4 networks cover them.
pub const BLOCKED_NETWORKS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Whether `ip` lies in one of the [`BLOCKED_NETWORKS`].
pub fn is_blocked(ip: IpAddr) -> bool {
    BLOCKED_NETWORKS.iter().any(|net| {
        let Some((base, bits)) = net.split_once('/') else { return false };
        let (Ok(base), Ok(bits)) = (base.parse::<IpAddr>(), bits.parse::<u32>()) else { return false };
        match (ip, base) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    })
}

/// Names that mean the node itself (`localhost` and its subdomains), blocked before any lookup.
pub const BLOCKED_DOMAINS: &[&str] = &["domain:localhost"];

/// A private destination the node lets customers reach anyway: an address or network, and optionally one
/// port. Written `127.0.0.1:8080`, `[::1]:8080`, `10.1.0.0/16` or `10.1.0.0/16:443`. For tests and labs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDestination {
    /// An address, or a network in CIDR form.
    pub network: String,
    pub port: Option<u16>,
}

impl FromStr for AllowedDestination {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bad = || format!("{raw:?} is not an address or network with an optional port (e.g. 127.0.0.1:8080)");
        let (network, port) = if let Some(rest) = raw.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (inside, port)
        } else if raw.matches(':').count() == 1 {
            let (network, port) = raw.split_once(':').ok_or_else(bad)?;
            (network, Some(port))
        } else {
            (raw, None)
        };
        let port = port.map(|p| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)).transpose()?;
        let (address, prefix) = match network.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (network, None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix.is_some_and(|p| p > max) {
            return Err(bad());
        }
        let network = match prefix {
            Some(p) => format!("{address}/{p}"),
            None => address.to_string(),
        };
        Ok(AllowedDestination { network, port })
    }
}

impl fmt::Display for AllowedDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.network.contains(':')) {
            (None, _) => f.write_str(&self.network),
            (Some(port), true) => write!(f, "[{}]:{port}", self.network),
            (Some(port), false) => write!(f, "{}:{port}", self.network),
        }
    }
}

fn block_rules() -> [Value; 2] {
    [
        json!({ "type": "field", "domain": BLOCKED_DOMAINS, "outboundTag": BLOCK_TAG }),
        json!({ "type": "field", "ip": BLOCKED_NETWORKS, "outboundTag": BLOCK_TAG }),
    ]
}

fn allow_rule(allowed: &AllowedDestination, outbound: &str) -> Value {
    let mut rule = json!({ "type": "field", "ip": [allowed.network], "outboundTag": outbound });
    if let Some(port) = allowed.port {
        rule["port"] = json!(port.to_string());
    }
    rule
}

/// The config's API tag (`api.tag`, `"api"` when absent).
fn api_tag(config: &Value) -> String {
    config.get("api").and_then(|a| a.get("tag")).and_then(Value::as_str).unwrap_or(API_TAG).to_owned()
}

fn malformed(what: &str) -> RenderError {
    RenderError::Malformed(what.to_owned())
}

/// Adds isolation to a config (a base template or a whole config): the blackhole outbound, the blocking
/// rules right after the API's own routing rules and ahead of every other rule (one that matches without
/// resolving a name must not route around them), `IPOnDemand` domain resolution (a name is resolved the
/// moment the blocking rule looks at it), and a rule per allowed destination in front of the blocking ones.
/// `own` are the node's own public addresses (customers must not reach its services through them either).
/// Applying it again changes nothing.
pub fn isolate(config: &mut Value, allowed: &[AllowedDestination], own: &[IpAddr]) -> Result<(), RenderError> {
    let api = api_tag(config);
    let root = config.as_object_mut().ok_or_else(|| malformed("the config is not a JSON object"))?;
    let outbounds = root
        .entry("outbounds")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| malformed("\"outbounds\" is not a list"))?;
    match outbounds.iter().find(|o| o.get("tag").and_then(Value::as_str) == Some(BLOCK_TAG)) {
        Some(o) if o.get("protocol").and_then(Value::as_str) == Some("blackhole") => {}
        Some(_) => {
            return Err(RenderError::InvalidParams(format!(
                "the outbound tagged {BLOCK_TAG:?} must be a blackhole (it drops what customers may not reach)"
            )));
        }
        None => {
            if outbounds.is_empty() {
                // the first outbound is the default route: it must not be the blackhole
                outbounds.push(json!({ "tag": "direct", "protocol": "freedom", "settings": {} }));
            }
            outbounds.push(json!({ "tag": BLOCK_TAG, "protocol": "blackhole", "settings": {} }));
        }
    }
    let direct = outbounds
        .iter()
        .find(|o| o.get("protocol").and_then(Value::as_str) == Some("freedom"))
        .and_then(|o| o.get("tag").and_then(Value::as_str))
        .map(str::to_owned);
    if !allowed.is_empty() && direct.is_none() {
        return Err(RenderError::InvalidParams(
            "allowed private destinations need a freedom outbound with a tag".to_owned(),
        ));
    }

    let routing = root
        .entry("routing")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| malformed("\"routing\" is not an object"))?;
    routing.insert("domainStrategy".to_owned(), json!("IPOnDemand"));
    let rules = routing
        .entry("rules")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| malformed("\"routing.rules\" is not a list"))?;
    let mut ours: Vec<Value> = allowed.iter().map(|a| allow_rule(a, direct.as_deref().unwrap_or("direct"))).collect();
    ours.extend(block_rules());
    ours.extend(own_rule(own));
    // the API inbound reaches the core on 127.0.0.1: its own rules go first, then ours, then everything else
    let (api_rules, others): (Vec<Value>, Vec<Value>) = std::mem::take(rules)
        .into_iter()
        .filter(|r| !ours.contains(r))
        .partition(|r| r.get("outboundTag").and_then(Value::as_str) == Some(api.as_str()));
    rules.extend(api_rules);
    rules.extend(ours);
    rules.extend(others);
    Ok(())
}

/// The rule that blocks the node's own public addresses (those not in [`BLOCKED_NETWORKS`] already).
fn own_rule(own: &[IpAddr]) -> Option<Value> {
    let mut addresses: Vec<String> = own.iter().filter(|ip| !is_blocked(**ip)).map(IpAddr::to_string).collect();
    addresses.sort();
    addresses.dedup();
    (!addresses.is_empty()).then(|| json!({ "type": "field", "ip": addresses, "outboundTag": BLOCK_TAG }))
}

/// Why a config lets customers reach the node itself, or `None` when it is isolated: a blackhole outbound,
/// rules sending every blocked network and the node's `own` addresses to it ahead of any other route (but the
/// API's and the `allowed` destinations'), and names resolved when the blocking rule looks at them.
pub fn isolation_gap(config: &Value, allowed: &[AllowedDestination], own: &[IpAddr]) -> Option<String> {
    let outbounds = config.get("outbounds").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let blackholes: Vec<&str> = outbounds
        .iter()
        .filter(|o| o.get("protocol").and_then(Value::as_str) == Some("blackhole"))
        .filter_map(|o| o.get("tag").and_then(Value::as_str))
        .collect();
    if blackholes.is_empty() {
        return Some("it has no blackhole outbound".to_owned());
    }
    let routing = config.get("routing");
    let rules = routing.and_then(|r| r.get("rules")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let api = api_tag(config);
    let to_block = |r: &Value| r.get("outboundTag").and_then(Value::as_str).is_some_and(|t| blackholes.contains(&t));
    let unrestricted = |r: &Value| {
        ["inboundTag", "port", "network", "source", "user", "protocol", "domain", "attrs"]
            .iter()
            .all(|k| r.get(k).is_none())
    };
    let ips = |r: &Value| -> Vec<String> {
        r.get("ip")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    // the leading rules: only the API's own, the allowed destinations' and blocking ones may come first
    let leading: Vec<&Value> = rules
        .iter()
        .take_while(|r| {
            let to = r.get("outboundTag").and_then(Value::as_str).unwrap_or("");
            let api_only = to == api
                && r.get("inboundTag")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.iter().all(|t| t.as_str() == Some(&api)));
            api_only || to_block(r) || allowed.iter().any(|a| **r == allow_rule(a, to))
        })
        .collect();
    let blocked: Vec<String> = leading.iter().filter(|r| to_block(r) && unrestricted(r)).flat_map(|r| ips(r)).collect();
    let missing: Vec<String> = BLOCKED_NETWORKS
        .iter()
        .map(|n| (*n).to_owned())
        .chain(own.iter().filter(|ip| !is_blocked(**ip)).map(IpAddr::to_string))
        .filter(|n| !blocked.contains(n))
        .collect();
    if !missing.is_empty() {
        let around = rules.get(leading.len()).map(|r| format!("; the first rule in the way: {r}")).unwrap_or_default();
        return Some(format!("nothing sends {} to a blackhole ahead of the other routes{around}", missing.join(", ")));
    }
    let strategy = routing.and_then(|r| r.get("domainStrategy")).and_then(Value::as_str).unwrap_or("AsIs");
    if strategy != "IPOnDemand" {
        return Some(format!(
            "routing.domainStrategy is {strategy:?}, so a name such as localhost or one pointing at 127.0.0.1 can \
             pass without being matched against the blocked networks"
        ));
    }
    None
}

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
