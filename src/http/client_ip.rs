//! Who a request comes from, for the per-IP rate limits: the TCP peer, unless the peer is one of the trusted
//! reverse proxies (`http.trusted_proxies`); then the nearest address its forwarding header names that is not
//! itself a trusted proxy (`X-Forwarded-For`, else `Forwarded: for=`). Headers from anyone else are ignored,
//! so a client cannot pick its own key.
//!
//! Keys group an IPv6 client by its /64 (what one subscriber is usually given, so rotating addresses inside
//! it does not help) and treat an IPv4-mapped IPv6 peer (a dual-stack listener) as the IPv4 client it is.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

/// Resolves the client address behind trusted proxies; the rate limiters' key extractor.
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<[IpNet]>,
}

impl ClientIp {
    pub fn new(trusted_proxies: &[IpNet]) -> ClientIp {
        ClientIp { trusted: trusted_proxies.into() }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request (None when it was not served by `http::serve`).
    pub fn of_request(&self, parts: &axum::http::request::Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
        Some(self.resolve(peer.0.ip(), &parts.headers))
    }

    /// The client's address: `peer`, or what trusted proxies say about the hop before them.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.is_trusted(client) {
            return client;
        }
        // Right to left: each entry was appended by the hop after it; stop at the first one no trusted proxy is.
        for hop in forwarded_chain(headers).into_iter().rev() {
            match hop {
                Some(ip) => client = ip.to_canonical(),
                // unreadable: nothing left of it can be believed, so the trusted hop that wrote it is the client
                None => return client,
            }
            if !self.is_trusted(client) {
                return client;
            }
        }
        client
    }
}

/// The addresses forwarding headers name, client first; `None` for an entry that is not an address
/// (`unknown`, an obfuscated name, garbage). `X-Forwarded-For` when present, else `Forwarded`.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff = headers.get_all("x-forwarded-for");
    if xff.iter().next().is_some() {
        return xff
            .iter()
            .flat_map(|line| match line.to_str() {
                Ok(text) => text.split(',').map(|entry| parse_hop(entry.trim())).collect::<Vec<_>>(),
                Err(_) => vec![None],
            })
            .collect();
    }
    headers
        .get_all(axum::http::header::FORWARDED)
        .iter()
        .flat_map(|line| match line.to_str().ok().and_then(|text| ForwardedHeaderValue::from_forwarded(text).ok()) {
            Some(value) => value.iter().map(|stanza| stanza.forwarded_for_ip()).collect::<Vec<_>>(),
            None => vec![None],
        })
        .collect()
}

/// `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:5678`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64.
pub fn key_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        // `http::serve` puts the peer on every request; a router called in-process (tests) has none, and its
        // requests share one key
        let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>() else {
            return Ok(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        };
        Ok(key_of(self.resolve(peer.0.ip(), req.headers())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn proxies(list: &[&str]) -> ClientIp {
        let nets: Vec<IpNet> = list.iter().map(|s| s.parse().unwrap()).collect();
        ClientIp::new(&nets)
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let none = proxies(&[]);
        let h = headers(&[("x-forwarded-for", "9.9.9.9"), ("forwarded", "for=8.8.8.8")]);
        assert_eq!(none.resolve(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        let other = proxies(&["10.0.0.0/8"]);
        assert_eq!(other.resolve(ip("203.0.113.5"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        let p = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        // the client forged the first entry; the second was appended by our outer proxy
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        // several header lines are one list, in order
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.8:4321")]);
        assert_eq!(p.resolve(ip("10.9.9.9"), &h), ip("198.51.100.8"));
        // Forwarded when there is no X-Forwarded-For
        let h = headers(&[("forwarded", r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711""#)]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        // every hop trusted: the farthest one
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_proxy_without_a_readable_header_is_the_client_itself() {
        let p = proxies(&["127.0.0.1/32"]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown")]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h), ip("127.0.0.1"), "nothing left of garbage is believed");
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(key_of(ip("2001:db8:1:2:aaaa::1")), key_of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(key_of(ip("2001:db8:1:2::1")), key_of(ip("2001:db8:1:3::1")));
        assert_eq!(key_of(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(key_of(ip("198.51.100.7")), ip("198.51.100.7"));
        let p = proxies(&["127.0.0.1/32"]);
        assert_eq!(p.resolve(ip("::ffff:127.0.0.1"), &headers(&[("x-forwarded-for", "1.2.3.4")])), ip("1.2.3.4"));
    }
}
