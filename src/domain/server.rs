//! Node (server) values: which core and protocol it runs, and the host key we pin.

use std::fmt;

crate::text_enum! {
    /// The proxy core on a node: Debian's `v2ray` or the Xray fork (same config, `xray.` API names).
    pub enum Core {
        V2ray => "v2ray",
        Xray => "xray",
    }
}

crate::text_enum! {
    pub enum Protocol {
        Vmess => "vmess",
        Vless => "vless",
    }
}

crate::text_enum! {
    pub enum Health {
        Unknown => "unknown",
        Ok => "ok",
        Down => "down",
        HostKeyMismatch => "host_key_mismatch",
    }
}

/// An OpenSSH-style SHA-256 host key fingerprint: `SHA256:` + 43 characters of unpadded base64.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HostKeyFingerprint(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a host key fingerprint looks like SHA256:<43 base64 characters> (from `ssh-keygen -lf`), got {0:?}")]
pub struct InvalidFingerprint(pub String);

impl HostKeyFingerprint {
    pub fn parse(raw: &str) -> Result<Self, InvalidFingerprint> {
        let raw = raw.trim();
        let valid = raw.strip_prefix("SHA256:").is_some_and(|b64| {
            b64.len() == 43 && b64.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        });
        if valid { Ok(Self(raw.to_owned())) } else { Err(InvalidFingerprint(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostKeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS name or IP address a node is reached at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid host name or IP address")]
pub struct InvalidHost(pub String);

impl Host {
    pub fn parse(raw: &str) -> Result<Self, InvalidHost> {
        let raw = raw.trim();
        if raw.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Self(raw.to_owned()));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !raw.is_empty() && raw.len() <= 253 && raw.split('.').all(label_ok) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(InvalidHost(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_must_look_like_openssh_sha256() {
        let good = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8";
        assert_eq!(HostKeyFingerprint::parse(good).unwrap().as_str(), good);
        assert!(HostKeyFingerprint::parse("MD5:aa:bb").is_err());
        assert!(HostKeyFingerprint::parse("SHA256:short").is_err());
        assert!(HostKeyFingerprint::parse("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY!").is_err());
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        assert_eq!(Host::parse("Node1.Example.com").unwrap().as_str(), "node1.example.com");
        assert!(Host::parse("127.0.0.1").is_ok());
        assert!(Host::parse("::1").is_ok());
        assert!(Host::parse("").is_err());
        assert!(Host::parse("bad host").is_err());
        assert!(Host::parse("-bad.example").is_err());
    }
}
