//! A node's TLS certificate, read in Rust: when it ends. The file is read over SSH (`NodeApi::tls_not_after`)
//! and parsed here rather than with `openssl x509` on the node, so nodes need nothing beyond the core and the
//! parsing is tested without one.

use chrono::{DateTime, Utc};
use x509_parser::pem::Pem;

/// The `notAfter` of the first certificate in a PEM file (a `fullchain.pem` starts with the node's own
/// certificate, followed by its issuers). Blocks of other kinds (a key, EC parameters) are skipped.
pub fn pem_not_after(pem: &[u8]) -> Result<DateTime<Utc>, String> {
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("not a PEM file ({e})"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block.parse_x509().map_err(|e| format!("the first certificate cannot be read ({e})"))?;
        let secs = cert.validity().not_after.timestamp();
        return DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("its notAfter ({secs}) is out of range"));
    }
    Err("no certificate in it (no -----BEGIN CERTIFICATE----- block)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -x509 -newkey ec … -days 5 -subj /CN=node.example.com`: notAfter=Dec  8 13:43:43 2026 GMT.
    const NODE: &str = "-----BEGIN CERTIFICATE-----
MIIBijCCATGgAwIBAgIUJHLEsYcw9NJntworHMnRiyFaTt8wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbm9kZS5leGFtcGxlLmNvbTAeFw0yNjEyMDMxMzQzNDNaFw0y
NjEyMDgxMzQzNDNaMBsxGTAXBgNVBAMMEG5vZGUuZXhhbXBsZS5jb20wWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQ0Tgn5ExKLfAXlYqFwGVtcE8KdOf07yiF7tn1W
Pxs8/f/IUAwCDBTcTIYNKBZDXF5FZwoNwo2sEPh/NtUBU7dco1MwUTAdBgNVHQ4E
FgQUiIYiECTj1UFCAYqHaEiNB2mVFYYwHwYDVR0jBBgwFoAUiIYiECTj1UFCAYqH
aEiNB2mVFYYwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBIDYi9
T132a95HDXcDwd2DugLxNWeg91B+hP+1m+zSiQIgUwS5oDkF/1Wq8x9friyY+iHz
DQUiguLnz45zRlfzO70=
-----END CERTIFICATE-----
";

    /// `… -days 400 -subj /CN=ca.example.com`: notAfter=Jan  7 13:43:45 2028 GMT.
    const ISSUER: &str = "-----BEGIN CERTIFICATE-----
MIIBhjCCAS2gAwIBAgIUYr5Uca65SZD1HtAt2HIfuxtV/sIwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOY2EuZXhhbXBsZS5jb20wHhcNMjYxMjAzMTM0MzQ1WhcNMjgw
MTA3MTM0MzQ1WjAZMRcwFQYDVQQDDA5jYS5leGFtcGxlLmNvbTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABOxxIrHhLvIQWABFhKQU2XaUSupAohIWU3Weph4bQczY
DsQUMcueqlV37F1RG4ULoZcXd/rGP/ox+b456qatR/+jUzBRMB0GA1UdDgQWBBSd
nqIHl2XefV2+Vvc1f8mASt5p3zAfBgNVHSMEGDAWgBSdnqIHl2XefV2+Vvc1f8mA
St5p3zAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIHO9BMjV8R8M
AcLDc5uS5CXXgW5eGMzCmDJI7wu5asaHAiAY5cDvCcDMeYBcrQLL68hcb2VJype7
tJb56kwNEG9m7A==
-----END CERTIFICATE-----
";

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("test time").with_timezone(&Utc)
    }

    #[test]
    fn the_first_certificate_of_a_chain_decides() {
        assert_eq!(pem_not_after(NODE.as_bytes()), Ok(at("2026-12-08T13:43:43Z")));
        assert_eq!(pem_not_after(ISSUER.as_bytes()), Ok(at("2028-01-07T13:43:45Z")));
        let chain = format!("{NODE}{ISSUER}");
        assert_eq!(pem_not_after(chain.as_bytes()), Ok(at("2026-12-08T13:43:43Z")));
        let params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        assert_eq!(pem_not_after(format!("{params}{NODE}").as_bytes()), Ok(at("2026-12-08T13:43:43Z")));
    }

    #[test]
    fn what_is_not_a_certificate_is_an_error_that_says_so() {
        let empty = pem_not_after(b"").expect_err("empty");
        assert!(empty.contains("no certificate"), "{empty}");
        let text = pem_not_after(b"hello, I am a key\n").expect_err("text");
        assert!(text.contains("no certificate"), "{text}");
        let broken = NODE.replace("MIIBijCCATGgAwIBAgIU", "MIIBijCCATGgAwIBAgIV");
        assert!(pem_not_after(broken.as_bytes()).is_err(), "a damaged certificate is not read");
        let cut: String = NODE.lines().take(4).chain(["-----END CERTIFICATE-----"]).collect::<Vec<_>>().join("\n");
        let cut = pem_not_after(cut.as_bytes()).expect_err("truncated");
        assert!(cut.contains("cannot be read") || cut.contains("PEM"), "{cut}");
    }
}
