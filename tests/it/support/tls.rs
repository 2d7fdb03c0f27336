//! `TestCa`: a throwaway certificate authority made with the `openssl` CLI for one test, and a server
//! certificate it signed for a DNS name: what an operator's real certificate (Let's Encrypt, say) is to a node.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A CA and one server certificate (with its key) for `name`, in a temp dir removed when dropped.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// A new CA and a certificate for `name` (subjectAltName DNS:`name`) valid for `days` days.
    pub fn new(name: &str, days: u32) -> TestCa {
        let dir = tempfile::Builder::new().prefix("vpnshop-ca-").tempdir().expect("temp dir");
        let d = dir.path();
        let days = days.to_string();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            d,
            &["req", "-x509"],
            &ec,
            &["-days", &days, "-subj", "/CN=vpnshop test CA", "-keyout", "ca.key", "-out", "ca.pem"],
        );
        openssl(
            d,
            &["req", "-new"],
            &ec,
            &["-subj", &format!("/CN={name}"), "-keyout", "server.key", "-out", "server.csr"],
        );
        std::fs::write(d.join("san.ext"), format!("subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"))
            .expect("san.ext");
        openssl(
            d,
            &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
            &[],
            &["-days", &days, "-extfile", "san.ext", "-out", "server.pem"],
        );
        TestCa { dir }
    }

    /// The CA's certificate (what a client must trust).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate the node presents.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's key.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn openssl(dir: &Path, head: &[&str], mid: &[&str], tail: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(head)
        .args(mid)
        .args(tail)
        .output()
        .expect("openssl is installed (apt-get install -y openssl)");
    assert!(out.status.success(), "openssl {head:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}
